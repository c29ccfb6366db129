"""GraphTokenAuth (caching, expiry, 401 refresh) and build_credential."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from app.domain.tenant import (
    CertificateAuth,
    ClientSecretAuth,
    DefaultChainAuth,
    ManagedIdentityAuth,
    NoAuth,
)
from app.graph.auth import (
    GRAPH_SCOPE,
    SIMULATED_TENANT_TOKEN,
    GraphTokenAuth,
    StaticTokenCredential,
    build_auth,
    build_credential,
    graph_scope_for,
    token_tenant_for,
)
from app.graph.errors import GraphAuthError

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


def self_signed_pem(password: bytes | None = None) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pim-rollout-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    return (key_pem + cert.public_bytes(serialization.Encoding.PEM)).decode()


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
