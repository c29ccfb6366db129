"""Settings: unknown or malformed variables fail at start, naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import SettingsError, load_settings


class TestLoadSettings:
    def test_defaults(self) -> None:
        settings = load_settings({})
        assert settings.database_url == "sqlite:///./pim-rollout.db"
        assert settings.plans_dir is None  # the packaged plan templates alone
        assert settings.log_level.value == "INFO"

    def test_postgres_url_is_normalised_to_psycopg(self) -> None:
        settings = load_settings({"PIM_ROLLOUT_DATABASE_URL": "postgresql://u@h/db"})
        assert settings.database_url == "postgresql+psycopg://u@h/db"

    def test_nested_graph_setting(self) -> None:
        settings = load_settings({"PIM_ROLLOUT_GRAPH__MAX_CONCURRENCY": "4"})
        assert settings.graph.max_concurrency == 4

    def test_unknown_variable_is_named(self) -> None:
        with pytest.raises(SettingsError, match="PIM_ROLLOUT_DATABSE_URL"):
            load_settings({"PIM_ROLLOUT_DATABSE_URL": "sqlite://"})

    def test_malformed_value_names_the_variable(self) -> None:
        with pytest.raises(SettingsError, match=r"PIM_ROLLOUT_GRAPH__MAX_CONCURRENCY: .*integer"):
            load_settings({"PIM_ROLLOUT_GRAPH__MAX_CONCURRENCY": "lots"})

    def test_bad_database_scheme(self) -> None:
        with pytest.raises(SettingsError, match=r"PIM_ROLLOUT_DATABASE_URL: .*sqlite://"):
            load_settings({"PIM_ROLLOUT_DATABASE_URL": "mysql://x"})

    def test_bad_log_level(self) -> None:
        with pytest.raises(SettingsError, match="PIM_ROLLOUT_LOG_LEVEL"):
            load_settings({"PIM_ROLLOUT_LOG_LEVEL": "chatty"})

    def test_secret_values_are_not_echoed(self) -> None:
        with pytest.raises(SettingsError) as caught:
            load_settings(
                {"PIM_ROLLOUT_SECRET_KEY": "", "PIM_ROLLOUT_SCHEDULER__TICK_SECONDS": "-1"}
            )
        assert "PIM_ROLLOUT_SCHEDULER__TICK_SECONDS" in str(caught.value)

    def test_plans_dir_names_an_extra_folder(self, tmp_path: Path) -> None:
        settings = load_settings({"PIM_ROLLOUT_PLANS_DIR": str(tmp_path)})
        assert settings.plans_dir == tmp_path

    @pytest.mark.parametrize("kind", ["missing", "file"])
    def test_plans_dir_that_is_not_a_folder_is_named(self, tmp_path: Path, kind: str) -> None:
        target = tmp_path / "plans"
        if kind == "file":
            target.write_text("default.yaml")
        with pytest.raises(SettingsError, match=r"PIM_ROLLOUT_PLANS_DIR: .*is not a folder"):
            load_settings({"PIM_ROLLOUT_PLANS_DIR": str(target)})

    def test_other_variables_are_ignored(self) -> None:
        assert load_settings({"HOME": "/root", "PIM_OTHER": "x"}).database_url.startswith("sqlite")

    def test_the_http_commands_variables_are_not_settings(self) -> None:
        # A shell that exports them for `pim-rollout plans …` can still run `serve`.
        settings = load_settings(
            {"PIM_ROLLOUT_SERVER": "http://pim.test", "PIM_ROLLOUT_TOKEN": "pimr_secret"}
        )
        assert settings.database_url.startswith("sqlite")
