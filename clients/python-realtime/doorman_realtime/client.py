"""An asyncio client for doorman's WebSocket (``GET /ws``, described by asyncapi.json).

- Authenticates with ``Authorization: Bearer`` on the handshake or with a first
  ``auth`` frame, with a token from an application callback (sync or async).
- Obeys the close codes of the document (``policy.py`` reads ``x-close-codes``):
  4403 ends the session for good (``session_ended``, no retry); 4401 or a 401
  handshake asks the callback for a fresh token and reconnects; 1001/1006/4408
  reconnect with full-jitter exponential backoff; 1011/1013/503 reconnect later; 4429
  or 429 back off longer; 1002/1007/1009/4400 stop (state ``failed``).
- Re-subscribes its rooms after every ``welcome`` and drops a ``message`` whose id it
  has already delivered (a bounded memory of recent ids).
- Keeps each room's position (the last ``offset`` and ``epoch`` seen, where the server
  keeps history) and re-subscribes with ``since``: the messages missed while away are
  replayed once, in order, marked ``recovered``; when the server cannot replay, a
  ``recovery_failed`` event tells the application to refetch (``history()``).
- Queues publishes made before ``welcome`` (bounded; a full queue raises
  ``PublishQueueFull``) and sends them, in order, right after the re-subscriptions.

Tokens never reach a log line: the websockets logger it passes on redacts them.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import random as _random
import re
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal, Union

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException
from websockets.protocol import State as WsState
from websockets.uri import parse_uri

from .frames import SERVER_FRAMES, CloseAction, IdentityFrame, WelcomeFrame
from .policy import close_action, handshake_action

log = logging.getLogger("doorman_realtime")

TokenReason = Literal["connect", "rejected"]
"""Why a token is asked for: ``connect`` before an attempt (a cached token that is
still valid will do); ``rejected`` after the server refused the last one (4401, or a
401 handshake): only a fresh one helps."""

TokenProvider = Callable[[TokenReason], Union[str, Awaitable[str]]]
"""Returns an access token (or an awaitable of one). May raise ``SessionEnded`` when
no token can be had without signing in again (the refresh token was refused)."""

AuthMode = Literal["bearer", "frame"]
State = Literal["idle", "connecting", "open", "waiting", "ended", "failed"]

# The events `on()` accepts: one per server frame type of the document, and these.
CLIENT_EVENTS = ("frame", "state", "close", "session_ended", "recovery_failed")
EVENTS: frozenset[str] = frozenset(SERVER_FRAMES) | frozenset(CLIENT_EVENTS)


@dataclass(frozen=True)
class CloseInfo:
    """A socket closed, or an attempt failed, and what the client does about it."""

    code: int
    """The close code; 1006 when no close frame arrived (a refused handshake, a
    dropped connection, a server that was killed)."""
    reason: str
    action: CloseAction
    status: int | None = None
    """The HTTP status of a refused handshake."""
    error: str | None = None
    """The ``error`` code of a refused handshake's JSON body."""
    retry_after: float | None = None
    """A refused handshake's ``Retry-After``, in seconds: the next attempt waits at
    least this long."""


@dataclass(frozen=True)
class Position:
    """Where a room's messages stand: the last ``offset`` (0: none yet) in ``epoch``
    (a new epoch means the room's history was lost or reset)."""

    offset: int
    epoch: str


@dataclass(frozen=True)
class RecoveryFailed:
    """A re-subscription could not replay what ``room`` missed: nothing was replayed,
    messages may be missing, the application should refetch (``history()``)."""

    room: str
    reason: str
    """``too_old`` (the history no longer reaches back to ``since``),
    ``epoch_changed`` (the room's history was lost or reset) or ``history_off`` (the
    server keeps none)."""
    since: Position
    """Where the client asked to resume."""
    position: Position
    """The room's position now (its latest message when the subscription began)."""


class HistoryError(Exception):
    """``history()`` was refused: the HTTP ``status`` and doorman's ``error`` code."""

    def __init__(self, status: int, code: str | None, message: str):
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class StateChange:
    state: State
    previous: State
    close: CloseInfo | None = None
    """The close that caused it, if any."""
    delay: float | None = None
    """For ``waiting``: seconds until the next attempt."""


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts, in seconds."""

    initial: float = 1.0
    """Full jitter: attempt n waits uniformly 0..min(max, initial * 2**n)."""
    max: float = 30.0
    rate_limited: float = 5.0
    """``back_off`` (4429, 429): equal jitter, at least half of min(max, this * 2**n)."""
    later: float = 2.0
    """``reconnect_later`` (1011, 1013, 503): likewise."""


class RealtimeError(Exception):
    """Base of the client's exceptions."""


class SessionEnded(RealtimeError):
    """The session is over (4403, or the token callback raised it): sign in again,
    then ``start()`` anew. ``close`` is the close that ended it, if one did."""

    def __init__(self, message: str = "the session ended; sign in again", close: CloseInfo | None = None):
        super().__init__(message)
        self.close = close


class ClientFailed(RealtimeError):
    """The server refused this client as broken (``fix_client``: 4400, 1002, 1007,
    1009, a 400 or 403 handshake); it does not retry."""

    def __init__(self, close: CloseInfo):
        super().__init__(f"refused as a client bug: {close.code} {close.reason} (status {close.status})")
        self.close = close


class ClientClosed(RealtimeError):
    """``close()`` was called."""


class NotConnected(RealtimeError):
    """``ping()`` or ``whoami()`` without an open socket."""


class PublishQueueFull(RealtimeError):
    """``publish()`` while the socket is not open and ``max_queued`` publishes are
    already waiting; this one was not queued."""


_REDACTIONS = (
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1[redacted]"),
    (re.compile(r"(\"token\"\s*:\s*\")[^\"']*"), r"\1[redacted]"),
    (re.compile(r"eyJ[A-Za-z0-9_-]*(\.[A-Za-z0-9_-]*)*"), "[redacted]"),
)


def redact(text: str) -> str:
    """``text`` without anything that looks like a token."""
    for pattern, repl in _REDACTIONS:
        text = pattern.sub(repl, text)
    return text


class _RedactingLogger(logging.LoggerAdapter):
    """websockets' logger, minus tokens: at DEBUG it logs request headers and frames."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        text = str(msg) % args if args else str(msg)
        self.logger.log(level, "%s", redact(text), **kwargs)


def _dumps(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False)


class _Outgoing:
    __slots__ = ("frame", "sent")

    def __init__(self, frame: dict[str, Any]):
        self.frame = frame
        self.sent = False


Listener = Callable[[Any], Union[None, Awaitable[None]]]


class RealtimeClient:
    """One logical connection to doorman's ``/ws``, kept up across reconnects.

    ``url``: ``ws://host:port/ws`` or ``wss://…/ws``. ``get_token``: see
    ``TokenProvider``. ``auth``: ``bearer`` (an ``Authorization`` header on the
    handshake) or ``frame`` (a first ``auth`` frame). ``rooms``: joined after every
    ``welcome``. ``max_queued``: publishes kept while not open. ``max_seen``: message
    ids remembered for de-duplication. ``welcome_timeout``: an attempt not welcomed
    in this many seconds is dropped and retried. ``connect_options``: passed to
    ``websockets.asyncio.client.connect`` (``open_timeout``, ``ping_interval``,
    ``ping_timeout``, ``ssl``, ``additional_headers``, …).
    """

    def __init__(
        self,
        url: str,
        get_token: TokenProvider,
        *,
        auth: AuthMode = "bearer",
        rooms: tuple[str, ...] | list[str] = (),
        backoff: Backoff | None = None,
        max_queued: int = 100,
        max_seen: int = 4096,
        welcome_timeout: float = 15.0,
        random: Callable[[], float] | None = None,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        if auth not in ("bearer", "frame"):
            raise ValueError(f"auth must be 'bearer' or 'frame', not {auth!r}")
        try:
            parse_uri(url)
        except InvalidURI as e:
            raise ValueError(f"not a ws:// or wss:// URL: {url!r}") from e
        if max_queued < 0 or max_seen < 1:
            raise ValueError("max_queued must be >= 0 and max_seen >= 1")
        self.url = url
        self.auth: AuthMode = auth
        self._get_token = get_token
        self._backoff = backoff or Backoff()
        self._max_queued = max_queued
        self._max_seen = max_seen
        self._welcome_timeout = welcome_timeout
        self._random = random or _random.random
        self._connect_options = dict(connect_options or {})
        self._rooms: dict[str, None] = dict.fromkeys(rooms)  # ordered set
        self._listeners: dict[str, list[Listener]] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        # Each room's position, sent as `since` when the room is joined again.
        self._positions: dict[str, Position] = {}
        # The `since` of each subscribe sent on this socket and not yet answered.
        self._asked: dict[str, Position | None] = {}
        # Rooms replaying on this socket: messages up to this position are recovered.
        self._replaying: dict[str, Position] = {}
        self._queue: deque[_Outgoing] = deque()
        self._send_lock = asyncio.Lock()
        self._state: State = "idle"
        self._ws: ClientConnection | None = None
        self._welcome: WelcomeFrame | None = None
        self._task: asyncio.Task[None] | None = None
        self._attempt = 0
        self._token_rejected = False
        self._closed = False  # close() was called and no start() since
        self._final: RealtimeError | None = None  # why the client stopped
        self._stopped = asyncio.Event()
        self._welcome_waiters: set[asyncio.Future[WelcomeFrame]] = set()
        self._pings: dict[int, tuple[asyncio.Future[float], float]] = {}
        self._identities: deque[asyncio.Future[IdentityFrame]] = deque()
        self._next_ping = 1

    # -- what the application reads ------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def welcome(self) -> WelcomeFrame | None:
        """The ``welcome`` of the open socket; None when not open."""
        return self._welcome if self._state == "open" else None

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms the client keeps itself subscribed to."""
        return frozenset(self._rooms)

    @property
    def positions(self) -> dict[str, Position]:
        """Each room's position (a copy): where a re-subscription resumes. An
        application may store it and pass a room's back as ``subscribe(room, since=…)``."""
        return dict(self._positions)

    @property
    def pending(self) -> list[tuple[str, str]]:
        """Publishes not yet sent, as (room, body), oldest first."""
        return [(o.frame["room"], o.frame["body"]) for o in self._queue if o.frame["type"] == "publish"]

    def clear_pending(self) -> list[tuple[str, str]]:
        """Removes the unsent publishes and returns them (e.g. after ``session_ended``,
        when they should not go out under the next sign-in)."""
        taken = self.pending
        self._queue.clear()
        return taken

    def on(self, event: str, fn: Listener) -> Callable[[], None]:
        """Calls ``fn(value)`` on ``event``; returns a function that removes it.

        Events: each server frame type (``welcome``, ``message``, ``presence``,
        ``notice``, ``subscribed``, ``unsubscribed``, ``identity``, ``pong``,
        ``error``) with the frame; ``frame`` with every frame; ``state`` with a
        ``StateChange``; ``close`` with a ``CloseInfo`` for every close or failed
        attempt; ``session_ended`` with the ``SessionEnded`` exception;
        ``recovery_failed`` with a ``RecoveryFailed``. A ``message`` is a copy of the
        frame with ``recovered``: True when replayed after a reconnect. ``fn`` may
        be a coroutine function; it is awaited before the next frame is read, so
        it must not await ``ping()``, ``whoami()`` or ``wait_welcome()`` (start a
        task for that). An exception in ``fn`` is logged and otherwise ignored.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; one of {sorted(EVENTS)}")
        listeners = self._listeners.setdefault(event, [])
        listeners.append(fn)

        def off() -> None:
            if fn in listeners:
                listeners.remove(fn)

        return off

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Starts connecting (again after ``ended``, ``failed`` or ``close()``).
        Needs a running event loop; returns at once."""
        if self._task is not None and not self._task.done():
            return
        self._closed = False
        self._final = None
        self._stopped.clear()
        self._attempt = 0
        self._token_rejected = False
        self._task = asyncio.get_running_loop().create_task(self._run(), name="doorman-realtime")

    async def close(self) -> None:
        """Closes the socket (1000) and stops reconnecting. Rooms and unsent publishes
        are kept for a later ``start()``."""
        self._closed = True
        ws = self._ws
        if ws is not None:
            try:
                await ws.close(1000, "client closed")
            except Exception:  # already closing or gone
                pass
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._task = None
        self._stop(ClientClosed("close() was called"))
        await self._set_state("idle")

    async def __aenter__(self) -> RealtimeClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_welcome(self, timeout: float | None = None) -> WelcomeFrame:
        """The ``welcome`` of the open socket, or of the next one. Raises
        ``SessionEnded``, ``ClientFailed`` or ``ClientClosed`` when the client stops
        first, ``TimeoutError`` after ``timeout`` seconds."""
        if self._state == "open" and self._welcome is not None:
            return self._welcome
        if self._final is not None:
            raise self._final
        fut: asyncio.Future[WelcomeFrame] = asyncio.get_running_loop().create_future()
        self._welcome_waiters.add(fut)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._welcome_waiters.discard(fut)

    async def wait_stopped(self, timeout: float | None = None) -> State:
        """Waits until the client stops for good (``ended``, ``failed``, or ``idle``
        after ``close()``) and returns that state."""
        async with asyncio.timeout(timeout):
            await self._stopped.wait()
        return self._state

    # -- frames the application sends ------------------------------------------------

    async def subscribe(self, room: str, since: Position | None = None) -> None:
        """Joins ``room`` now (if open) and after every reconnect, where it resumes
        from the room's position. Answered by a ``subscribed`` event, or an ``error``
        one (``invalid_room``, ``forbidden``). ``since``: resume from a position kept
        elsewhere (the replay, or ``recovery_failed``, follows)."""
        self._rooms[room] = None
        if since is not None:
            self._positions[room] = Position(since.offset, since.epoch)
        await self._send_subscribe(room, resume=since is not None)

    async def unsubscribe(self, room: str) -> None:
        """Leaves ``room``, stops re-joining it and forgets its position."""
        self._rooms.pop(room, None)
        self._positions.pop(room, None)
        self._replaying.pop(room, None)
        self._asked.pop(room, None)
        await self._send_now({"type": "unsubscribe", "room": room})

    async def history(
        self, room: str, *, after: int | None = None, before: int | None = None, limit: int | None = None
    ) -> dict[str, Any]:
        """One page of ``GET /api/rooms/{room}/messages`` with this client's token:
        ``{room, epoch, messages, next}``, oldest first. For refetching after
        ``recovery_failed``: call again with ``after=page["next"]`` until it is None.
        Raises ``HistoryError`` on a refusal."""
        scheme, rest = self.url.split("://", 1)
        base = ("https" if scheme == "wss" else "http") + "://" + rest
        path = "api/rooms/" + urllib.parse.quote(room, safe=":") + "/messages"
        url = urllib.parse.urljoin(base, path)
        query = {k: v for k, v in (("after", after), ("before", before), ("limit", limit)) if v is not None}
        if query:
            url += "?" + urllib.parse.urlencode(query)

        def get(token: str) -> tuple[int, str]:
            req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}", "accept": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, r.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()

        status, text = await asyncio.to_thread(get, await self._token_for("connect"))
        if status == 401:
            status, text = await asyncio.to_thread(get, await self._token_for("rejected"))
        try:
            body = json.loads(text) if text else None
        except ValueError:
            body = None
        if status != 200:
            code = body.get("error") if isinstance(body, dict) else None
            raise HistoryError(status, code, f"history of {room}: {status} {code or ''}".strip())
        # The last page has no `next` (or null): None either way.
        body.setdefault("next", None)
        return body

    async def publish(self, room: str, body: str) -> bool:
        """Sends ``body`` to ``room``. True: written to the open socket. False: queued,
        to be sent after the next ``welcome`` and re-subscriptions (the protocol has
        no acknowledgement; a refused publish comes back as an ``error`` event).

        Raises ``PublishQueueFull`` when not open and ``max_queued`` publishes wait,
        ``SessionEnded`` / ``ClientFailed`` / ``ClientClosed`` when the client has
        stopped (nothing would send it).
        """
        if self._final is not None:
            raise self._final
        is_open = self._state == "open" and self._ws is not None
        if not is_open and len(self._queue) >= self._max_queued:
            raise PublishQueueFull(f"{len(self._queue)} publishes already wait for a connection")
        item = _Outgoing({"type": "publish", "room": room, "body": body})
        self._queue.append(item)
        if is_open:
            try:
                async with self._send_lock:
                    await self._flush()
            except ConnectionClosed:
                pass  # still queued; the reader sees the close and reconnects
        return item.sent

    async def ping(self, timeout: float = 10.0) -> float:
        """Sends ``ping`` with a fresh id; returns the seconds until its ``pong``."""
        ping_id = self._next_ping
        self._next_ping += 1
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[float] = loop.create_future()
        self._pings[ping_id] = (fut, loop.time())
        try:
            if not await self._send_now({"type": "ping", "id": ping_id}):
                raise NotConnected("the socket is not open")
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._pings.pop(ping_id, None)

    async def whoami(self, timeout: float = 10.0) -> IdentityFrame:
        """Asks for ``identity`` and returns it."""
        fut: asyncio.Future[IdentityFrame] = asyncio.get_running_loop().create_future()
        self._identities.append(fut)
        try:
            if not await self._send_now({"type": "whoami"}):
                raise NotConnected("the socket is not open")
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            if fut in self._identities:
                self._identities.remove(fut)

    # -- internals -------------------------------------------------------------------

    def _subscribe_frame(self, room: str, resume: bool) -> dict[str, Any]:
        """A ``subscribe``, with ``since`` when resuming and the room has a position;
        remembers what it asked."""
        position = self._positions.get(room) if resume else None
        self._asked[room] = position
        if position is None:
            return {"type": "subscribe", "room": room}
        return {"type": "subscribe", "room": room, "since": {"offset": position.offset, "epoch": position.epoch}}

    async def _send_subscribe(self, room: str, resume: bool) -> None:
        if self._state == "open" and self._ws is not None:
            await self._send_now(self._subscribe_frame(room, resume))

    def _on_subscribed(self, frame: dict[str, Any]) -> RecoveryFailed | None:
        """What a ``subscribed`` frame says of the room's position and the replay; the
        failed recovery to report (after the ``subscribed`` event), if one failed."""
        room = frame.get("room")
        since = self._asked.pop(room, None)
        offset, epoch = frame.get("offset"), frame.get("epoch")
        # A server without history announces no position.
        if not isinstance(room, str) or not isinstance(offset, int) or not isinstance(epoch, str):
            return None
        now = Position(offset, epoch)
        recovered = frame.get("recovered")
        if since is not None and recovered is True:
            # The missed messages follow, up to `now`; they move the position themselves.
            if offset > 0:
                self._replaying[room] = now
            return None
        if since is not None and recovered is False:
            # Nothing is replayed: resume from the room's present, and say so.
            self._positions[room] = now
            return RecoveryFailed(room, str(frame.get("reason") or "history_off"), since, now)
        kept = self._positions.get(room)
        if kept is None or kept.epoch != epoch or kept.offset < offset:
            self._positions[room] = now
        return None

    def _advance(self, frame: dict[str, Any]) -> tuple[bool, bool]:
        """(fresh, recovered): not fresh when at or before its room's position."""
        room, offset, epoch = frame.get("room"), frame.get("offset"), frame.get("epoch")
        if not isinstance(room, str) or not isinstance(offset, int) or not isinstance(epoch, str):
            return True, False
        kept = self._positions.get(room)
        if kept is not None and kept.epoch == epoch and offset <= kept.offset:
            return False, False
        # A new epoch: the room's history was reset; its offsets start again.
        self._positions[room] = Position(offset, epoch)
        replay = self._replaying.get(room)
        recovered = False
        if replay is not None:
            recovered = replay.epoch == epoch and offset <= replay.offset
            if not recovered or offset >= replay.offset:
                del self._replaying[room]
        return True, recovered

    async def _send_now(self, frame: dict[str, Any]) -> bool:
        """Sends a frame if the socket is open; False if it is not (or it just closed)."""
        ws = self._ws
        if self._state != "open" or ws is None:
            return False
        try:
            async with self._send_lock:
                await ws.send(_dumps(frame))
            return True
        except ConnectionClosed:
            return False

    async def _flush(self) -> None:
        """Sends the queue in order (the send lock held); a close leaves the rest."""
        ws = self._ws
        while self._queue and ws is not None and self._state == "open":
            item = self._queue[0]
            await ws.send(_dumps(item.frame))
            self._queue.popleft()
            item.sent = True

    async def _emit(self, event: str, value: Any) -> None:
        for fn in list(self._listeners.get(event, ())):
            try:
                result = fn(value)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("a %r listener raised", event)

    async def _set_state(self, state: State, close: CloseInfo | None = None, delay: float | None = None) -> None:
        previous = self._state
        if previous == state and state != "waiting":
            return
        self._state = state
        await self._emit("state", StateChange(state, previous, close, delay))

    def _stop(self, why: RealtimeError) -> None:
        """The client will not reconnect: fail everything that waits."""
        self._final = why
        for fut in self._welcome_waiters:
            if not fut.done():
                fut.set_exception(why)
        self._welcome_waiters.clear()
        self._fail_requests(why)
        self._stopped.set()

    def _fail_requests(self, why: Exception) -> None:
        for fut, _ in self._pings.values():
            if not fut.done():
                fut.set_exception(why)
        self._pings.clear()
        while self._identities:
            fut = self._identities.popleft()
            if not fut.done():
                fut.set_exception(why)

    async def _token(self) -> str:
        return await self._token_for("rejected" if self._token_rejected else "connect")

    async def _token_for(self, reason: TokenReason) -> str:
        result = self._get_token(reason)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, str) or not result:
            raise TypeError(f"get_token returned {type(result).__name__}, not a non-empty str")
        return result

    async def _run(self) -> None:
        try:
            while True:
                info = await self._attempt_once()
                if info is None:
                    return
                await self._emit("close", info)
                action = info.action
                log.info("socket closed: %s %s (status %s) -> %s", info.code, info.reason, info.status, action)
                if action == "sign_in_again":
                    ended = SessionEnded(close=info)
                    self._stop(ended)
                    await self._set_state("ended", close=info)
                    await self._emit("session_ended", ended)
                    return
                if action == "fix_client":
                    self._stop(ClientFailed(info))
                    await self._set_state("failed", close=info)
                    return
                if action == "refresh_token":
                    self._token_rejected = True
                delay = self._delay(action, info.retry_after)
                self._attempt += 1
                await self._set_state("waiting", close=info, delay=delay)
                await asyncio.sleep(delay)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a bug here must not leave a task that failed unseen
            log.exception("the connection loop failed")
            info = CloseInfo(1006, f"client error: {type(e).__name__}", "fix_client")
            self._stop(ClientFailed(info))
            await self._set_state("failed", close=info)

    async def _attempt_once(self) -> CloseInfo | None:
        """One attempt: a token, a handshake, a session. Returns how it ended, or
        None when the client stopped (close(), or the token callback's SessionEnded)."""
        await self._set_state("connecting")
        try:
            token = await self._token()
        except SessionEnded as e:
            self._stop(e)
            await self._set_state("ended")
            await self._emit("session_ended", e)
            return None
        except Exception as e:
            log.warning("get_token failed (%s); retrying later", type(e).__name__)
            return CloseInfo(1006, "get_token failed", "reconnect")

        options = dict(self._connect_options)
        headers = dict(options.pop("additional_headers", None) or {})
        if self.auth == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        options.setdefault("logger", _RedactingLogger(logging.getLogger("websockets.client"), {}))
        try:
            ws = await connect(self.url, additional_headers=headers or None, **options)
        except InvalidStatus as e:
            status = e.response.status_code
            error = None
            try:
                error = json.loads(bytes(e.response.body)).get("error")
            except (ValueError, AttributeError):
                pass
            retry_after = e.response.headers.get("Retry-After", "").strip()
            return CloseInfo(
                1006,
                error or "",
                handshake_action(status, error),
                status=status,
                error=error,
                retry_after=float(retry_after) if retry_after.isdigit() else None,
            )
        except (OSError, TimeoutError, WebSocketException) as e:
            log.info("connect failed: %s", type(e).__name__)
            return CloseInfo(1006, "", close_action(1006, ""))

        self._ws = ws
        try:
            return await self._session(ws, token)
        finally:
            self._ws = None
            self._fail_requests(NotConnected("the socket closed"))
            if ws.state is not WsState.CLOSED:
                # Cancelled by close() or left by a bug: do not leave it open.
                ws.transport.abort()

    async def _session(self, ws: ClientConnection, token: str) -> CloseInfo | None:
        try:
            if self.auth == "frame":
                await ws.send(_dumps({"type": "auth", "token": token}))
            deadline = asyncio.get_running_loop().time() + self._welcome_timeout
            while self._state != "open":
                try:
                    async with asyncio.timeout_at(deadline):
                        raw = await ws.recv()
                except TimeoutError:
                    await ws.close(4000, "welcome timeout")
                    return CloseInfo(4000, "welcome timeout", "reconnect")
                await self._on_raw(ws, raw)
            while True:
                await self._on_raw(ws, await ws.recv())
        except ConnectionClosed as e:
            if self._closed:
                return None
            if e.rcvd is None:
                return CloseInfo(1006, "", close_action(1006, ""))
            code, reason = e.rcvd.code, e.rcvd.reason
            action = close_action(code, reason)
            if action == "none":
                # The client did not ask for this close (close() returns above).
                action = "reconnect"
            return CloseInfo(code, reason, action)

    async def _on_raw(self, ws: ClientConnection, raw: str | bytes) -> None:
        if not isinstance(raw, str):
            return  # the server sends text only
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("a frame that is not JSON was ignored")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            return
        await self._emit("frame", frame)
        kind = frame["type"]
        if kind == "welcome":
            await self._on_welcome(ws, frame)
            return
        failed: RecoveryFailed | None = None
        if kind == "message":
            msg_id = frame.get("id")
            if msg_id in self._seen:
                return
            fresh, recovered = self._advance(frame)
            if not fresh:
                return
            self._seen[msg_id] = None
            while len(self._seen) > self._max_seen:
                self._seen.popitem(last=False)
            frame = {**frame, "recovered": recovered}
        elif kind == "subscribed":
            failed = self._on_subscribed(frame)
        elif kind == "pong":
            pending = self._pings.get(frame.get("id")) if isinstance(frame.get("id"), int) else None
            if pending is not None and not pending[0].done():
                pending[0].set_result(asyncio.get_running_loop().time() - pending[1])
        elif kind == "identity":
            while self._identities:
                fut = self._identities.popleft()
                if not fut.done():
                    fut.set_result(frame)
                    break
        elif kind == "unsubscribed":
            self._replaying.pop(frame.get("room"), None)
            if frame.get("reason") is not None:
                # Taken out by the server (removed from a private room, or its session
                # dropped to aal1 in a room that requires aal2): do not re-join.
                self._rooms.pop(frame.get("room"), None)
                self._positions.pop(frame.get("room"), None)
        if kind in SERVER_FRAMES:
            await self._emit(kind, frame)
        if failed is not None:
            await self._emit("recovery_failed", failed)
        # A type this version does not know (a newer server): the `frame` event only.

    async def _on_welcome(self, ws: ClientConnection, frame: Any) -> None:
        self._welcome = frame
        self._attempt = 0
        self._token_rejected = False
        self._asked.clear()
        self._replaying.clear()
        async with self._send_lock:
            # Every room resumes from its position: the server replays what it missed.
            for room in list(self._rooms):
                await ws.send(_dumps(self._subscribe_frame(room, resume=True)))
            # Open before the flush: a publish() from now on flushes itself, after
            # these, under the same lock.
            previous, self._state = self._state, "open"
            await self._flush()
        await self._emit("state", StateChange("open", previous))
        for fut in self._welcome_waiters:
            if not fut.done():
                fut.set_result(frame)
        self._welcome_waiters.clear()
        await self._emit("welcome", frame)

    def _delay(self, action: CloseAction, retry_after: float | None) -> float:
        b = self._backoff
        exp = 2 ** min(self._attempt, 16)
        if action == "refresh_token" and self._attempt == 0:
            return 0.0  # one immediate retry with a fresh token
        if action in ("back_off", "reconnect_later"):
            cap = min(b.max, (b.rate_limited if action == "back_off" else b.later) * exp)
            delay = cap / 2 + self._random() * cap / 2
        else:
            delay = self._random() * min(b.max, b.initial * exp)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay
