"""``coatcheck access check`` and what ``coatcheck check`` says about forward auth."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from coatcheck.auth.access import AccessRules
from coatcheck.service.config import read_toml

from .test_cli import PASSWORD, instance, run

__all__ = ["instance"]  # a fixture, used by name

README = Path(__file__).parents[2] / "README.md"

RULES = """
[access_control]
default_policy = "deny"

[[access_control.rules]]
domain = "app.example.com"
resources = ["^/public/"]
policy = "bypass"

[[access_control.rules]]
domain = "app.example.com"
resources = ["^/admin/"]
subject = ["role:admin"]
policy = "one_factor"

[[access_control.rules]]
domain = "dash.example.com"
policy = "two_factor"

[[access_control.rules]]
domain = "ops.example.com"
networks = ["10.0.0.0/8"]
methods = ["GET"]
policy = "one_factor"

[[access_control.rules]]
domain = "*.example.com"
policy = "one_factor"
"""


@pytest.fixture
def rules_file(tmp_path: Path, instance: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "coatcheck.toml"
    path.write_text(RULES)
    monkeypatch.setenv("COATCHECK_CONFIG", str(path))
    return path


def test_anonymous_request_names_every_rule_and_the_decision(rules_file: Path) -> None:
    out = run("access", "check", "--url", "https://app.example.com/admin/x?y=1")
    lines = out.splitlines()
    assert lines[0] == "GET https://app.example.com/admin/x?y=1 from an unknown address as " + (
        "nobody (not logged in)"
    )
    assert "rule 1" in lines[1] and "no resource matches /admin/x?y=1" in lines[1]
    assert "rule 2" in lines[2] and "nobody is logged in" in lines[2]
    assert "rule 5" in lines[5] and lines[5].endswith("matches")
    assert lines[-1] == "decision: sent to log in (401 / redirect to the portal), by rule 5 " + (
        "(one_factor)"
    )


def test_a_user_s_roles_decide(rules_file: Path) -> None:
    run("user", "create", "alice", "--admin", "--password-stdin", input=PASSWORD + "\n")
    run("user", "create", "bobby", "--password-stdin", input=PASSWORD + "\n")
    alice = run("access", "check", "--url", "https://app.example.com/admin/", "--user", "alice")
    assert "as alice (roles: admin)" in alice
    assert alice.splitlines()[-1] == "decision: allowed, by rule 2 (one_factor)"
    bobby = run("access", "check", "--url", "https://app.example.com/admin/", "--user", "bobby")
    assert "bobby is not in the subject" in bobby
    assert bobby.splitlines()[-1] == "decision: allowed, by rule 5 (one_factor)"
    public = run("access", "check", "--url", "https://app.example.com/public/a")
    assert public.splitlines()[-1] == "decision: allowed, by rule 1 (bypass)"
    two = run("access", "check", "--url", "https://dash.example.com/", "--user", "bobby")
    assert "decision: allowed, by rule 3 (two_factor)" in two
    assert "a password-only session is sent to step up" in two


def test_method_and_address_decide(rules_file: Path) -> None:
    inside = run("access", "check", "--url", "https://ops.example.com/", "--ip", "10.1.2.3")
    assert "by rule 4 (one_factor)" in inside
    outside = run("access", "check", "--url", "https://ops.example.com/", "--ip", "192.0.2.1")
    assert "192.0.2.1 is in none of its networks" in outside and "by rule 5" in outside
    posted = run(
        "access",
        "check",
        "--url",
        "https://ops.example.com/",
        "--ip",
        "10.1.2.3",
        "--method",
        "post",
    )
    assert posted.startswith("POST ") and "POST is not among its methods" in posted
    elsewhere = run("access", "check", "--url", "https://example.org/")
    assert elsewhere.splitlines()[-1] == "decision: denied (403), by default_policy (deny)"
    dotted = run("access", "check", "--url", "https://app.example.com/public/%2e%2e/admin/")
    assert "refused before any rule: the path holds a dot segment" in dotted
    assert dotted.splitlines()[-1] == "decision: denied (403), by the path check (deny)"


def test_bad_input_is_a_clear_error(rules_file: Path, tmp_path: Path) -> None:
    for url in ("javascript:alert(1)", "/relative", "https://user@app.example.com/", "https://"):
        out = run("access", "check", "--url", url, ok=False)
        assert "Error:" in out and "Traceback" not in out
    assert "no user named 'nobody'" in run(
        "access", "check", "--url", "https://app.example.com/", "--user", "nobody", ok=False
    )
    rules_file.write_text(RULES.replace('policy = "bypass"', 'policy = "open"'))
    out = run("access", "check", "--url", "https://app.example.com/", ok=False)
    assert "rule 1" in out and "policy must be one of" in out


def test_check_reviews_proxies_cookie_domain_and_rules(
    rules_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = run("check", ok=False)  # rules without a public URL or trusted proxies: problems
    assert "access rules: 5 rule(s), default_policy deny" in out
    assert re.search(r"PROBLEM +access rules without COATCHECK_PUBLIC_URL", out)
    assert re.search(r"PROBLEM +access rules without COATCHECK_TRUSTED_PROXIES", out)
    monkeypatch.setenv("COATCHECK_PUBLIC_URL", "https://auth.example.com")
    monkeypatch.setenv("COATCHECK_TRUSTED_PROXIES", "127.0.0.1/32")
    monkeypatch.setenv("COATCHECK_COOKIE_DOMAIN", "example.com")
    out = run("check")
    assert "Domain=example.com" in out and "__Secure-session" in out
    assert re.search(r"WARNING +single sign-on: the session cookie goes to every host", out)
    assert "from 127.0.0.1/32" in out
    assert "PROBLEM" not in out
    monkeypatch.setenv("COATCHECK_TRUSTED_PROXIES", "1")
    assert re.search(r"WARNING +trusting 1 proxy hop\(s\).*from any peer", run("check"))


def test_check_warns_about_rules_that_never_match(rules_file: Path) -> None:
    rules_file.write_text(
        RULES
        + """
[[access_control.rules]]
domain = "late.example.com"
policy = "deny"
"""
    )
    out = run("check", ok=False)
    assert re.search(r"WARNING +access_control rule 6 can never match: rule 5 comes first", out)


def test_the_readme_rules_are_valid(tmp_path: Path) -> None:
    section = README.read_text().split("### Forward auth for many applications", 1)[1]
    [block] = re.findall(r"```toml\n(.*?)```", section.split("\n### ", 1)[0], flags=re.DOTALL)
    path = tmp_path / "readme.toml"
    path.write_text(block)
    rules = AccessRules.parse(read_toml(path)["COATCHECK_ACCESS_CONTROL"])
    assert [r.policy for r in rules.rules] == ["bypass", "two_factor", "one_factor"]
    assert rules.warnings == ()
