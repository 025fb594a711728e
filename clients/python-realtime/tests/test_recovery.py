"""Messages that survive a reconnect, against the real release server: the client keeps
each room's position, re-subscribes with ``since``, and delivers what it missed once,
in order, marked ``recovered``; when the server cannot replay (a history too short, or
none), ``recovery_failed`` says so and ``history()`` refetches."""

from __future__ import annotations

import asyncio

import pytest
from harness import Server, TokenCalls, new_user, publish_http, until
from relay import Relay

from doorman_realtime import Backoff, HistoryError, Position, RecoveryFailed


def fixed(token: str) -> TokenCalls:
    return TokenCalls(lambda reason: token)


def rows(rec) -> list[tuple[str, int | None, bool]]:
    return [(m["body"], m.get("offset"), m["recovered"]) for m in rec.messages]


async def test_a_dropped_socket_gets_the_messages_published_meanwhile_once_in_order_marked_recovered(server, make_client):
    user, other = new_user(server).login(), new_user(server).login()
    room = f"py-recover-{id(user)}"
    relay = Relay(server.ws)
    await relay.start()
    try:
        # Every reconnect waits 1.5 s (jitter fixed at its cap): the publishes land meanwhile.
        c, rec = make_client(
            relay.ws, fixed(user["access_token"]), rooms=[room],
            backoff=Backoff(initial=1.5, max=1.5), random=lambda: 0.999,
        )
        c.start()
        await until(lambda: len(rec.subscribed) == 1, 5, "subscribed")
        assert rec.subscribed[0]["offset"] == 0 and "recovered" not in rec.subscribed[0]
        publish_http(server, other["access_token"], room, "m1")
        await until(lambda: len(rec.messages) == 1, 5, "m1 live")
        epoch = rec.messages[0]["epoch"]
        assert c.positions[room] == Position(1, epoch)

        relay.drop()
        await until(lambda: c.state == "waiting", 5, "waiting after the drop")
        for body in ("m2", "m3", "m4"):
            publish_http(server, other["access_token"], room, body)
        await until(lambda: len(rec.subscribed) == 2, 10, "re-subscribed")
        await until(lambda: len(rec.messages) == 4, 5, "m2..m4 replayed")
        publish_http(server, other["access_token"], room, "m5")
        await until(lambda: len(rec.messages) == 5, 5, "m5 live")
        await asyncio.sleep(0.3)  # a duplicate would be here by now

        assert rec.subscribed[1]["recovered"] is True and rec.subscribed[1]["offset"] == 4
        assert rec.recovery_failed == []
        assert rows(rec) == [("m1", 1, False), ("m2", 2, True), ("m3", 3, True), ("m4", 4, True), ("m5", 5, False)]
        assert len({m["id"] for m in rec.messages}) == 5
        assert c.positions[room] == Position(5, epoch)
        assert [x.code for x in rec.closes] == [1006]

        # close() and start() (an application going offline and back) resume the same way.
        await c.close()
        publish_http(server, other["access_token"], room, "m6")
        c.start()
        await until(lambda: len(rec.messages) == 6, 5, "m6 replayed after start()")
        assert rows(rec)[-1] == ("m6", 6, True)
    finally:
        await relay.stop()


async def test_no_message_missing_or_twice_at_the_seam_with_publishes_during_the_reconnect(server, make_client):
    user, other = new_user(server).login(), new_user(server).login()
    room = f"py-seam-{id(user)}"
    relay = Relay(server.ws)
    await relay.start()
    try:
        publisher, _ = make_client(server.ws, fixed(other["access_token"]))
        publisher.start()
        await publisher.wait_welcome(timeout=5)
        c, rec = make_client(relay.ws, fixed(user["access_token"]), rooms=[room], backoff=Backoff(initial=0.3, max=0.3))
        c.start()
        await until(lambda: len(rec.subscribed) == 1, 5, "subscribed")
        # One every 50 ms (the per-user publish budget is 20 a second); the socket is cut
        # after the 10th and the client comes back while the others are still published.
        total = 40
        for i in range(1, total + 1):
            assert await publisher.publish(room, f"n{i}") is True
            if i == 10:
                relay.drop()
            await asyncio.sleep(0.05)
        await until(lambda: len(rec.messages) >= total, 10, f"{total} messages")
        await asyncio.sleep(0.3)
        assert len(rec.subscribed) == 2, "one reconnect"
        assert [m["offset"] for m in rec.messages] == list(range(1, total + 1))
        assert rec.bodies() == [f"n{i}" for i in range(1, total + 1)]
        # Three runs: live before the drop, replayed up to the re-subscription's offset,
        # live after it.
        had, up_to = rec.delivered_at_subscribed[1], rec.subscribed[1]["offset"]
        assert rec.subscribed[1]["recovered"] is True
        assert 1 <= had < up_to < total, (had, up_to)
        assert [m["recovered"] for m in rec.messages] == [had < m["offset"] <= up_to for m in rec.messages]
    finally:
        await relay.stop()


async def test_a_history_too_short_reports_too_old_replays_nothing_and_history_pages(make_client):
    small = Server({"DOORMAN_HISTORY_SIZE": "3"})
    small.start()
    try:
        tokens = new_user(small).login()
        room = "py-too-old"
        c, rec = make_client(small.ws, fixed(tokens["access_token"]), rooms=[room])
        c.start()
        await until(lambda: len(rec.subscribed) == 1, 5, "subscribed")
        publish_http(small, tokens["access_token"], room, "seen")
        await until(lambda: len(rec.messages) == 1, 5, "the first message")
        epoch = rec.messages[0]["epoch"]
        await c.close()
        for i in range(1, 11):
            publish_http(small, tokens["access_token"], room, f"missed {i}")
        c.start()
        await until(lambda: len(rec.recovery_failed) == 1, 5, "recovery_failed")
        assert rec.recovery_failed[0] == RecoveryFailed(room, "too_old", Position(1, epoch), Position(11, epoch))
        answer = rec.subscribed[1]
        assert (answer["recovered"], answer["reason"], answer["offset"]) == (False, "too_old", 11)
        publish_http(small, tokens["access_token"], room, "live")
        await until(lambda: len(rec.messages) == 2, 5, "the live message")
        await asyncio.sleep(0.2)
        assert rows(rec) == [("seen", 1, False), ("live", 12, False)]

        # The refetch: what the room still has, two at a time.
        got, after, pages = [], 0, 0
        while after is not None:
            page = await c.history(room, after=after, limit=2)
            assert (page["room"], page["epoch"]) == (room, epoch)
            got += [f"{m['offset']}:{m['body']}" for m in page["messages"]]
            after, pages = page["next"], pages + 1
            assert pages < 10
        assert got == ["10:missed 9", "11:missed 10", "12:live"]
        with pytest.raises(HistoryError) as refused:
            await c.history("private:nobody-owns-this")
        assert refused.value.status == 403
    finally:
        small.dispose()


async def test_without_history_messages_carry_no_offset_and_a_reconnect_never_hides_a_gap(make_client):
    none = Server({"DOORMAN_HISTORY_SIZE": "0"})
    none.start()
    try:
        tokens = new_user(none).login()
        room = "py-no-history"
        c, rec = make_client(none.ws, fixed(tokens["access_token"]), rooms=[room])
        c.start()
        await until(lambda: len(rec.subscribed) == 1, 5, "subscribed")
        publish_http(none, tokens["access_token"], room, "one")
        await until(lambda: len(rec.messages) == 1, 5, "one")
        assert "offset" not in rec.messages[0] and "epoch" not in rec.messages[0]
        await c.close()
        publish_http(none, tokens["access_token"], room, "missed")
        c.start()
        await until(lambda: len(rec.subscribed) == 2, 5, "re-subscribed")
        await asyncio.sleep(0.2)
        assert rec.bodies() == ["one"]
        if isinstance(rec.subscribed[0].get("offset"), int):
            # The server announces positions: asked to resume, it says it cannot.
            assert [(f.room, f.reason) for f in rec.recovery_failed] == [(room, "history_off")]
        else:
            assert rec.recovery_failed == [] and c.positions == {}
    finally:
        none.dispose()
