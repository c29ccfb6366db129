"""Every page renders (on each database), errors are pages, and the security headers are set."""

from __future__ import annotations

import csv
import io
import time

import pytest

from app.ui.app import PAGE_CSP
from tests.ui.conftest import Ui, context_of, template_of


def _started(ui: Ui, plan_id: str) -> None:
    response = ui.post(
        f"/ui/plans/{plan_id}/actions/start", reason="render every page", confirm="yes"
    )
    assert response.status_code == 303
    # The action waits 2 s for its job; a loaded machine can take longer, so wait it out here.
    deadline = time.monotonic() + 60
    while context_of(ui.client.get(f"/ui/plans/{plan_id}"))["jobs_running"]:
        assert time.monotonic() < deadline, "the start job did not end within a minute"
        time.sleep(0.1)


class TestEveryPageRenders:
    def test_draft_plan_pages(self, as_admin: Ui, plan_id: str, tenant_id: str) -> None:
        pages = {
            "/ui/plans": "plans/list.html",
            "/ui/plans/new": "plans/new.html",
            f"/ui/plans/{plan_id}": "plans/detail.html",
            f"/ui/plans/{plan_id}/live": "partials/_plan_live.html",
            f"/ui/plans/{plan_id}/actions/start": "plans/action.html",
            f"/ui/plans/{plan_id}/actions/abort": "plans/action.html",
            f"/ui/plans/{plan_id}/preview": "plans/preview.html",
            f"/ui/plans/{plan_id}/preview?phase=pilot": "plans/preview.html",
            f"/ui/plans/{plan_id}/journal": "plans/journal.html",
            f"/ui/plans/{plan_id}/history": "plans/history.html",
            f"/ui/plans/{plan_id}/comms": "plans/comms.html",
            f"/ui/plans/{plan_id}/comms?phase=all-admins": "plans/comms.html",
            f"/ui/plans/{plan_id}/baseline": "plans/baseline.html",
            f"/ui/plans/{plan_id}/posture": "plans/posture.html",
            "/ui/tenants": "tenants/list.html",
            "/ui/tenants/new": "tenants/new.html",
            f"/ui/tenants/{tenant_id}": "tenants/detail.html",
            f"/ui/tenants/{tenant_id}/posture": "posture/tenant.html",
            "/ui/login?next=/ui/plans": None,  # signed in: straight on
        }
        for path, template in pages.items():
            response = as_admin.client.get(path)
            if template is None:
                assert response.status_code == 303, path
                continue
            assert response.status_code == 200, (path, response.text[:500])
            assert template_of(response) == template, path
            assert "{{" not in response.text, path
            assert "{%" not in response.text, path

    def test_empty_states(self, as_admin: Ui, plan_id: str, tenant_id: str) -> None:
        journal = as_admin.client.get(f"/ui/plans/{plan_id}/journal")
        assert context_of(journal)["journal"].entries == []
        assert "No operations yet" in journal.text
        baseline = as_admin.client.get(f"/ui/plans/{plan_id}/baseline")
        assert context_of(baseline)["inventory"] is None
        assert "No baseline yet" in baseline.text
        tenant = as_admin.client.get(f"/ui/tenants/{tenant_id}")
        assert context_of(tenant)["inventory"] is None
        assert "No inventory yet" in tenant.text

    def test_pages_of_a_running_plan(self, as_admin: Ui, plan_id: str, tenant_id: str) -> None:
        _started(as_admin, plan_id)
        history = as_admin.client.get(f"/ui/plans/{plan_id}/history")
        events = [e.row.event for e in context_of(history)["entries"]]
        assert events == ["tick", "start", "preflight", "create"]
        start = context_of(history)["entries"][1]
        assert start.passed is True
        assert start.checks
        assert "admin-ui (admin)" in history.text
        baseline = as_admin.client.get(f"/ui/plans/{plan_id}/baseline")
        inventory = context_of(baseline)["inventory"]
        assert inventory.pager.total == sum(r.count for r in inventory.by_role)
        assert all(r.role_name for r in inventory.by_role)
        assert len(inventory.items) == min(50, inventory.pager.total)
        tenant = as_admin.client.get(f"/ui/tenants/{tenant_id}")
        assert context_of(tenant)["inventory"].snapshot.id == inventory.snapshot.id
        page = as_admin.client.get(f"/ui/plans/{plan_id}")
        assert context_of(page)["page"].plan.state == "running"
        listing = as_admin.client.get("/ui/plans")
        assert context_of(listing)["items"][0]["view"].row.state == "running"

    def test_preview_shows_each_phase_and_the_csv_matches(
        self, as_operator: Ui, plan_id: str
    ) -> None:
        page = as_operator.client.get(f"/ui/plans/{plan_id}/preview")
        previews = context_of(page)["previews"]
        assert [p.key for p in previews] == [
            "pilot",
            "feedback",
            "all-admins",
            "ga-approval",
            "access-reviews",
        ]
        assert f'href="/ui/plans/{plan_id}/preview.csv"' in page.text
        one = as_operator.client.get(f"/ui/plans/{plan_id}/preview?phase=feedback")
        assert [p.key for p in context_of(one)["previews"]] == ["feedback"]

        download = as_operator.client.get(f"/ui/plans/{plan_id}/preview.csv")
        assert download.status_code == 200
        assert download.headers["content-type"].startswith("text/csv")
        assert "attachment" in download.headers["content-disposition"]
        rows = list(csv.reader(io.StringIO(download.text)))
        assert rows[0] == ["phase", "step", "kind", "role", "subject", "before", "after", "note"]
        assert len(rows) - 1 == sum(len(p.changes) for p in previews)

    def test_preview_needs_an_operator(self, as_viewer: Ui, plan_id: str) -> None:
        assert as_viewer.client.get(f"/ui/plans/{plan_id}/preview").status_code == 403
        assert as_viewer.client.get(f"/ui/plans/{plan_id}/preview.csv").status_code == 403
        page = as_viewer.client.get(f"/ui/plans/{plan_id}")
        assert "/preview" not in page.text

    def test_comms_preview_is_sandboxed(self, as_viewer: Ui, plan_id: str) -> None:
        page = as_viewer.client.get(f"/ui/plans/{plan_id}/comms")
        assert context_of(page)["choices"] == ["pilot", "all-admins"]
        assert context_of(page)["rendered"].subject
        assert "<iframe" in page.text
        assert " sandbox" in page.text
        frame = as_viewer.client.get(f"/ui/plans/{plan_id}/comms/pilot/frame")
        assert frame.status_code == 200
        assert frame.headers["content-security-policy"].startswith("sandbox;")
        assert "frame-ancestors 'self'" in frame.headers["content-security-policy"]
        assert "<html" in frame.text
        missing = as_viewer.client.get(f"/ui/plans/{plan_id}/comms/feedback/frame")
        assert missing.status_code == 404

    def test_comms_preview_per_recipient(self, as_viewer: Ui, plan_id: str) -> None:
        overview = as_viewer.client.get(f"/ui/plans/{plan_id}/comms?phase=pilot")
        context = context_of(overview)
        people = context["recipients"]
        assert people, "the pilot phase mails someone"
        assert context["recipient"] is None
        assert 'data-testid="comms-recipient"' in overview.text
        for person in people:
            assert f'value="{person.id}"' in overview.text

        person = people[0]
        page = as_viewer.client.get(
            f"/ui/plans/{plan_id}/comms", params={"phase": "pilot", "recipient": person.upn}
        )
        assert page.status_code == 200
        assert context_of(page)["recipient"] == person
        assert f'value="{person.id}" selected' in page.text
        frame_url = context_of(page)["frame_url"]
        assert frame_url.endswith(f"?recipient={person.id}")
        assert f'src="{frame_url}"' in page.text
        frame = as_viewer.client.get(frame_url)
        assert frame.status_code == 200
        assert frame.text.count("<tr>") == 1 + len(person.roles)
        assert frame.headers["content-security-policy"].startswith("sandbox;")

        stranger = as_viewer.client.get(
            f"/ui/plans/{plan_id}/comms", params={"phase": "pilot", "recipient": "nobody@x.test"}
        )
        assert stranger.status_code == 200
        assert context_of(stranger)["rendered"] is None
        assert "nobody@x.test" in context_of(stranger)["problem"]
        not_mailed = as_viewer.client.get(
            f"/ui/plans/{plan_id}/comms/pilot/frame", params={"recipient": "nobody@x.test"}
        )
        assert not_mailed.status_code == 404


class TestErrorPages:
    @pytest.mark.parametrize(
        "path",
        [
            "/ui/plans/nope",
            "/ui/plans/nope/journal",
            "/ui/plans/nope/history",
            "/ui/plans/nope/live",
            "/ui/tenants/nope",
            "/ui/no/such/page",
        ],
    )
    def test_not_found_is_a_page(self, as_viewer: Ui, path: str) -> None:
        response = as_viewer.client.get(path)
        assert response.status_code == 404
        assert template_of(response) == "errors/404.html"
        assert response.headers["content-type"].startswith("text/html")

    def test_bad_query_is_a_page(self, as_viewer: Ui, plan_id: str) -> None:
        response = as_viewer.client.get(f"/ui/plans/{plan_id}/journal?page=zero")
        assert response.status_code == 400
        assert template_of(response) == "errors/error.html"

    def test_api_keeps_answering_problem_json(self, client) -> None:  # type: ignore[no-untyped-def]
        response = client.get("/api/v1/plans")
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert "set-cookie" not in response.headers


class TestHeadersAndAssets:
    def test_pages_carry_a_strict_csp_and_are_not_cached(self, as_viewer: Ui) -> None:
        response = as_viewer.client.get("/ui/plans")
        assert response.headers["content-security-policy"] == PAGE_CSP
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert "https://" not in response.text  # nothing loads from elsewhere

    def test_vendored_assets_are_served(self, client) -> None:  # type: ignore[no-untyped-def]
        htmx = client.get("/ui/static/htmx/htmx.min.js")
        assert htmx.status_code == 200
        assert "htmx" in htmx.text[:200]
        assert "Zero-Clause BSD" in client.get("/ui/static/htmx/LICENSE").text
        css = client.get("/ui/static/ui.css")
        assert css.status_code == 200
        assert ":focus-visible" in css.text
        assert "cache-control" not in css.headers

    def test_every_form_carries_the_csrf_token(
        self, as_admin: Ui, plan_id: str, tenant_id: str
    ) -> None:
        for path in (
            f"/ui/plans/{plan_id}",
            f"/ui/plans/{plan_id}/actions/start",
            "/ui/plans/new",
            "/ui/tenants/new",
            f"/ui/tenants/{tenant_id}",
            f"/ui/tenants/{tenant_id}/posture",
            f"/ui/plans/{plan_id}/posture",
        ):
            text = as_admin.client.get(path).text
            posts = text.count('method="post"')
            assert posts > 0, path
            assert text.count('name="csrf_token"') == posts, path
