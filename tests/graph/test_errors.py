"""GraphError.from_response: classes, both request-id spellings, rule lists, bad bodies."""

from __future__ import annotations

import json

import pytest

from app.graph.errors import (
    GraphAlreadyExistsError,
    GraphAuthError,
    GraphBadRequestError,
    GraphConflictError,
    GraphDoesNotExistError,
    GraphError,
    GraphForbiddenError,
    GraphNotFoundError,
    GraphOutcomeUnknownError,
    GraphPolicyValidationError,
    GraphRetryExhaustedError,
    GraphServerError,
    GraphThrottledError,
    parse_failed_rules,
)
from tests.fixtures import GRAPH_SAMPLES

SAMPLES = GRAPH_SAMPLES


def body(code: str, message: str = "msg", **inner: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "innerError": inner}}).encode()


class TestFromResponse:
    @pytest.mark.parametrize(
        ("status", "code", "expected"),
        [
            (400, "BadRequest", GraphBadRequestError),
            (400, "RoleAssignmentRequestPolicyValidationFailed", GraphPolicyValidationError),
            (400, "RoleAssignmentExists", GraphAlreadyExistsError),
            (400, "roleassignmentexists", GraphAlreadyExistsError),
            (400, "RoleAssignmentDoesNotExist", GraphDoesNotExistError),
            (401, "InvalidAuthenticationToken", GraphAuthError),
            (403, "Authorization_RequestDenied", GraphForbiddenError),
            (404, "Request_ResourceNotFound", GraphNotFoundError),
            (409, "Conflict", GraphConflictError),
            (429, "TooManyRequests", GraphThrottledError),
            (500, "InternalServerError", GraphServerError),
            (503, "serviceNotAvailable", GraphServerError),
            (405, "Request_BadRequest", GraphError),
        ],
    )
    def test_picks_the_class(self, status: int, code: str, expected: type[GraphError]) -> None:
        error = GraphError.from_response(status, {}, body(code))
        assert type(error) is expected
        assert error.status == status
        assert error.code == code

    def test_subclasses_of_bad_request(self) -> None:
        for code in (
            "RoleAssignmentExists",
            "RoleAssignmentDoesNotExist",
            "RoleAssignmentRequestPolicyValidationFailed",
        ):
            assert isinstance(GraphError.from_response(400, {}, body(code)), GraphBadRequestError)

    def test_reads_hyphenated_request_id(self) -> None:
        error = GraphError.from_response(
            404, {}, body("NotFound", **{"request-id": "r-1", "client-request-id": "c-1"})
        )
        assert error.request_id == "r-1"
        assert error.client_request_id == "c-1"

    def test_reads_camel_case_request_id(self) -> None:
        error = GraphError.from_response(404, {}, body("NotFound", requestId="r-2"))
        assert error.request_id == "r-2"

    def test_falls_back_to_headers(self) -> None:
        error = GraphError.from_response(
            404, {"Request-Id": "r-3", "client-request-id": "c-3"}, body("NotFound")
        )
        assert error.request_id == "r-3"
        assert error.client_request_id == "c-3"

    def test_our_client_request_id_when_graph_does_not_echo_it(self) -> None:
        error = GraphError.from_response(404, {}, body("NotFound"), client_request_id="ours")
        assert error.client_request_id == "ours"

    def test_inner_code(self) -> None:
        sample = (SAMPLES / "error_example.response.json").read_bytes()
        error = GraphError.from_response(400, {}, sample)
        assert error.code == "badRequest"
        assert error.inner_code == "invalidRange"
        assert error.request_id == "request-id"
        assert error.message == "Uploaded fragment overlaps with existing data."

    def test_throttling_sample_with_fractional_retry_after(self) -> None:
        sample = (SAMPLES / "throttling_429.response.json").read_bytes()
        error = GraphError.from_response(429, {"Retry-After": "2.128"}, sample)
        assert isinstance(error, GraphThrottledError)
        assert error.retry_after == pytest.approx(2.128)
        assert error.request_id == "94fb3b52-452a-4535-a601-69e0a90e3aa2"
        assert error.inner_code == "429"

    @pytest.mark.parametrize(
        "raw", [b"<html>Service Unavailable</html>", b"", b"not json", b"[1, 2]", b"\xff\xfe"]
    )
    def test_tolerates_non_graph_bodies(self, raw: bytes) -> None:
        error = GraphError.from_response(503, {}, raw)
        assert isinstance(error, GraphServerError)
        assert error.code is None
        assert not error.has_graph_error_body
        assert "503" in error.message

    def test_parsed_mapping_body(self) -> None:
        error = GraphError.from_response(403, {}, {"error": {"code": "", "message": "nope"}})
        assert isinstance(error, GraphForbiddenError)
        assert error.code == ""
        assert error.has_graph_error_body

    def test_str_names_ids_and_status(self) -> None:
        error = GraphError.from_response(
            404,
            {"request-id": "r"},
            body("NotFound", "gone"),
            method="GET",
            path="/v1.0/x",
            client_request_id="c",
        )
        assert str(error) == "GET /v1.0/x: 404 NotFound: gone (request-id=r, client-request-id=c)"


class TestPolicyValidation:
    def test_failed_rules_from_message(self) -> None:
        error = GraphError.from_response(
            400,
            {},
            body(
                "RoleAssignmentRequestPolicyValidationFailed",
                'The following policy rules failed: ["MfaRule"]',
            ),
        )
        assert isinstance(error, GraphPolicyValidationError)
        assert error.failed_rules == ["MfaRule"]

    def test_several_rules(self) -> None:
        message = 'The following policy rules failed: ["ExpirationRule","JustificationRule"]'
        assert parse_failed_rules(message) == ["ExpirationRule", "JustificationRule"]

    def test_single_quoted_rules(self) -> None:
        assert parse_failed_rules("rules failed: ['MfaRule', 'TicketingRule']") == [
            "MfaRule",
            "TicketingRule",
        ]

    def test_no_list(self) -> None:
        assert parse_failed_rules("The request violates policy.") == []


class TestSpecialErrors:
    def test_outcome_unknown_carries_the_call(self) -> None:
        error = GraphOutcomeUnknownError(
            method="POST", path="/v1.0/x", client_request_id="c", reason="timed out"
        )
        assert error.status is None
        assert "read the target state" in str(error)
        assert "client-request-id=c" in str(error)

    def test_exhausted_copies_the_last_error(self) -> None:
        last = GraphThrottledError("slow", status=429, code="TooManyRequests", retry_after=3.0)
        error = GraphRetryExhaustedError(last, attempts=6)
        assert (error.status, error.code, error.retry_after) == (429, "TooManyRequests", 3.0)
        assert error.last_error is last
        assert "6 attempt(s)" in str(error)
