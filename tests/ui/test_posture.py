"""The posture pages: a tenant's MS.AAD.7 pass/fail table and a plan's before and after."""

from __future__ import annotations

import csv
import io

from tests.ui.conftest import Ui, context_of, template_of

POLICY_IDS = [f"MS.AAD.7.{n}" for n in range(1, 10)]


class TestTenantPosture:
    def test_empty_for_a_viewer_without_the_button(self, as_viewer: Ui, tenant_id: str) -> None:
        response = as_viewer.client.get(f"/ui/tenants/{tenant_id}/posture")
        assert response.status_code == 200
        assert template_of(response) == "posture/tenant.html"
        assert context_of(response)["report"] is None
        assert "No posture report yet" in response.text
        assert "Take posture report now" not in response.text
        assert as_viewer.post(f"/ui/tenants/{tenant_id}/posture").status_code == 403

    def test_operator_takes_one_and_everyone_reads_it(
        self, as_operator: Ui, tenant_id: str
    ) -> None:
        detail = as_operator.client.get(f"/ui/tenants/{tenant_id}")
        assert f'href="/ui/tenants/{tenant_id}/posture"' in detail.text
        response = as_operator.post(f"/ui/tenants/{tenant_id}/posture")
        assert response.status_code == 303
        page = as_operator.client.get(response.headers["location"])
        (message,) = context_of(page)["flashes"]
        assert message.title == "Posture report taken."
        report = context_of(page)["report"]
        assert [p["policy_id"] for p in report["policies"]] == POLICY_IDS
        assert page.text.count('data-testid="posture-row"') == 9
        assert 'data-policy="MS.AAD.7.7" data-result="fail"' in page.text
        assert "security-alerts@contoso.com" in page.text
        assert 'data-kind="posture"' in page.text  # the job, listed

        download = as_operator.client.get(f"/ui/tenants/{tenant_id}/posture.csv")
        assert download.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(download.text)))
        assert [r["policy_id"] for r in rows] == POLICY_IDS
        assert [r["result"] for r in rows] == [p["result"] for p in report["policies"]]


class TestPlanPosture:
    def test_before_after_start_and_now_on_demand(self, as_operator: Ui, plan_id: str) -> None:
        empty = as_operator.client.get(f"/ui/plans/{plan_id}/posture")
        assert template_of(empty) == "plans/posture.html"
        assert "No posture report yet" in empty.text
        assert [c.label for c in context_of(empty)["columns"]] == ["Before", "Now"]

        started = as_operator.post(
            f"/ui/plans/{plan_id}/actions/start", reason="posture", confirm="yes"
        )
        assert started.status_code == 303
        page = as_operator.client.get(f"/ui/plans/{plan_id}/posture")
        columns = context_of(page)["columns"]
        assert [c.label for c in columns] == ["Before", "Now"]
        assert columns[0].report["trigger"] == "baseline"
        assert columns[0].result("MS.AAD.7.6") == "fail"
        assert 'aria-current="page">Posture</a>' in page.text
        assert page.text.count('data-testid="posture-row"') == 9
        assert "ga-approval: approval by security_team" in page.text

        taken = as_operator.post(f"/ui/plans/{plan_id}/posture")
        assert taken.status_code == 303
        page = as_operator.client.get(taken.headers["location"])
        columns = context_of(page)["columns"]
        assert columns[-1].report["trigger"] == "on_demand"
        assert columns[0].report["trigger"] == "baseline"

    def test_viewer_reads_but_cannot_take(self, as_viewer: Ui, plan_id: str) -> None:
        page = as_viewer.client.get(f"/ui/plans/{plan_id}/posture")
        assert page.status_code == 200
        assert "Take posture report now" not in page.text
        assert as_viewer.post(f"/ui/plans/{plan_id}/posture").status_code == 403
