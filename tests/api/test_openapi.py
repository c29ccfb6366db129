"""The OpenAPI description says what the API sends: problems as application/problem+json."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI


@pytest.fixture
def openapi(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(openapi: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in openapi["paths"].items()
        for method, operation in item.items()
    ]


class TestProblems:
    def test_every_error_answer_is_a_problem(self, openapi: dict[str, Any]) -> None:
        for method, path, operation in operations(openapi):
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"], (
                        method,
                        path,
                        status,
                    )
        assert "HTTPValidationError" not in openapi["components"]["schemas"]

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("POST", "/api/v1/tenants/{tenant_id}/inventory"),
            ("POST", "/api/v1/tenants/{tenant_id}/reports/collect"),
            ("POST", "/api/v1/plans/{plan_id}/preflight"),
            ("POST", "/api/v1/plans/{plan_id}/preview"),
            ("GET", "/api/v1/plans/{plan_id}/preview.csv"),
            ("POST", "/api/v1/plans/{plan_id}/{action}"),
        ],
    )
    def test_routes_that_need_a_token_document_424(
        self, openapi: dict[str, Any], method: str, path: str
    ) -> None:
        response = openapi["paths"][path][method.lower()]["responses"]["424"]
        schema = response["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/CredentialProblem"}
        assert "credential" in response["description"]

    def test_the_check_is_documented(self, openapi: dict[str, Any]) -> None:
        responses = openapi["paths"]["/api/v1/tenants/{tenant_id}/check"]["post"]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/CredentialCheckRead"
        }
        assert "424" not in responses


class TestNumbersInRange:
    """Ids and offsets beyond what the database stores are a 422, not a driver error."""

    @pytest.mark.parametrize(
        ("method", "url"),
        [
            ("DELETE", "/api/v1/tokens/99999999999999999999999"),
            ("GET", "/api/v1/tenants/x/inventory/latest?offset=99999999999999999999999"),
            ("GET", "/api/v1/plans/x/operations?offset=99999999999999999999999"),
            ("GET", "/api/v1/plans/x/baseline?offset=99999999999999999999999"),
        ],
    )
    def test_refused(self, client, tokens, method, url) -> None:  # type: ignore[no-untyped-def]
        response = client.request(method, url, headers=tokens["admin"])
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
