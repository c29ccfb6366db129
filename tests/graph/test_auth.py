"""GraphTokenAuth (caching, expiry, 401 refresh) and build_credential."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity import CredentialUnavailableError
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from pydantic import SecretStr

from app.domain.tenant import (
    CertificateAuth,
    ClientSecretAuth,
    DefaultChainAuth,
    ManagedIdentityAuth,
    NoAuth,
)
from app.graph.auth import (
    FAILURE_HOLD_SECONDS,
    GRAPH_SCOPE,
    SIMULATED_TENANT_TOKEN,
    GraphTokenAuth,
    StaticTokenCredential,
    build_auth,
    build_credential,
    graph_scope_for,
    token_tenant_for,
)
from app.graph.errors import GraphAuthError, GraphCredentialError
from tests.factories import certificate_pem as self_signed_pem

from .fakes import FakeCredential

TENANT = uuid.UUID("11111111-2222-3333-4444-555555555555")
CLIENT = uuid.UUID("66666666-7777-8888-9999-000000000000")


class Recorder:
    """An ``httpx.MockTransport`` handler that answers 401 to the listed tokens."""

    def __init__(self, reject: set[str] | None = None) -> None:
        self.reject = reject or set()
        self.authorizations: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        header = request.headers.get("Authorization", "")
        self.authorizations.append(header)
        if header.removeprefix("Bearer ") in self.reject:
            return httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken"}})
        return httpx.Response(200, json={"ok": True})


def client_with(auth: httpx.Auth, recorder: Recorder) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        auth=auth,
        transport=httpx.MockTransport(recorder),
        base_url="https://graph.microsoft.com/v1.0",
    )


class TestGraphTokenAuth:
    async def test_token_is_cached(self) -> None:
        credential = FakeCredential("t1", "t2")
        recorder = Recorder()
        async with client_with(GraphTokenAuth(credential), recorder) as client:
            await client.get("/me")
            await client.get("/me")
        assert recorder.authorizations == ["Bearer t1", "Bearer t1"]
        assert credential.calls == [((GRAPH_SCOPE,), None)]

    async def test_concurrent_requests_fetch_once(self) -> None:
        credential = FakeCredential("t1")
        recorder = Recorder()
        async with client_with(GraphTokenAuth(credential), recorder) as client:
            await asyncio.gather(*(client.get("/me") for _ in range(10)))
        assert len(credential.calls) == 1

    async def test_refreshes_near_expiry(self) -> None:
        now = [1_000_000.0]
        credential = FakeCredential("t1", "t2", lifetime=600.0, wall_clock=lambda: now[0])
        recorder = Recorder()
        auth = GraphTokenAuth(credential, wall_clock=lambda: now[0])
        async with client_with(auth, recorder) as client:
            await client.get("/me")
            now[0] += 250.0  # 350 s left: still good
            await client.get("/me")
            now[0] += 100.0  # 250 s left: inside the 5-minute margin
            await client.get("/me")
        assert recorder.authorizations == ["Bearer t1", "Bearer t1", "Bearer t2"]

    async def test_401_refreshes_once_and_resends(self) -> None:
        credential = FakeCredential("stale", "fresh")
        recorder = Recorder(reject={"stale"})
        async with client_with(GraphTokenAuth(credential), recorder) as client:
            response = await client.get("/me")
        assert response.status_code == 200
        assert recorder.authorizations == ["Bearer stale", "Bearer fresh"]

    async def test_second_401_is_returned(self) -> None:
        credential = FakeCredential("bad1", "bad2", "bad3")
        recorder = Recorder(reject={"bad1", "bad2", "bad3"})
        async with client_with(GraphTokenAuth(credential), recorder) as client:
            response = await client.get("/me")
        assert response.status_code == 401
        assert len(recorder.authorizations) == 2

    async def test_tenant_is_passed_for_the_default_chain(self) -> None:
        credential = FakeCredential("t1")
        recorder = Recorder()
        auth = GraphTokenAuth(
            credential, scope="https://graph.microsoft.us/.default", tenant_id=str(TENANT)
        )
        async with client_with(auth, recorder) as client:
            await client.get("/me")
        assert credential.calls == [(("https://graph.microsoft.us/.default",), str(TENANT))]

    async def test_token_failure_is_an_auth_error_without_secrets(
        self, captured_logs: list[dict[str, Any]]
    ) -> None:
        secret = "s3cr3t-value-Q~abcdefghijklmnop"
        credential = FakeCredential(
            error=RuntimeError(f"AADSTS7000215: Invalid client secret provided: {secret}")
        )
        recorder = Recorder()
        async with client_with(GraphTokenAuth(credential), recorder) as client:
            with pytest.raises(GraphAuthError) as caught:
                await client.get("/me")
        assert "AADSTS7000215" in str(caught.value)
        assert secret not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__
        assert recorder.authorizations == []
        assert secret not in repr(captured_logs)

    def test_sync_use_is_refused(self) -> None:
        with (
            httpx.Client(
                auth=GraphTokenAuth(FakeCredential()), transport=httpx.MockTransport(Recorder())
            ) as client,
            pytest.raises(RuntimeError, match="AsyncClient"),
        ):
            client.get("https://graph.microsoft.com/v1.0/me")

    async def test_aclose_closes_the_credential(self) -> None:
        credential = FakeCredential()
        await GraphTokenAuth(credential).aclose()
        assert credential.closed


class TestBuildCredential:
    async def test_client_secret(self) -> None:
        credential = build_credential(
            ClientSecretAuth(
                kind="client_secret",
                tenant_id=TENANT,
                client_id=CLIENT,
                client_secret=SecretStr("not-a-real-secret"),
            )
        )
        assert isinstance(credential, ClientSecretCredential)
        await credential.close()

    @pytest.mark.parametrize("password", [None, b"pfx-pass"])
    async def test_certificate_from_pem(self, password: bytes | None) -> None:
        credential = build_credential(
            CertificateAuth(
                kind="certificate",
                tenant_id=TENANT,
                client_id=CLIENT,
                certificate_pem=SecretStr(self_signed_pem(password)),
                certificate_password=SecretStr(password.decode()) if password else None,
            )
        )
        assert isinstance(credential, CertificateCredential)
        await credential.close()

    async def test_certificate_with_wrong_password_fails_at_build(self) -> None:
        with pytest.raises(ValueError):
            build_credential(
                CertificateAuth(
                    kind="certificate",
                    tenant_id=TENANT,
                    client_id=CLIENT,
                    certificate_pem=SecretStr(self_signed_pem(b"right")),
                    certificate_password=SecretStr("wrong"),
                )
            )

    @pytest.mark.parametrize("client_id", [None, CLIENT])
    async def test_managed_identity(self, client_id: uuid.UUID | None) -> None:
        credential = build_credential(
            ManagedIdentityAuth(kind="managed_identity", client_id=client_id)
        )
        assert isinstance(credential, ManagedIdentityCredential)
        await credential.close()

    @pytest.mark.parametrize("tenant_id", [None, TENANT])
    async def test_default_chain(self, tenant_id: uuid.UUID | None) -> None:
        auth = DefaultChainAuth(kind="default", tenant_id=tenant_id)
        credential = build_credential(auth)
        assert isinstance(credential, DefaultAzureCredential)
        assert token_tenant_for(auth) == (str(tenant_id) if tenant_id else None)
        await credential.close()

    async def test_no_auth_is_a_placeholder_token(self) -> None:
        credential = build_credential(NoAuth(kind="none"))
        assert isinstance(credential, StaticTokenCredential)
        token = await credential.get_token(GRAPH_SCOPE)
        assert token.token == SIMULATED_TENANT_TOKEN
        recorder = Recorder()
        async with client_with(
            build_auth(NoAuth(kind="none"), "http://sim.test/v1.0"), recorder
        ) as client:
            await client.get("/me")
        assert recorder.authorizations == ["Bearer simulated-tenant"]

    @pytest.mark.parametrize(
        ("url", "scope"),
        [
            ("https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default"),
            ("https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default"),
            ("https://dod-graph.microsoft.us/v1.0", "https://dod-graph.microsoft.us/.default"),
            (
                "https://microsoftgraph.chinacloudapi.cn/v1.0",
                "https://microsoftgraph.chinacloudapi.cn/.default",
            ),
            ("http://sim.test/v1.0", GRAPH_SCOPE),
        ],
    )
    def test_scope_follows_the_cloud(self, url: str, scope: str) -> None:
        assert graph_scope_for(url) == scope


class TestCloudsAndRefusals:
    @pytest.mark.parametrize(
        ("url", "authority", "scope"),
        [
            (
                "https://graph.microsoft.com/v1.0",
                "https://login.microsoftonline.com",
                "https://graph.microsoft.com/.default",
            ),
            (
                "https://graph.microsoft.us/v1.0",
                "https://login.microsoftonline.us",
                "https://graph.microsoft.us/.default",
            ),
            (
                "https://dod-graph.microsoft.us/v1.0",
                "https://login.microsoftonline.us",
                "https://dod-graph.microsoft.us/.default",
            ),
            (
                "https://microsoftgraph.chinacloudapi.cn/v1.0",
                "https://login.chinacloudapi.cn",
                "https://microsoftgraph.chinacloudapi.cn/.default",
            ),
        ],
    )
    async def test_the_cloud_decides_authority_and_scope(
        self, url: str, authority: str, scope: str
    ) -> None:
        auth = build_auth(
            ClientSecretAuth(
                kind="client_secret",
                tenant_id=TENANT,
                client_id=CLIENT,
                client_secret=SecretStr("not-a-real-secret"),
            ),
            url,
        )
        credential = auth._credential
        assert isinstance(credential, ClientSecretCredential)
        assert credential._client._authority == authority
        assert auth._scope == scope
        await auth.aclose()

    @pytest.mark.parametrize(
        "auth",
        [
            ManagedIdentityAuth(kind="managed_identity"),
            DefaultChainAuth(kind="default"),
        ],
    )
    def test_a_real_credential_is_not_built_for_another_host(self, auth: Any) -> None:
        with pytest.raises(GraphCredentialError) as caught:
            build_auth(auth, "https://graph.contoso.example/v1.0")
        assert "graph_base_url" in caught.value.reason
        assert caught.value.credential_kind == auth.kind

    @pytest.mark.parametrize(
        "url",
        [
            "https://graph.contoso.example/v1.0/me",
            "http://graph.microsoft.com/v1.0/me",
            "https://graph.microsoft.com:8443/v1.0/me",
            "https://graph.microsoft.us/v1.0/me",
        ],
    )
    async def test_the_token_goes_to_its_graph_host_only(self, url: str) -> None:
        credential = FakeCredential("t1")
        recorder = Recorder()
        auth = GraphTokenAuth(credential, graph_host="graph.microsoft.com", credential_kind="x")
        async with client_with(auth, recorder) as client:
            with pytest.raises(GraphCredentialError, match="refusing to send"):
                await client.get(url)
            await client.get("https://graph.microsoft.com/v1.0/me")
        assert recorder.authorizations == ["Bearer t1"]

    @pytest.mark.parametrize(
        ("error", "kind", "reason"),
        [
            (
                ClientAuthenticationError(message="AADSTS7000222: The provided client secret keys"),
                "client_secret",
                "expired",
            ),
            (
                ClientAuthenticationError(message="AADSTS700016: Application not found"),
                "client_secret",
                "no application",
            ),
            (CredentialUnavailableError(message="IMDS unreachable"), "managed_identity", "managed"),
            (CredentialUnavailableError(message="nothing found"), "default", "no credential"),
            (ValueError("bad scope"), "certificate", "not usable"),
        ],
    )
    async def test_refusals_are_the_tenants_configuration(
        self, error: Exception, kind: str, reason: str
    ) -> None:
        now = [1_000_000.0]
        credential = FakeCredential(error=error)
        auth = GraphTokenAuth(credential, credential_kind=kind, wall_clock=lambda: now[0])
        with pytest.raises(GraphCredentialError) as caught:
            await auth.ensure_token()
        assert reason in caught.value.reason
        assert caught.value.fix
        # Remembered for a while: the sign-in endpoint is not asked again at every tick.
        now[0] += FAILURE_HOLD_SECONDS - 1
        with pytest.raises(GraphCredentialError):
            await auth.ensure_token()
        assert len(credential.calls) == 1
        now[0] += 2
        with pytest.raises(GraphCredentialError):
            await auth.ensure_token()
        assert len(credential.calls) == 2

    async def test_a_failing_sign_in_endpoint_is_not_a_refusal(self) -> None:
        credential = FakeCredential(error=ServiceRequestError("connection refused"))
        with pytest.raises(GraphAuthError) as caught:
            await GraphTokenAuth(credential).ensure_token()
        assert not isinstance(caught.value, GraphCredentialError)

    def test_a_credential_azure_identity_cannot_build(self) -> None:
        auth = CertificateAuth.model_construct(
            kind="certificate",
            tenant_id=TENANT,
            client_id=CLIENT,
            certificate_pem=SecretStr("-----BEGIN PRIVATE KEY-----\ngarbage"),
            certificate_password=None,
        )
        with pytest.raises(GraphCredentialError) as caught:
            build_auth(auth, "https://graph.microsoft.com/v1.0")
        assert "could not build the certificate credential" in caught.value.reason
        assert "garbage" not in str(caught.value)
