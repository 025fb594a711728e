"""Drive a running doorman through the Python client generated from openapi.json.

Usage: flow.py BASE_URL   (run.sh generates and installs `doorman_client` first)

Steps run in order and share state (tokens, session ids), so the first failure stops
the flow: it prints what failed and exits 1. Only when every step passes does it print
the closing "python client flow: N passed, 0 failed".

Generator notes (openapi-python-client 0.29.1):
- Error responses are not raised: each endpoint returns `Response[Model | ErrorBody]`,
  so a documented error (409, 401, ...) comes back as a typed `ErrorBody` in
  `response.parsed`. `raise_on_unexpected_status=True` turns an undocumented status
  into `errors.UnexpectedStatus`, which fails the step.
- 204 responses parse to `None`.
- `Credentials` is a union discriminated by `mode` ("token" | "cookie"); the
  generator maps it to `CredentialsTokenPair | CredentialsCookieSession`, and the
  flow asserts the login and refresh results are `CredentialsTokenPair`.
"""

import http
import secrets
import sys
import traceback
import uuid

import httpx
from doorman_client import AuthenticatedClient, Client
from doorman_client.api.auth import login, logout, refresh, register
from doorman_client.api.sessions import list_sessions, me, revoke_session
from doorman_client.models import (
    AuthSourceName,
    ErrorBody,
    LoginMode,
    LoginRequest,
    Me,
    RefreshRequest,
    RegisterRequest,
    SessionInfo,
    CredentialsTokenPair,
    User,
)

TIMEOUT = httpx.Timeout(15.0)


def expect_status(response, status, what):
    """Assert the status; on a mismatch show the body (an ErrorBody says why)."""
    assert response.status_code == status, (
        f"{what}: expected HTTP {int(status)}, got {int(response.status_code)}: "
        f"{response.content[:300]!r}"
    )


def expect_error(response, status, what):
    """Assert a documented error: the status and a typed ErrorBody with a code."""
    expect_status(response, status, what)
    body = response.parsed
    assert isinstance(body, ErrorBody), (
        f"{what}: expected a typed ErrorBody, got {type(body).__name__}"
    )
    assert body.error and body.message, f"{what}: empty error body {body!r}"
    return body


class Flow:
    def __init__(self, base_url):
        self.base_url = base_url.rstrip("/")
        self.anon = Client(
            base_url=self.base_url, raise_on_unexpected_status=True, timeout=TIMEOUT
        )
        self.email = f"pyclient-{uuid.uuid4().hex[:16]}@example.org"
        self.password = "py " + secrets.token_urlsafe(18)

    def authed(self, token):
        return AuthenticatedClient(
            base_url=self.base_url,
            token=token,
            raise_on_unexpected_status=True,
            timeout=TIMEOUT,
        )

    def login(self, what):
        r = login.sync_detailed(
            client=self.anon,
            body=LoginRequest(
                email=self.email, password=self.password, mode=LoginMode.TOKEN
            ),
        )
        expect_status(r, http.HTTPStatus.OK, what)
        pair = r.parsed
        assert isinstance(pair, CredentialsTokenPair), (
            f"{what}: token mode should parse as CredentialsTokenPair, got {type(pair).__name__}"
        )
        assert pair.token_type == "Bearer", f"{what}: token_type {pair.token_type!r}"
        assert pair.access_token and pair.refresh_token, f"{what}: empty token(s)"
        assert pair.expires_in > 0 and pair.refresh_expires_in > 0, (
            f"{what}: non-positive lifetimes {pair.expires_in}/{pair.refresh_expires_in}"
        )
        assert pair.user.id == self.user.id, (
            f"{what}: logged in as {pair.user.id}, registered {self.user.id}"
        )
        return pair

    def me(self, token):
        return me.sync_detailed(client=self.authed(token))

    # --- the steps, in order -------------------------------------------------------

    def step_register(self):
        r = register.sync_detailed(
            client=self.anon,
            body=RegisterRequest(
                email=self.email, password=self.password, display_name="Py Client"
            ),
        )
        expect_status(r, http.HTTPStatus.CREATED, "register")
        user = r.parsed
        assert isinstance(user, User), f"register: expected User, got {type(user).__name__}"
        assert user.email == self.email, f"register: email {user.email!r} != {self.email!r}"
        assert user.display_name == "Py Client", (
            f"register: display_name {user.display_name!r}"
        )
        assert isinstance(user.id, uuid.UUID), f"register: id {user.id!r} is not a UUID"
        self.user = user
        return f"user {user.id}"

    def step_duplicate_register(self):
        r = register.sync_detailed(
            client=self.anon,
            body=RegisterRequest(email=self.email.upper(), password=self.password),
        )
        body = expect_error(r, http.HTTPStatus.CONFLICT, "duplicate register")
        assert body.error == "email_taken", (
            f"duplicate register: error {body.error!r}, expected 'email_taken'"
        )
        return f"409 {body.error} (same email, upper-cased)"

    def step_login(self):
        self.a = self.login("login")
        return f"session {self.a.session_id}"

    def step_me(self):
        r = self.me(self.a.access_token)
        expect_status(r, http.HTTPStatus.OK, "me")
        m = r.parsed
        assert isinstance(m, Me), f"me: expected Me, got {type(m).__name__}"
        assert m.auth_source == AuthSourceName.BEARER, (
            f"me: auth_source {m.auth_source!r}, expected 'bearer'"
        )
        assert m.session_id == self.a.session_id, (
            f"me: session {m.session_id}, logged in as {self.a.session_id}"
        )
        assert m.user.id == self.user.id, f"me: user {m.user.id} != {self.user.id}"
        return f"auth_source={m.auth_source.value}"

    def step_refresh(self):
        r = refresh.sync_detailed(
            client=self.anon, body=RefreshRequest(refresh_token=self.a.refresh_token)
        )
        expect_status(r, http.HTTPStatus.OK, "refresh")
        pair = r.parsed
        assert isinstance(pair, CredentialsTokenPair), (
            f"refresh: expected CredentialsTokenPair, got {type(pair).__name__}"
        )
        assert pair.refresh_token != self.a.refresh_token, (
            "refresh: the refresh token was not rotated"
        )
        assert pair.session_id == self.a.session_id, (
            f"refresh: session changed {self.a.session_id} -> {pair.session_id}"
        )
        r = self.me(pair.access_token)
        expect_status(r, http.HTTPStatus.OK, "me with the refreshed access token")
        assert r.parsed.session_id == self.a.session_id, (
            "me with the refreshed access token: wrong session"
        )
        self.a = pair
        return "new refresh token, same session, new access token works"

    def step_second_login(self):
        self.b = self.login("second login")
        assert self.b.session_id != self.a.session_id, (
            "second login: got the first session's id again"
        )
        return f"session {self.b.session_id}"

    def step_list_sessions(self):
        r = list_sessions.sync_detailed(client=self.authed(self.a.access_token))
        expect_status(r, http.HTTPStatus.OK, "list sessions")
        sessions = r.parsed
        assert isinstance(sessions, list) and all(
            isinstance(s, SessionInfo) for s in sessions
        ), f"list sessions: expected list[SessionInfo], got {sessions!r}"
        ids = {s.id for s in sessions}
        assert len(sessions) == 2, f"list sessions: expected 2, got {len(sessions)}"
        assert ids == {self.a.session_id, self.b.session_id}, (
            f"list sessions: ids {ids} are not the two logins'"
        )
        current = [s.id for s in sessions if s.current]
        assert current == [self.a.session_id], (
            f"list sessions: current {current}, expected exactly [{self.a.session_id}]"
        )
        for s in sessions:
            # Not idle <= absolute: the idle expiry is not capped at the absolute one.
            assert s.created_at <= s.last_used_at < min(s.idle_expires_at, s.expires_at), (
                f"list sessions: times out of order in {s!r}"
            )
        return "2 sessions, exactly one current"

    def step_revoke_second(self):
        r = revoke_session.sync_detailed(
            self.b.session_id, client=self.authed(self.a.access_token)
        )
        expect_status(r, http.HTTPStatus.NO_CONTENT, "revoke second session")
        assert r.parsed is None, f"revoke second session: body {r.parsed!r}"
        r = self.me(self.b.access_token)
        body = expect_error(
            r, http.HTTPStatus.UNAUTHORIZED, "me with the revoked session's token"
        )
        assert "www-authenticate" in r.headers, (
            "me with the revoked session's token: 401 without WWW-Authenticate"
        )
        r = self.me(self.a.access_token)
        expect_status(r, http.HTTPStatus.OK, "me with the first session after revoking the second")
        return f"204; its access token now gets 401 {body.error}"

    def step_logout(self):
        r = logout.sync_detailed(client=self.authed(self.a.access_token))
        expect_status(r, http.HTTPStatus.NO_CONTENT, "logout")
        r = self.me(self.a.access_token)
        body = expect_error(r, http.HTTPStatus.UNAUTHORIZED, "me after logout")
        return f"204; me now gets 401 {body.error}"


STEPS = [
    ("register a fresh user", Flow.step_register),
    ("duplicate register -> 409", Flow.step_duplicate_register),
    ("token login", Flow.step_login),
    ("me (bearer)", Flow.step_me),
    ("refresh", Flow.step_refresh),
    ("second login", Flow.step_second_login),
    ("list sessions", Flow.step_list_sessions),
    ("revoke the second session", Flow.step_revoke_second),
    ("logout, then me -> 401", Flow.step_logout),
]


def main():
    if len(sys.argv) != 2:
        print("usage: flow.py BASE_URL", file=sys.stderr)
        return 2
    flow = Flow(sys.argv[1])
    print(f"python client flow against {flow.base_url} as {flow.email}")
    for n, (name, step) in enumerate(STEPS, 1):
        try:
            detail = step(flow)
        except AssertionError as e:
            print(f"FAIL {n}/{len(STEPS)} {name}: {e}")
        except Exception:
            print(f"FAIL {n}/{len(STEPS)} {name}: unexpected error")
            traceback.print_exc(file=sys.stdout)
        else:
            print(f"ok   {n}/{len(STEPS)} {name}: {detail}")
            continue
        not_run = len(STEPS) - n
        print(
            f"python client flow FAILED: {n - 1} passed, 1 failed, "
            f"{not_run} not run (later steps depend on this one)"
        )
        return 1
    print(f"python client flow: {len(STEPS)} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
