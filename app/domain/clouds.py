"""Microsoft Graph's national clouds: where a tenant's Graph token may go, and who issues it.

A token for a real tenant is only ever sent to Microsoft Graph. Each cloud has its own Graph host,
its own token scope (``https://<graph host>/.default``) and its own sign-in authority; the
authority hosts are azure-identity's ``AzureAuthorityHosts`` (a test holds them equal).
Sources: learn.microsoft.com/graph/deployments ("Microsoft Graph and Graph Explorer service
root endpoints").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

GRAPH_VERSION_PATH = "/v1.0"
"""The client is written against Graph v1.0 (``reference/graph-pim-api.md``: nothing needs beta)."""


class GraphCloud(StrEnum):
    global_ = "global"
    usgov = "usgov"
    """US Government L4 (GCC High)."""
    usgov_dod = "usgov_dod"
    """US Government L5 (DoD)."""
    china = "china"
    """Operated by 21Vianet."""


@dataclass(frozen=True)
class GraphEndpoint:
    cloud: GraphCloud
    graph_host: str
    authority_host: str

    @property
    def base_url(self) -> str:
        return f"https://{self.graph_host}{GRAPH_VERSION_PATH}"

    @property
    def scope(self) -> str:
        """The ``.default`` scope of this cloud's Graph: what a token is asked for."""
        return f"https://{self.graph_host}/.default"


GRAPH_ENDPOINTS: tuple[GraphEndpoint, ...] = (
    GraphEndpoint(GraphCloud.global_, "graph.microsoft.com", "login.microsoftonline.com"),
    GraphEndpoint(GraphCloud.usgov, "graph.microsoft.us", "login.microsoftonline.us"),
    GraphEndpoint(GraphCloud.usgov_dod, "dod-graph.microsoft.us", "login.microsoftonline.us"),
    GraphEndpoint(GraphCloud.china, "microsoftgraph.chinacloudapi.cn", "login.chinacloudapi.cn"),
)
_BY_HOST = {endpoint.graph_host: endpoint for endpoint in GRAPH_ENDPOINTS}
GLOBAL = _BY_HOST["graph.microsoft.com"]


def graph_endpoint_for(url: str) -> GraphEndpoint | None:
    """The cloud whose Graph ``url`` is, or None unless it is exactly one of them.

    Exactly: ``https``, a Graph host with no port and no user info, the ``/v1.0`` path (a
    trailing slash is fine), no query or fragment. Host names compare without case.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() != "https" or parts.query or parts.fragment:
        return None
    endpoint = _BY_HOST.get(parts.netloc.lower())
    if endpoint is None or parts.path.rstrip("/") != GRAPH_VERSION_PATH:
        return None
    return endpoint


def graph_host_endpoint(host: str) -> GraphEndpoint | None:
    """The cloud whose Graph host ``host`` is (no port), or None."""
    return _BY_HOST.get(host.lower())


def allowed_graph_urls() -> str:
    """The accepted base URLs, for messages."""
    return ", ".join(endpoint.base_url for endpoint in GRAPH_ENDPOINTS)
