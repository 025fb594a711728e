"""The client against the real release server (DOORMAN_BIN), over real sockets:
both kinds of auth, rooms, publishes queued before welcome, logout, restarts and
kill -9, expired tokens, duplicates, a frozen server, and logs without tokens."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

import pytest
from harness import Server, TokenCalls, logout, new_user, publish_http, refresh, until
from relay import Relay

from doorman_realtime import ClientClosed, PublishQueueFull, SessionEnded


def fixed(token: str) -> TokenCalls:
    return TokenCalls(lambda reason: token)


async def test_bearer_auth_is_welcomed_as_bearer_and_ping_and_whoami_answer(server, make_client):
    tokens = new_user(server).login()
    calls = fixed(tokens["access_token"])
    c, rec = make_client(server.ws, calls, auth="bearer")
    c.start()
    welcome = await c.wait_welcome(timeout=5)
    assert welcome["auth_source"] == "bearer"
    assert welcome["session_id"] == tokens["session_id"]
    assert c.welcome == welcome and c.state == "open"
    assert calls.reasons == ["connect"]
    rtts = await asyncio.gather(c.ping(), c.ping(), c.ping())
    assert all(0 <= rtt < 5 for rtt in rtts), rtts
    me = await c.whoami()
    assert me["user_id"] == tokens["user"]["id"] and me["auth_source"] == "bearer"
    await c.close()
    assert c.state == "idle" and c.welcome is None
    assert len(rec.welcomes) == 1
    assert rec.states == ["connecting", "open", "idle"]
    with pytest.raises(ClientClosed):
        await c.wait_welcome(timeout=1)


async def test_first_frame_auth_sends_the_callbacks_token_and_is_welcomed_as_message(server, make_client):
    tokens = new_user(server).login()
    # A sync callback works as well as an async one.
    reasons: list[str] = []

    def get_token(reason: str) -> str:
        reasons.append(reason)
        return tokens["access_token"]

    c, _ = make_client(server.ws, get_token, auth="frame")
    c.start()
    welcome = await c.wait_welcome(timeout=5)
    assert welcome["auth_source"] == "message"
    assert welcome["user_id"] == tokens["user"]["id"]
    assert reasons == ["connect"]


async def test_publish_reaches_every_subscriber_of_the_room(server, make_client):
    alice, bob = new_user(server).login(), new_user(server).login()
    a, a_rec = make_client(server.ws, fixed(alice["access_token"]), rooms=["py-room"])
    b, b_rec = make_client(server.ws, fixed(bob["access_token"]), auth="frame")
    a.start()
    b.start()
    await b.wait_welcome(timeout=5)
    await b.subscribe("py-room")
    await until(lambda: len(a_rec.subscribed) == 1 and len(b_rec.subscribed) == 1, 5, "both subscribed")
    assert b_rec.subscribed[0]["room"] == "py-room"
    assert set(b_rec.subscribed[0]["present"]) == {alice["user"]["id"], bob["user"]["id"]}
    assert await a.publish("py-room", "hello from alice") is True
    await until(lambda: len(a_rec.messages) == 1 and len(b_rec.messages) == 1, 5, "the message at both")
    for rec in (a_rec, b_rec):
        m = rec.messages[0]
        assert (m["room"], m["from"], m["body"]) == ("py-room", alice["user"]["id"], "hello from alice")
    # A refused frame is an `error` event; the socket lives.
    await b.publish("private:nobody-owns-this", "x")
    await until(lambda: len(b_rec.errors) == 1, 5, "an error frame")
    assert b_rec.errors[0]["code"] == "forbidden"
    assert b.state == "open"


async def test_a_publish_before_welcome_is_queued_and_sent_after_it_and_the_queue_is_bounded(server, make_client):
    watcher_tokens, sender_tokens = new_user(server).login(), new_user(server).login()
    w, w_rec = make_client(server.ws, fixed(watcher_tokens["access_token"]), rooms=["py-queue"])
    w.start()
    await until(lambda: len(w_rec.subscribed) == 1, 5, "the watcher subscribed")

    s, _ = make_client(server.ws, fixed(sender_tokens["access_token"]), max_queued=2)
    assert await s.publish("py-queue", "early 1") is False  # not started: queued
    assert await s.publish("py-queue", "early 2") is False
    with pytest.raises(PublishQueueFull):
        await s.publish("py-queue", "one too many")
    assert s.pending == [("py-queue", "early 1"), ("py-queue", "early 2")]
    s.start()
    await until(lambda: len(w_rec.messages) == 2, 5, "the queued publishes")
    assert w_rec.bodies() == ["early 1", "early 2"]
    assert s.pending == []
    assert await s.publish("py-queue", "later") is True
    await until(lambda: len(w_rec.messages) == 3, 5, "a publish while open")


async def test_logout_ends_the_session_with_4403_and_the_client_does_not_retry(server, make_client):
    tokens = new_user(server).login()
    c, rec = make_client(server.ws, fixed(tokens["access_token"]))
    c.start()
    await c.wait_welcome(timeout=5)
    # Another client (plain HTTP) logs this session out.
    logout(server, tokens["access_token"])
    assert await c.wait_stopped(timeout=3) == "ended"
    assert [(x.code, x.reason, x.action) for x in rec.closes] == [(4403, "session_revoked", "sign_in_again")]
    assert len(rec.ended) == 1 and isinstance(rec.ended[0], SessionEnded)
    assert rec.ended[0].close == rec.closes[0]
    handshakes = server.handshakes()
    assert handshakes >= 1
    # Longer than several backoff caps of this client (3 s).
    await asyncio.sleep(4)
    assert server.handshakes() == handshakes, "the server saw a handshake after the session ended"
    assert rec.states.count("connecting") == 1
    assert c.state == "ended"
    with pytest.raises(SessionEnded):
        await c.publish("lobby", "after the end")
    with pytest.raises(SessionEnded):
        await c.wait_welcome(timeout=1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["restart", "kill-9"])
async def test_after_a_server_restart_the_client_reconnects_resubscribes_and_receives(server, make_client, sig):
    tokens = new_user(server).login()
    c, rec = make_client(server.ws, fixed(tokens["access_token"]), auth="frame", rooms=["py-restart"])
    c.start()
    await until(lambda: len(rec.subscribed) == 1, 5, "subscribed")
    publish_http(server, tokens["access_token"], "py-restart", "before")
    await until(lambda: len(rec.messages) == 1, 5, "the first message")
    try:
        server.stop(sig)
        await until(lambda: c.state == "waiting", 5, "waiting")
    finally:
        if not server.running:
            server.start()  # same port, same database file
    # SIGTERM: 1001 from the drain (a retry during the drain window is refused 503 and
    # waits longer); SIGKILL: no close frame at all.
    assert rec.closes[0].code == (1001 if sig == signal.SIGTERM else 1006)
    assert rec.closes[0].action == "reconnect"
    for x in rec.closes[1:]:
        assert x.code == 1006 and x.status in (None, 503), x
    await until(lambda: len(rec.subscribed) == 2, 15, "re-subscribed after the restart")
    publish_http(server, tokens["access_token"], "py-restart", "after")
    await until(lambda: len(rec.messages) >= 2, 5, "the message published after the restart")
    await asyncio.sleep(0.3)  # a duplicate would be here by now
    assert rec.bodies() == ["before", "after"]
    assert len(rec.welcomes) == 2


@pytest.fixture(scope="module")
def expired():
    """A server whose access tokens live half a second, and three users whose tokens
    have expired (the server allows 5 s of clock skew on exp)."""
    short = Server({"DOORMAN_ACCESS_TTL_SECONDS": "0.5"})
    short.start()
    users = [new_user(short) for _ in range(3)]
    logins = [u.login() for u in users]
    time.sleep(6.5)
    yield short, users, logins
    short.dispose()


async def test_an_expired_token_in_the_auth_frame_gets_4401_and_the_callback_is_asked_for_a_fresh_one(expired, make_client):
    short, _, logins = expired
    tokens = logins[0]

    async def answer(reason: str) -> str:
        nonlocal tokens
        # An app that hands out its cached token; asked again, it refreshes.
        if reason == "rejected":
            tokens = await asyncio.to_thread(refresh, short, tokens)
        return tokens["access_token"]

    calls = TokenCalls(answer)
    c, rec = make_client(short.ws, calls, auth="frame")
    c.start()
    welcome = await c.wait_welcome(timeout=5)
    assert calls.reasons == ["connect", "rejected"]
    assert [(x.code, x.reason, x.action) for x in rec.closes] == [(4401, "invalid_token", "refresh_token")]
    assert welcome["session_id"] == tokens["session_id"]


async def test_an_expired_bearer_token_gets_a_401_handshake_and_the_callback_is_asked_for_a_fresh_one(expired, make_client):
    short, _, logins = expired
    tokens = logins[1]

    async def answer(reason: str) -> str:
        nonlocal tokens
        if reason == "rejected":
            tokens = await asyncio.to_thread(refresh, short, tokens)
        return tokens["access_token"]

    calls = TokenCalls(answer)
    c, rec = make_client(short.ws, calls, auth="bearer")
    c.start()
    await c.wait_welcome(timeout=5)
    assert calls.reasons == ["connect", "rejected"]
    assert [(x.code, x.status, x.action) for x in rec.closes] == [(1006, 401, "refresh_token")]
    assert rec.closes[0].error in ("invalid_token", "token_expired"), rec.closes[0]


async def test_a_callback_that_cannot_refresh_raises_session_ended_and_the_client_stops(expired, make_client):
    short, users, logins = expired
    tokens = logins[2]
    # The session is revoked from a second login (its token is fresh), so the
    # first session's refresh token is refused when the callback tries it.
    other = users[2].login()
    short.call("DELETE", f"/api/sessions/{tokens['session_id']}", None, 204, bearer=other["access_token"])

    async def answer(reason: str) -> str:
        if reason == "rejected":
            try:
                await asyncio.to_thread(refresh, short, tokens)
            except AssertionError as e:  # refused: sign in again
                raise SessionEnded("the refresh token was refused") from e
        return tokens["access_token"]

    calls = TokenCalls(answer)
    c, rec = make_client(short.ws, calls, auth="frame")
    c.start()
    assert await c.wait_stopped(timeout=5) == "ended"
    assert calls.reasons == ["connect", "rejected"]
    assert [x.code for x in rec.closes] == [4401]
    assert len(rec.ended) == 1 and str(rec.ended[0]) == "the refresh token was refused"
    assert rec.states[-1] == "ended"


async def test_a_message_seen_twice_is_delivered_once_across_reconnects(server, make_client):
    tokens = new_user(server).login()
    relay = Relay(server.ws)
    await relay.start()
    try:
        relay.duplicate = True
        c, rec = make_client(relay.ws, fixed(tokens["access_token"]), rooms=["py-dedup"], max_seen=3)
        c.start()
        await until(lambda: len(rec.subscribed) == 1, 5, "subscribed through the relay")
        for body in ("one", "two", "three"):
            publish_http(server, tokens["access_token"], "py-dedup", body)
        await until(lambda: relay.sent_messages == 6, 5, "six message frames sent by the relay")
        await asyncio.sleep(0.3)
        assert rec.bodies() == ["one", "two", "three"]

        # A reconnect whose new socket replays what was already delivered (as a
        # history replay would): "three" is remembered and dropped. "one" was
        # forgotten (max_seen=3 after "four") and is delivered again: memory is bounded.
        relay.duplicate = False
        publish_http(server, tokens["access_token"], "py-dedup", "four")
        await until(lambda: len(rec.messages) == 4, 5, "four")
        first, third = rec.messages[0], rec.messages[2]
        relay.replay = [third, first]
        relay.drop()
        await until(lambda: len(rec.welcomes) == 2, 10, "welcomed again through the relay")
        await until(lambda: relay.replay == [] and len(rec.subscribed) == 2, 5, "the replay sent, re-subscribed")
        publish_http(server, tokens["access_token"], "py-dedup", "five")
        await until(lambda: rec.bodies()[-1:] == ["five"], 5, "five")
        await asyncio.sleep(0.3)
        if "offset" in first:
            # A server with history numbers the room's messages: "one" is at or before
            # the room's position, and dropped by its offset although its id is forgotten.
            assert rec.bodies() == ["one", "two", "three", "four", "five"]
        else:
            assert rec.bodies() == ["one", "two", "three", "four", "one", "five"]
        assert rec.closes[0].code == 1006 and rec.closes[0].action == "reconnect"
    finally:
        await relay.stop()


async def test_a_frozen_server_is_noticed_by_the_keepalive_and_the_client_reconnects_when_it_wakes(make_client):
    frozen = Server()
    frozen.start()
    try:
        tokens = new_user(frozen).login()
        c, rec = make_client(
            frozen.ws,
            fixed(tokens["access_token"]),
            # websockets' keepalive: a ping every 0.5 s, dead after 1 s without a pong
            # and 1 s more for the closing handshake that a frozen peer never answers.
            connect_options={"ping_interval": 0.5, "ping_timeout": 1, "close_timeout": 1, "open_timeout": 2},
        )
        c.start()
        await c.wait_welcome(timeout=5)
        await asyncio.sleep(1.5)
        assert c.state == "open"  # pongs keep it alive
        frozen.freeze(True)
        await until(lambda: len(rec.closes) > 0, 5, "the silent socket declared dead")
        assert (rec.closes[0].code, rec.closes[0].action) == (1006, "reconnect")
        frozen.freeze(False)
        await until(lambda: len(rec.welcomes) == 2, 15, "welcomed again")
    finally:
        frozen.dispose()


async def test_debug_logs_carry_no_token(server, make_client, caplog):
    caplog.set_level(logging.DEBUG, logger="websockets")
    caplog.set_level(logging.DEBUG, logger="doorman_realtime")
    tokens = new_user(server).login()
    for auth in ("bearer", "frame"):
        c, _ = make_client(server.ws, fixed(tokens["access_token"]), auth=auth)
        c.start()
        await c.wait_welcome(timeout=5)
        await c.close()
    text = caplog.text
    # The check has teeth: websockets did log the handshake and the auth frame.
    assert "Authorization: Bearer [redacted]" in text
    assert '"token":"[redacted]' in text
    signature = tokens["access_token"].rsplit(".", 1)[-1]
    assert signature not in text and "eyJ" not in text
