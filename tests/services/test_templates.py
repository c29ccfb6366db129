"""Plan templates: the packaged ones, and a folder (PIM_ROLLOUT_PLANS_DIR) that adds or replaces."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from app.problems import InvalidInputError, NotFoundError
from app.services.templates import (
    PlansDirError,
    list_templates,
    load_template,
    packaged_plans,
)
from tests.factories import plan_data


def write_plan(folder: Path, file_name: str, **over: object) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / file_name
    path.write_text(yaml.safe_dump({**plan_data("demo"), **over}))
    return path


class TestPackagedTemplates:
    def test_default_and_demo_ship_in_the_package(self) -> None:
        infos = {info.name: info for info in list_templates()}
        assert set(infos) == {"default", "demo"}
        assert all(info.source == "package" and info.spec is not None for info in infos.values())

    def test_they_are_read_from_the_package_not_the_working_directory(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        assert {info.name for info in list_templates()} == {"default", "demo"}
        assert (packaged_plans() / "default.yaml").is_file()


class TestPlansDir:
    def test_a_file_there_adds_a_template(self, tmp_path: Path) -> None:
        path = write_plan(tmp_path / "plans", "quick.yml", name="quick", title="Quick")
        infos = {info.name: info for info in list_templates(tmp_path / "plans")}
        assert set(infos) == {"default", "demo", "quick"}
        assert infos["quick"].source == str(path)
        assert infos["quick"].spec is not None
        assert infos["quick"].spec.title == "Quick"
        assert infos["default"].source == "package"

    def test_a_file_there_replaces_the_packaged_template_of_the_same_name(
        self, tmp_path: Path
    ) -> None:
        path = write_plan(tmp_path / "plans", "default.yaml", title="Our default")
        infos = {info.name: info for info in list_templates(tmp_path / "plans")}
        assert set(infos) == {"default", "demo"}
        assert infos["default"].source == str(path)
        assert load_template(tmp_path / "plans", "default").title == "Our default"
        assert load_template(tmp_path / "plans", "demo") == load_template(None, "demo")

    def test_other_files_are_ignored(self, tmp_path: Path) -> None:
        (tmp_path / "README.md").write_text("# not a plan")
        (tmp_path / "old.yaml").mkdir()
        assert {info.name for info in list_templates(tmp_path)} == {"default", "demo"}

    def test_an_invalid_file_is_listed_with_its_problems_and_cannot_be_used(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "broken.yaml").write_text("name: broken\nphases: [\n")
        infos = {info.name: info for info in list_templates(tmp_path)}
        assert infos["broken"].spec is None
        assert "not valid YAML" in infos["broken"].problems[0].message
        with pytest.raises(InvalidInputError, match="'broken' is invalid"):
            load_template(tmp_path, "broken")

    def test_an_unknown_name_lists_the_known_ones(self, tmp_path: Path) -> None:
        write_plan(tmp_path, "quick.yaml", name="quick")
        with pytest.raises(NotFoundError, match=r"known: default, demo, quick"):
            load_template(tmp_path, "nope")

    def test_a_missing_folder_is_an_error_naming_the_setting(self, tmp_path: Path) -> None:
        with pytest.raises(PlansDirError, match=r"PIM_ROLLOUT_PLANS_DIR is '.*gone'.*not a folder"):
            list_templates(tmp_path / "gone")
