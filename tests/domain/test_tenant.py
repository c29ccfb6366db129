"""A tenant's credential and Graph endpoint are checked when given (``TenantSpec``)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from azure.identity import AzureAuthorityHosts
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import ValidationError

from app.domain.clouds import GRAPH_ENDPOINTS, GraphCloud, graph_endpoint_for
from app.domain.tenant import TRUSTED_AUTH, TenantSpec
from app.domain.validation import problems_from_validation_error
from tests.factories import certificate_pem, rsa_key

TENANT = str(uuid.UUID("8c2f3a31-8d6c-4f6b-9d6d-7c1f0e9b1a11"))
CLIENT = str(uuid.UUID("4b1d5f0e-2f0b-4c6a-8d8e-3f4a5b6c7d8e"))
SECRET = "Zq8~abcDEF.ghi_jkl-mno0123456789pqrstuv"


def secret_auth(**over: Any) -> dict[str, Any]:
    return {
        "kind": "client_secret",
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "client_secret": SECRET,
        **over,
    }


def cert_auth(pem: str, password: str | None = None) -> dict[str, Any]:
    auth = {"kind": "certificate", "tenant_id": TENANT, "client_id": CLIENT, "certificate_pem": pem}
    if password is not None:
        auth["certificate_password"] = password
    return auth


def problems(body: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        TenantSpec.model_validate({"name": "Contoso", **body}, **kwargs)
    return {p.path: p.message for p in problems_from_validation_error(caught.value)}


class TestClientSecret:
    def test_a_secret_value_is_accepted(self) -> None:
        spec = TenantSpec.model_validate({"name": "Contoso", "auth": secret_auth()})
        assert spec.graph_base_url == "https://graph.microsoft.com/v1.0"

    @pytest.mark.parametrize(
        ("secret", "reason"),
        [
            ("", "must not be empty"),
            (" padded~secret ", "spaces"),
            ("two\nlines", "control characters"),
            ("x" * 1025, "longer than"),
            ("0f8fad5b-d9cb-469f-a165-70867728950e", "secret's ID"),
        ],
    )
    def test_shapes_azure_identity_or_entra_would_refuse(self, secret: str, reason: str) -> None:
        found = problems({"auth": secret_auth(client_secret=secret)})
        assert list(found) == ["auth.client_secret"]
        assert reason in found["auth.client_secret"]
        if secret.strip():
            assert secret.strip() not in found["auth.client_secret"]

    @pytest.mark.parametrize("field", ["tenant_id", "client_id"])
    @pytest.mark.parametrize(
        "value", ["not-a-guid", "00000000-0000-0000-0000-000000000000", "", "62e90394-69f5"]
    )
    def test_ids_are_real_guids(self, field: str, value: str) -> None:
        assert list(problems({"auth": secret_auth(**{field: value})})) == [f"auth.{field}"]


class TestCertificate:
    @pytest.mark.parametrize("password", [None, b"pfx-pass"])
    def test_key_and_certificate_are_accepted(self, password: bytes | None) -> None:
        pem = certificate_pem(password)
        TenantSpec.model_validate(
            {"name": "C", "auth": cert_auth(pem, password.decode() if password else None)}
        )

    @pytest.mark.parametrize(
        ("pem", "password", "path", "reason"),
        [
            ("not a pem", None, "auth.certificate_pem", "no certificate"),
            (certificate_pem(include_key=False), None, "auth.certificate_pem", "no private key"),
            (
                certificate_pem(include_certificate=False),
                None,
                "auth.certificate_pem",
                "no certificate",
            ),
            (
                certificate_pem(certified_key=rsa_key(1)),
                None,
                "auth.certificate_pem",
                "does not belong",
            ),
            (
                certificate_pem(key=ec.generate_private_key(ec.SECP256R1())),
                None,
                "auth.certificate_pem",
                "must be RSA",
            ),
            (certificate_pem(b"right"), None, "auth.certificate_password", "is encrypted"),
            (certificate_pem(b"right"), "wrong", "auth.certificate_password", "does not open"),
            (certificate_pem(), "spare", "auth.certificate_password", "not encrypted"),
            ("é" + certificate_pem(), None, "auth.certificate_pem", "ASCII"),
        ],
    )
    def test_refusals_name_the_field(
        self, pem: str, password: str | None, path: str, reason: str
    ) -> None:
        found = problems({"auth": cert_auth(pem, password)})
        assert list(found) == [path]
        assert reason in found[path]
        assert "PRIVATE KEY" not in found[path].replace("BEGIN PRIVATE KEY-----)", "")

    def test_stored_material_is_not_checked_again_when_trusted(self) -> None:
        TenantSpec.model_validate(
            {"name": "C", "auth": cert_auth("(stored)")}, context={TRUSTED_AUTH: True}
        )


class TestGraphBaseUrl:
    @pytest.mark.parametrize(
        ("url", "stored", "cloud"),
        [
            (
                "https://graph.microsoft.com/v1.0",
                "https://graph.microsoft.com/v1.0",
                GraphCloud.global_,
            ),
            (
                "https://graph.microsoft.us/v1.0/",
                "https://graph.microsoft.us/v1.0",
                GraphCloud.usgov,
            ),
            (
                "https://DOD-Graph.microsoft.us/v1.0",
                "https://dod-graph.microsoft.us/v1.0",
                GraphCloud.usgov_dod,
            ),
            (
                "https://microsoftgraph.chinacloudapi.cn/v1.0",
                "https://microsoftgraph.chinacloudapi.cn/v1.0",
                GraphCloud.china,
            ),
        ],
    )
    def test_graph_clouds_are_accepted(self, url: str, stored: str, cloud: GraphCloud) -> None:
        spec = TenantSpec.model_validate(
            {"name": "C", "auth": secret_auth(), "graph_base_url": url}
        )
        assert spec.graph_base_url == stored
        endpoint = graph_endpoint_for(stored)
        assert endpoint is not None
        assert endpoint.cloud is cloud

    @pytest.mark.parametrize(
        "url",
        [
            "https://graph.example.com/v1.0",
            "http://graph.microsoft.com/v1.0",
            "https://graph.microsoft.com.evil.example/v1.0",
            "https://graph.microsoft.com@evil.example/v1.0",
            "https://evil.example#@graph.microsoft.com/v1.0",
            "https://graph.microsoft.com:8443/v1.0",
            "https://graph.microsoft.com/beta",
            "https://graph.microsoft.com/",
            "https://graph.microsoft.com/v1.0/users",
            "http://127.0.0.1:8765/v1.0",
            "http://sim.test/v1.0",
        ],
    )
    @pytest.mark.parametrize(
        "auth",
        [
            secret_auth(),
            {"kind": "managed_identity"},
            {"kind": "default", "tenant_id": TENANT},
        ],
    )
    def test_a_real_credential_only_talks_to_graph(self, url: str, auth: dict[str, Any]) -> None:
        found = problems({"auth": auth, "graph_base_url": url})
        assert list(found) == ["graph_base_url"]

    def test_a_simulated_tenant_stays_local(self) -> None:
        spec = TenantSpec.model_validate(
            {"name": "C", "auth": {"kind": "none"}, "graph_base_url": "http://127.0.0.1:8765/v1.0"}
        )
        assert spec.graph_base_url == "http://127.0.0.1:8765/v1.0"
        found = problems({"auth": {"kind": "none"}})  # the default is Graph itself
        assert "only for a simulated tenant" in found["graph_base_url"]

    def test_authorities_are_azure_identitys(self) -> None:
        hosts = {e.cloud: e.authority_host for e in GRAPH_ENDPOINTS}
        assert hosts == {
            GraphCloud.global_: AzureAuthorityHosts.AZURE_PUBLIC_CLOUD,
            GraphCloud.usgov: AzureAuthorityHosts.AZURE_GOVERNMENT,
            GraphCloud.usgov_dod: AzureAuthorityHosts.AZURE_GOVERNMENT,
            GraphCloud.china: AzureAuthorityHosts.AZURE_CHINA,
        }
        assert {e.scope for e in GRAPH_ENDPOINTS} == {
            "https://graph.microsoft.com/.default",
            "https://graph.microsoft.us/.default",
            "https://dod-graph.microsoft.us/.default",
            "https://microsoftgraph.chinacloudapi.cn/.default",
        }


class TestFieldPaths:
    def test_union_tags_are_left_out(self) -> None:
        found = problems(
            {
                "auth": secret_auth(client_id="x"),
                "bindings": {"security_team": {"kind": "group", "id": "y"}},
            }
        )
        assert set(found) == {"auth.client_id", "bindings.security_team.id"}


class TestGraphLimits:
    @pytest.mark.parametrize(
        ("limits", "path"),
        [
            ({"write_quota": 10**400}, "graph_limits.write_quota"),
            ({"write_window_seconds": float("inf")}, "graph_limits.write_window_seconds"),
            (
                {"min_change_interval_seconds": float("nan")},
                "graph_limits.min_change_interval_seconds",
            ),
        ],
    )
    def test_numbers_stay_finite_and_in_range(self, limits: dict[str, Any], path: str) -> None:
        found = problems({"auth": secret_auth(), "graph_limits": limits})
        assert list(found) == [path]
