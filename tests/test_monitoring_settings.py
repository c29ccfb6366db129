"""The ``monitoring`` settings section, as read from the environment."""

from __future__ import annotations

import pytest

from app.settings import SettingsError, load_settings


class TestMonitoringSettings:
    def test_defaults(self) -> None:
        monitoring = load_settings({}).monitoring
        assert (monitoring.enabled, monitoring.collect_seconds) == (True, 300.0)
        assert "doing my job" in monitoring.smelly_justifications

    def test_phrases_separated_by_semicolons(self) -> None:
        settings = load_settings(
            {"PIM_ROLLOUT_MONITORING__SMELLY_JUSTIFICATIONS": "doing my job; see ticket ;;"}
        )
        assert settings.monitoring.smelly_justifications == ["doing my job", "see ticket"]

    def test_phrases_as_a_json_list(self) -> None:
        settings = load_settings({"PIM_ROLLOUT_MONITORING__SMELLY_JUSTIFICATIONS": '["a; b", "c"]'})
        assert settings.monitoring.smelly_justifications == ["a; b", "c"]

    def test_bad_value_names_the_variable(self) -> None:
        with pytest.raises(SettingsError, match="PIM_ROLLOUT_MONITORING__SPIKE_FACTOR"):
            load_settings({"PIM_ROLLOUT_MONITORING__SPIKE_FACTOR": "1"})
