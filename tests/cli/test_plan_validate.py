"""``pim-rollout plan validate FILE``: FILE: path: reason per problem and exit 1, or a summary."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from app.cli import cli
from tests.factories import PLANS_DIR, plan_data

runner = CliRunner()


class TestPlanValidate:
    def test_shipped_plans_pass(self) -> None:
        result = runner.invoke(
            cli, ["plan", "validate", str(PLANS_DIR / "default.yaml"), str(PLANS_DIR / "demo.yaml")]
        )
        assert result.exit_code == 0, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 2
        assert lines[0].endswith(
            "ok: plan 'default' with 5 phases (pilot, feedback, all-admins, "
            "ga-approval, access-reviews), 11 target roles, 10 steps"
        )

    def test_each_problem_on_its_own_line(self, tmp_path: Path) -> None:
        data = plan_data()
        data["phases"][2]["key"] = "pilot"
        data["phases"][3]["steps"][0]["rules"][0]["min_approvers"] = 1
        bad = tmp_path / "bad.yaml"
        bad.write_text(yaml.safe_dump(data))
        result = runner.invoke(cli, ["plan", "validate", str(bad)])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert f"{bad}: phases[2].key: duplicate phase key 'pilot' (also phases[0])" in lines
        assert any(
            line.startswith(f"{bad}: phases[3].steps[0].rules[0].min_approvers: ") for line in lines
        )

    def test_yaml_syntax_error_names_the_line(self, tmp_path: Path) -> None:
        bad = tmp_path / "broken.yaml"
        bad.write_text("name: x\nphases: [\n  - key: a\n")
        result = runner.invoke(cli, ["plan", "validate", str(bad)])
        assert result.exit_code == 1
        assert result.output.startswith(f"{bad}: line ")
        assert "not valid YAML" in result.output

    def test_missing_file(self, tmp_path: Path) -> None:
        result = runner.invoke(cli, ["plan", "validate", str(tmp_path / "nope.yaml")])
        assert result.exit_code == 1
        assert result.output.strip() == f"{tmp_path / 'nope.yaml'}: (file): no such file"

    def test_one_bad_file_among_good_ones_fails_the_run(self, tmp_path: Path) -> None:
        bad = tmp_path / "empty.yaml"
        bad.write_text("")
        result = runner.invoke(cli, ["plan", "validate", str(PLANS_DIR / "default.yaml"), str(bad)])
        assert result.exit_code == 1
        assert f"{bad}: (plan): a plan must be a mapping of fields" in result.output
