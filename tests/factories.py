"""Builders and fakes shared by tests."""

from __future__ import annotations

import asyncio
import copy
import functools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from fastapi import FastAPI

    from app.services.context import AppContext

ROOT = Path(__file__).resolve().parent.parent
PLANS_DIR = ROOT / "app" / "rollout_plans"  # the packaged plan templates
GA = "62e90394-69f5-4237-9190-012177145e10"
PRA = "e8611ab8-c189-46e8-94e1-60213ab1f814"
USER_ADMIN = "fe930be7-5e62-47db-91af-98c3a49a38b1"
REPORTS_READER = "4a5d8f65-41da-4de4-8968-e035b65339cf"
# In-process rigs assert on a long request's outcome, so it must not be cut off by the server's
# job wait (2 s by default) on a slow machine; tests of the wait itself set their own.
TEST_JOB_WAIT_SECONDS = 60.0


_shared_app: list[tuple[FastAPI, int]] = []


def app_under_test(context: AppContext) -> FastAPI:
    """The app, serving ``context``: one app per test process, bound to each test's context.

    Building an app costs a tenth of a second of CPU (FastAPI builds every route), and most
    tests build one. An app is bound to its context in one place (``app.main.bind_context``),
    so a test gets the same routes with its own context, settings, job runner and UI session
    key. A test that changed the app's routes gets it rebuilt for the next one; a test that
    needs two apps at once builds the second with ``create_app``.
    """
    from app.main import bind_context, create_app

    if _shared_app:
        app, routes = _shared_app[0]
        if _route_count(app) == routes:
            bind_context(app, context)
            return app
        _shared_app.clear()
    app = create_app(context.settings, context=context)
    _shared_app.append((app, _route_count(app)))
    return app


def _route_count(app: FastAPI) -> int:
    return len(app.router.routes) + len(app.state.ui.router.routes)


class VirtualSeconds:
    """Monotonic seconds that pass only when something sleeps on them.

    For a Graph client under test: its pacing and retry waits are computed as in production
    (slots reserved, Retry-After honoured, backoff doubled) and cost no wall time. Concurrent
    sleepers each move the clock, so time runs ahead, never behind: nothing waits too little
    by it.
    """

    def __init__(self) -> None:
        self.now = 1000.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self.now += seconds
        await asyncio.sleep(0)


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> datetime:
        self.current += timedelta(**kwargs)
        return self.current


def plan_data(name: str = "default", **over: Any) -> dict[str, Any]:
    """The raw YAML data of a shipped plan, with top-level fields replaced."""
    data: dict[str, Any] = yaml.safe_load((PLANS_DIR / f"{name}.yaml").read_text())
    data = copy.deepcopy(data)
    data.update(over)
    return data


def tenant_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Contoso",
        "graph_base_url": "http://contoso.test/v1.0",
        "auth": {"kind": "none"},
        "break_glass_ids": [
            "00000000-0000-4000-8000-00000000bg01".replace("bg", "0b"),
            "00000000-0000-4000-8000-0000000b0002",
        ],
        "bindings": {
            "it_platform_team": {"kind": "group", "id": "11111111-1111-4111-8111-111111111111"},
            "security_team": {"kind": "group", "id": "22222222-2222-4222-8222-222222222222"},
            "managers": {"kind": "group", "id": "33333333-3333-4333-8333-333333333333"},
            "role_owners": {
                "kind": "role_owners",
                "owners": {GA: "44444444-4444-4444-8444-444444444444"},
                "fallback": "44444444-4444-4444-8444-444444444444",
            },
            "helpdesk": {"kind": "users", "ids": ["55555555-5555-4555-8555-555555555555"]},
            "security_team_mailbox": {"kind": "mailbox", "addresses": ["secops@contoso.test"]},
        },
        "comms": {
            "sender": "66666666-6666-4666-8666-666666666666",
            "helpdesk": {
                "name": "IT Service Desk",
                "email": "help@contoso.test",
                "phone": "+1 555 0100",
            },
        },
    }
    body.update(over)
    return body


@functools.cache
def rsa_key(n: int = 0) -> rsa.RSAPrivateKey:
    """The ``n``-th test RSA key, made once per run (generating one takes a while)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate_pem(
    password: bytes | None = None,
    *,
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    certified_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None,
    include_key: bool = True,
    include_certificate: bool = True,
) -> str:
    """A PEM as a tenant's certificate auth takes it: the private key, then a self-signed
    certificate (for ``certified_key``, by default the same key)."""
    key = key or rsa_key()
    certified = certified_key or key
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pim-rollout-test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(certified.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(certified, hashes.SHA256())
    )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    parts = ([key_pem] if include_key else []) + (
        [cert.public_bytes(serialization.Encoding.PEM)] if include_certificate else []
    )
    return b"".join(parts).decode()
