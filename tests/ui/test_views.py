"""Pure pieces of the UI: display filters, progress bars, flash trimming, safe redirects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.progress import Progress
from app.ui import csrf, flash
from app.ui.auth import safe_next
from app.ui.templating import duration, humanize, reltime, tone
from app.ui.views import progress_bar, target_text

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class TestFilters:
    @pytest.mark.parametrize(
        ("offset", "text"),
        [
            (timedelta(0), "now"),
            (timedelta(seconds=20), "in 20 s"),
            (timedelta(seconds=-20), "20 s ago"),
            (timedelta(minutes=-3), "3 min ago"),
            (timedelta(hours=4), "in 4 h"),
            (timedelta(hours=1, minutes=30), "in 1 h 30 min"),
            (timedelta(days=-7), "7 days ago"),
        ],
    )
    def test_reltime(self, offset: timedelta, text: str) -> None:
        assert reltime(NOW + offset, NOW) == text

    def test_reltime_of_nothing(self) -> None:
        assert reltime(None, NOW) == "—"

    def test_duration(self) -> None:
        assert duration(timedelta(0)) == "immediately"
        assert duration(timedelta(days=7)) == "7 days"
        assert duration(None) == "—"

    def test_tone_and_words(self) -> None:
        assert tone("failed") == "bad"
        assert tone("awaiting_gate") == "warn"
        assert tone("something new") == "neutral"
        assert humanize("rolled_back") == "rolled back"


class TestProgressBar:
    def test_segments_add_up_to_the_whole_bar(self) -> None:
        bar = progress_bar(Progress(done=6, failed=1, remaining=2, skipped=1))
        assert [s.kind for s in bar.segments] == ["done", "failed", "skipped", "remaining"]
        assert sum(s.width for s in bar.segments) == pytest.approx(100)
        assert bar.segments[1].x == pytest.approx(60)
        assert bar.summary == "6 done, 1 failed, 1 skipped, 2 remaining of 10"

    def test_empty(self) -> None:
        bar = progress_bar(Progress())
        assert bar.empty
        assert bar.segments == []
        assert bar.summary == "no conversions"


class TestSafeNext:
    @pytest.mark.parametrize("target", ["/ui", "/ui/plans/1", "/ui/tenants?page=2"])
    def test_ui_paths_are_kept(self, target: str) -> None:
        assert safe_next(target, "/ui/plans") == target

    @pytest.mark.parametrize(
        "target", [None, "", "https://evil.example", "//evil", "/api/v1", "/ui\\..", "/uix"]
    )
    def test_anything_else_goes_home(self, target: str | None) -> None:
        assert safe_next(target, "/ui/plans") == "/ui/plans"


class TestFlash:
    def test_messages_are_trimmed_to_fit_a_cookie(self) -> None:
        session: dict[str, object] = {}
        flash.add(session, "error", "x" * 1000, "y" * 1000, [f"check {i}" for i in range(40)])
        (message,) = flash.pop_all(session)
        assert len(message.title) == 300
        assert message.detail is not None
        assert len(message.detail) == 300
        assert len(message.items) == 13
        assert message.items[-1] == "… and 28 more"
        assert flash.pop_all(session) == []


class TestCsrf:
    def test_token_is_stable_until_rotated(self) -> None:
        session: dict[str, object] = {}
        token = csrf.ensure_token(session)
        assert csrf.ensure_token(session) == token
        assert csrf.is_valid(session, token)
        assert not csrf.is_valid(session, token + "x")
        assert not csrf.is_valid(session, None)
        assert csrf.rotate(session) != token
        assert not csrf.is_valid({}, token)


def test_journal_target_in_words() -> None:
    text = target_text(
        {
            "principal_id": "p-1",
            "role_id": "62e90394-69f5-4237-9190-012177145e10",
            "scope": "/",
        }
    )
    assert text == "Global Administrator · principal p-1"
