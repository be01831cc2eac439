"""docs/proxies/traefik.yml: Traefik cannot be installed here, so its file is checked.

It must parse, use only option names Traefik documents, and say what the nginx
and Caddy files (which do run, in test_nginx.py and test_caddy.py) say: the
same coatcheck endpoint, the same four identity headers, the same sites.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from ..conftest import unavailable
from .harness import COATCHECK, DOCS, IDENTITY, UPSTREAMS

# The option names of Traefik's dynamic configuration (v2 and v3), from its reference
# docs: "Routers" (https://doc.traefik.io/traefik/routing/routers/), "Services"
# (https://doc.traefik.io/traefik/routing/services/), "ForwardAuth"
# (https://doc.traefik.io/traefik/middlewares/http/forwardauth/), "Headers"
# (https://doc.traefik.io/traefik/middlewares/http/headers/) and "TLS"
# (https://doc.traefik.io/traefik/https/tls/).
TOP_LEVEL = {"http", "tcp", "udp", "tls"}
HTTP = {"routers", "services", "middlewares", "serversTransports"}
ROUTER = {
    "entryPoints",
    "rule",
    "ruleSyntax",
    "priority",
    "middlewares",
    "service",
    "tls",
    "observability",
}
ROUTER_TLS = {"options", "certResolver", "domains"}
SERVICE = {"loadBalancer", "weighted", "mirroring", "failover"}
LOAD_BALANCER = {
    "servers",
    "sticky",
    "healthCheck",
    "passHostHeader",
    "serversTransport",
    "responseForwarding",
    "strategy",
}
SERVER = {"url", "weight", "preservePath"}
MIDDLEWARES = {
    "addPrefix",
    "basicAuth",
    "buffering",
    "chain",
    "circuitBreaker",
    "compress",
    "contentType",
    "digestAuth",
    "errors",
    "forwardAuth",
    "grpcWeb",
    "headers",
    "ipAllowList",
    "ipWhiteList",
    "inFlightReq",
    "passTLSClientCert",
    "plugin",
    "rateLimit",
    "redirectRegex",
    "redirectScheme",
    "replacePath",
    "replacePathRegex",
    "retry",
    "stripPrefix",
    "stripPrefixRegex",
}
FORWARD_AUTH = {
    "address",
    "tls",
    "trustForwardHeader",
    "authResponseHeaders",
    "authResponseHeadersRegex",
    "authRequestHeaders",
    "addAuthCookiesToResponse",
    "headerField",
    "forwardBody",
    "maxBodySize",
    "preserveLocationHeader",
}
HEADERS = {
    "customRequestHeaders",
    "customResponseHeaders",
    "accessControlAllowCredentials",
    "accessControlAllowHeaders",
    "accessControlAllowMethods",
    "accessControlAllowOriginList",
    "accessControlAllowOriginListRegex",
    "accessControlExposeHeaders",
    "accessControlMaxAge",
    "addVaryHeader",
    "allowedHosts",
    "hostsProxyHeaders",
    "sslProxyHeaders",
    "stsSeconds",
    "stsIncludeSubdomains",
    "stsPreload",
    "forceSTSHeader",
    "frameDeny",
    "customFrameOptionsValue",
    "contentTypeNosniff",
    "browserXssFilter",
    "customBrowserXSSValue",
    "contentSecurityPolicy",
    "contentSecurityPolicyReportOnly",
    "publicKey",
    "referrerPolicy",
    "permissionsPolicy",
    "isDevelopment",
}
TLS = {"certificates", "options", "stores"}
CERTIFICATE = {"certFile", "keyFile", "stores"}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    try:
        import yaml
    except ImportError:
        unavailable("PyYAML is not installed (it comes with the test extra's schemathesis)")
        raise AssertionError from None  # unreachable: unavailable() skips or fails
    loaded = yaml.safe_load((DOCS / "traefik.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def keys_within(where: str, found: Any, allowed: set[str]) -> None:
    assert isinstance(found, dict), f"{where} is not a mapping: {found!r}"
    unknown = set(found) - allowed
    assert not unknown, f"{where}: {sorted(unknown)} are not Traefik options"


def test_every_key_is_a_documented_traefik_option(config: dict[str, Any]) -> None:
    keys_within("the file", config, TOP_LEVEL)
    http = config["http"]
    keys_within("http", http, HTTP)
    for name, router in http["routers"].items():
        keys_within(f"router {name}", router, ROUTER)
        keys_within(f"router {name}.tls", router.get("tls", {}), ROUTER_TLS)
    for name, service in http["services"].items():
        keys_within(f"service {name}", service, SERVICE)
        keys_within(f"service {name}.loadBalancer", service["loadBalancer"], LOAD_BALANCER)
        for server in service["loadBalancer"]["servers"]:
            keys_within(f"service {name} server", server, SERVER)
    for name, middleware in http["middlewares"].items():
        keys_within(f"middleware {name}", middleware, MIDDLEWARES)
        assert len(middleware) == 1, f"middleware {name} must be of one kind"
    keys_within("tls", config["tls"], TLS)
    for certificate in config["tls"]["certificates"]:
        keys_within("tls certificate", certificate, CERTIFICATE)


def test_forward_auth_asks_coatcheck_for_the_four_identity_headers(
    config: dict[str, Any],
) -> None:
    [forward] = [
        m["forwardAuth"] for m in config["http"]["middlewares"].values() if "forwardAuth" in m
    ]
    keys_within("forwardAuth", forward, FORWARD_AUTH)
    assert forward["address"] == f"http://{COATCHECK}/api/authz/forward-auth"
    assert forward["trustForwardHeader"] is True
    assert [h.lower() for h in forward["authResponseHeaders"]] == list(IDENTITY)


def test_underscore_spellings_of_the_identity_headers_are_removed(config: dict[str, Any]) -> None:
    [strip] = [m["headers"] for m in config["http"]["middlewares"].values() if "headers" in m]
    keys_within("headers", strip, HEADERS)
    removed = strip["customRequestHeaders"]
    assert removed == {name.title().replace("-", "_"): "" for name in IDENTITY}


def test_every_site_is_protected_and_routed_like_the_other_proxies(
    config: dict[str, Any],
) -> None:
    http = config["http"]
    middlewares = http["middlewares"]
    forward = next(n for n, m in middlewares.items() if "forwardAuth" in m)
    strip = next(n for n, m in middlewares.items() if "headers" in m)
    hosts: dict[str, str] = {}
    for name, router in http["routers"].items():
        [host] = re.findall(r"Host\(`([^`]+)`\)", router["rule"])
        hosts[host] = router["service"]
        assert router["tls"] == {} and router["entryPoints"] == ["websecure"]
        for used in router.get("middlewares", []):
            assert used in middlewares, f"router {name} uses an undefined middleware {used}"
        if host == "auth.example.com":
            assert "middlewares" not in router  # the portal itself needs no login
            assert "!PathPrefix(`/api/authz/`)" in router["rule"]
        else:
            # The underscore spellings go before coatcheck's answer is copied in.
            assert router["middlewares"] == [strip, forward], name
    addresses = {
        name: [s["url"] for s in service["loadBalancer"]["servers"]]
        for name, service in http["services"].items()
    }
    assert {host: addresses[service] for host, service in hosts.items()} == {
        "auth.example.com": [f"http://{COATCHECK}"],
        "app.example.com": [f"http://{UPSTREAMS['app']}"],
        "dash.example.com": [f"http://{UPSTREAMS['dash']}"],
    }


def test_the_certificate_paths_are_the_other_proxies(config: dict[str, Any]) -> None:
    nginx = (DOCS / "nginx.conf").read_text()
    for certificate in config["tls"]["certificates"]:
        assert f"ssl_certificate     {certificate['certFile']};" in nginx
        assert f"ssl_certificate_key {certificate['keyFile']};" in nginx
