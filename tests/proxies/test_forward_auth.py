"""docs/proxies run for real: nginx and Caddy, each in front of ``coatcheck serve``.

One stack per proxy for the session (conftest): the proxy with the docs'
configuration on a free port, real TLS for auth/app/dash.example.com, coatcheck
with the access rules of :data:`~.harness.RULES`, and two applications that
record what they get. Every scenario runs through both.
"""

from __future__ import annotations

import pytest

from . import scenarios
from .harness import Stack


@pytest.fixture(params=["nginx", "caddy"])
def stack(request: pytest.FixtureRequest) -> Stack:
    found: Stack = request.getfixturevalue(f"{request.param}_stack")
    return found


def test_an_anonymous_visitor_is_sent_to_the_portal(stack: Stack) -> None:
    scenarios.anonymous_is_sent_to_the_portal(stack)


def test_logging_in_returns_to_the_original_url(stack: Stack) -> None:
    scenarios.login_returns_to_the_original_url(stack)


def test_a_bypass_path_is_open_to_anyone(stack: Stack) -> None:
    scenarios.a_bypass_path_is_open_to_anyone(stack)


def test_one_login_opens_a_one_factor_site(stack: Stack) -> None:
    scenarios.one_login_opens_every_one_factor_site(stack)


def test_a_two_factor_site_sends_a_password_only_session_to_step_up(stack: Stack) -> None:
    scenarios.two_factor_needs_a_second_factor(stack)


def test_a_role_restricted_area(stack: Stack) -> None:
    scenarios.a_role_restricted_area(stack)


def test_the_app_sees_exactly_coatchecks_identity_never_a_forged_one(stack: Stack) -> None:
    scenarios.the_app_sees_exactly_coatchecks_identity(stack)


def test_logging_out_at_the_portal_ends_access_to_every_site(stack: Stack) -> None:
    scenarios.logout_ends_access_everywhere(stack)


def test_a_session_revoked_at_the_portal_is_refused_at_its_next_request(stack: Stack) -> None:
    scenarios.a_revoked_session_is_refused_at_once(stack)


def test_forged_original_url_and_forwarded_headers_change_nothing(stack: Stack) -> None:
    scenarios.forged_original_url_headers_change_nothing(stack)


def test_the_portal_does_not_answer_proxy_questions(stack: Stack) -> None:
    scenarios.the_portal_does_not_answer_proxy_questions(stack)


def test_a_request_line_naming_another_host_opens_nothing(stack: Stack) -> None:
    scenarios.a_request_line_naming_another_host_opens_nothing(stack)


def test_a_script_is_answered_401_not_a_page(caddy_stack: Stack) -> None:
    # Caddy's forward-auth: a client that is not loading a page gets 401, not a redirect.
    scenarios.a_script_is_told_401(caddy_stack)
