# Generated from asyncapi.json by scripts/gen_frames.py; do not edit.
# Regenerate: python scripts/gen_frames.py (run.sh fails when this file is stale).
"""The frames of doorman's WebSocket protocol (doorman WebSocket 0.1.0) and its close-code table.

Every TypedDict is a payload schema of the document; ``CLOSE_CODES`` and
``HANDSHAKE_REFUSALS`` are the channel's ``x-close-codes`` and
``x-handshake-refusals``, which the client's policy reads.
"""

from typing import Any, Final, Literal, NamedTuple, NotRequired, TypedDict, Union

DOCUMENT_VERSION: Final = "0.1.0"


class AuthFrame(TypedDict):
    """The first frame of a socket opened without a cookie or Bearer header: the
    access token (from `POST /api/auth/login` in token mode). Answered with
    `welcome`, or the socket closes with 4401. Anything else first closes it with
    4400; no `auth` within `DOORMAN_WS_AUTH_TIMEOUT_SECONDS` closes it with 4408.
    """

    type: Literal["auth"]

    token: str
    """An access token (JWT)."""


class ErrorFrame(TypedDict):
    """A frame was refused; the socket lives."""

    type: Literal["error"]

    code: Literal["bad_request", "invalid_room", "invalid_message", "too_many_rooms", "already_authenticated", "rate_limited", "forbidden", "database_unavailable", "internal_error"]
    """The stable code: what was wrong, and what to do (the socket lives)."""

    message: str
    """Human text; `code` is the stable part."""


class IdentityFrame(TypedDict):
    """The answer to `whoami`."""

    type: Literal["identity"]

    user_id: str
    """The authenticated user's id."""

    session_id: str
    """The session the socket is bound to."""

    auth_source: Literal["bearer", "cookie", "message"]
    """Where the credential came from."""

    session_expires_at: str
    """The session's absolute expiry, when the socket closes with 4403."""

    aal: Literal["aal1", "aal2"]
    """The session's assurance level, as the session says now."""

    amr: list[Literal["pwd", "otp", "recovery_code", "webauthn"]]
    """How the session's user authenticated."""

    auth_at: str
    """The session's last authentication."""


MessageFrame = TypedDict(
    "MessageFrame",
    {
        "type": Literal["message"],
        # Unique per message (UUIDv7, time-ordered): a client that reconnects may
        # use it to drop a message it has already seen.
        "id": str,
        "room": str,
        # The sender's user id, stamped by the server from the sender's identity.
        "from": str,
        "body": str,
        "sent_at": str,
        # What `offset` counts in: a new epoch means the room's history was lost
        # or reset (offsets start again at 1).
        "epoch": NotRequired[str | None],
        # The message's place in the room: 1, 2, 3, … within `epoch`. Keep the
        # last one and pass it as `since` when subscribing again to get what you
        # missed. Absent when the server keeps no history.
        "offset": NotRequired[int | None],
    },
)
MessageFrame.__doc__ = "A message published in a room the socket is subscribed to."


class NoticeFrameNewSession(TypedDict):
    """Something happened to another session of the same user.

    A new session of the same user opened (a login somewhere).
    """

    type: Literal["notice"]

    kind: Literal["new_session"]

    session_id: str
    """The new session's id."""

    ip: str | None
    """The client IP the login came from, when known."""

    user_agent: str | None
    """The login's `User-Agent`, when it sent one."""

    at: str
    """When the session opened (RFC 3339)."""


class NoticeFrameSessionEnded(TypedDict):
    """Something happened to another session of the same user.

    Another session of the same user ended (this socket's own session ending
    closes it with 4403 instead).
    """

    type: Literal["notice"]

    kind: Literal["session_ended"]

    session_id: str
    """The ended session's id."""

    reason: Literal["logout", "revoked", "revoked_all", "revoked_others", "password_changed", "refresh_token_reuse", "expired", "operator", "admin", "account_blocked", "account_deleted"]
    """Why it ended (logout, revocation, expiry, …)."""


class NoticeFrameFactorAdded(TypedDict):
    """Something happened to another session of the same user.

    A second factor was added to the account (TOTP confirmed, a passkey
    registered), from any session.
    """

    type: Literal["notice"]

    kind: Literal["factor_added"]

    method: Literal["otp", "webauthn"]
    """The factor's method: `otp` or `webauthn`."""


class NoticeFrameFactorRemoved(TypedDict):
    """Something happened to another session of the same user.

    A second factor was removed from the account. Sessions that were at aal2
    by it are aal1 now: their sockets left the rooms that require aal2
    (`unsubscribed`, reason `mfa_required`).
    """

    type: Literal["notice"]

    kind: Literal["factor_removed"]

    method: Literal["otp", "webauthn"]
    """The factor's method: `otp` or `webauthn`."""


NoticeFrame = Union[NoticeFrameNewSession, NoticeFrameSessionEnded, NoticeFrameFactorAdded, NoticeFrameFactorRemoved]
"""Something happened to another session of the same user."""


class PingFrame(TypedDict):
    """Answered with `pong` carrying the same `id`."""

    type: Literal["ping"]

    id: NotRequired[Any]
    """Any JSON value; echoed in the `pong`."""


class PongFrame(TypedDict):
    """The answer to `ping`."""

    type: Literal["pong"]

    id: NotRequired[Any]
    """The `ping`'s `id`; absent when the `ping` had none."""


class PresenceFrame(TypedDict):
    """A user's first socket joined the room, or their last socket left it (counted
    across tabs and instances). Coalesced per room in 250 ms windows: net changes
    only, up to 250 ms late; apply them as set operations.
    """

    type: Literal["presence"]

    room: str

    user_id: str
    """A user's id."""

    event: Literal["join", "leave"]
    """A change of who is present (on the wire: a `presence` frame's `event`)."""


class PublishFrame(TypedDict):
    """Send `body` to the room: every subscriber (the sender too, if subscribed) gets
    `message`. No answer on success; an `error` (`invalid_message`, `forbidden`,
    `rate_limited`, …) otherwise.
    """

    type: Literal["publish"]

    room: str
    """The room to send to (a private room: members only)."""

    body: str
    """1–4096 characters."""


class SubscribeFrame(TypedDict):
    """Join a room: answered with `subscribed` (who is present), or an `error`
    (`invalid_room`, `forbidden`, `too_many_rooms`). Subscribing again is harmless.
    """

    type: Literal["subscribe"]

    room: str
    """`lobby` (public) or `private:team` (members only); 1–64 of
    `A-Z a-z 0-9 _ - .` after the optional `private:`.
    """

    since: NotRequired[dict[str, Any] | None]
    """Where the client left off (the `offset` and `epoch` of the last `message`
    it has from this room): the `subscribed` answer says whether what came
    after was `recovered`, and the missed messages follow it, in order,
    before the live ones.
    """


class SubscribedFrame(TypedDict):
    """The answer to `subscribe`: the socket is in the room."""

    type: Literal["subscribed"]

    room: str
    """The room joined, as the `subscribe` named it."""

    present: list[str]
    """Who is in the room now, the subscriber included."""

    epoch: NotRequired[str | None]
    """The epoch `offset` counts in (`""` before the room's first message)."""

    offset: NotRequired[int | None]
    """The room's last offset when the subscription began (0 before its first
    message): live messages follow it. Absent when the server keeps no
    history.
    """

    reason: NotRequired[Literal["too_old", "epoch_changed", "history_off"] | None]
    """Why `recovered` is `false`."""

    recovered: NotRequired[bool | None]
    """Only when the `subscribe` had `since`: `true` when every message after it
    that this user may read follows (replayed, in order, before the live
    ones); `false` when they cannot be, and `reason` says why: refetch.
    """


class UnsubscribeFrame(TypedDict):
    """Leave a room: answered with `unsubscribed`."""

    type: Literal["unsubscribe"]

    room: str
    """The room to leave."""


class UnsubscribedFrame(TypedDict):
    """The socket left the room: the answer to `unsubscribe`, or (with `reason`) the
    server took it out.
    """

    type: Literal["unsubscribed"]

    room: str
    """The room the socket left."""

    reason: NotRequired[Literal["removed", "mfa_required"] | None]
    """Set when the server took the socket out: `removed` (the user was removed
    from the room, or it was deleted: do not resubscribe), `mfa_required`
    (the session dropped to aal1 in a room that requires aal2). Absent when
    the client asked.
    """


class WelcomeFrame(TypedDict):
    """The socket is authenticated (the first frame the server sends). Resend your
    subscriptions after every (re)connect: a new socket is in no room.
    """

    type: Literal["welcome"]

    user_id: str
    """The authenticated user's id."""

    session_id: str
    """The session the socket is bound to: it closes when this session ends."""

    auth_source: Literal["bearer", "cookie", "message"]
    """Where the credential came from."""

    session_expires_at: str
    """The session's absolute expiry: the socket closes with 4403
    `session_expired` then.
    """

    heartbeat_s: int
    """The server pings every this many seconds (WebSocket ping frames) and drops
    a peer silent for three intervals; a client may treat a socket it has heard
    nothing from for about three intervals as dead.
    """

    aal: Literal["aal1", "aal2"]
    """The session's assurance level when the socket opened: `aal2` after a
    second factor or a passkey. Rooms that require aal2 refuse an aal1 socket.
    """

    amr: list[Literal["pwd", "otp", "recovery_code", "webauthn"]]
    """How the session's user authenticated."""

    auth_at: str
    """The session's last authentication (login or re-authentication)."""


class WhoamiFrame(TypedDict):
    """Answered with `identity`."""

    type: Literal["whoami"]


# What the client sends (the document's `receive` operations).
ClientFrame = Union[AuthFrame, PingFrame, PublishFrame, SubscribeFrame, UnsubscribeFrame, WhoamiFrame]
# What the server sends (the document's `send` operations).
ServerFrame = Union[ErrorFrame, IdentityFrame, MessageFrame, NoticeFrame, PongFrame, PresenceFrame, SubscribedFrame, UnsubscribedFrame, WelcomeFrame]

# The client's frames by `type` tag.
CLIENT_FRAMES: Final[dict[str, type]] = {
    "auth": AuthFrame,
    "ping": PingFrame,
    "publish": PublishFrame,
    "subscribe": SubscribeFrame,
    "unsubscribe": UnsubscribeFrame,
    "whoami": WhoamiFrame,
}

# The server's frames by `type` tag: the TypedDicts a frame of that tag may be
# (more than one where the schema has variants).
SERVER_FRAMES: Final[dict[str, tuple[type, ...]]] = {
    "error": (ErrorFrame,),
    "identity": (IdentityFrame,),
    "message": (MessageFrame,),
    "notice": (NoticeFrameNewSession, NoticeFrameSessionEnded, NoticeFrameFactorAdded, NoticeFrameFactorRemoved,),
    "pong": (PongFrame,),
    "presence": (PresenceFrame,),
    "subscribed": (SubscribedFrame,),
    "unsubscribed": (UnsubscribedFrame,),
    "welcome": (WelcomeFrame,),
}

# What a client does after a close or a refused handshake (every `action` the
# document's tables name).
CloseAction = Literal["back_off", "fix_client", "none", "reconnect", "reconnect_later", "refresh_token", "sign_in_again"]


class CloseCodeRow(NamedTuple):
    """One row of the channel's ``x-close-codes``."""

    code: int
    reason: str
    action: CloseAction
    client_should: str
    sent_by_server: bool
    when: str


CLOSE_CODES: Final[tuple[CloseCodeRow, ...]] = (
    CloseCodeRow(
        code=1000,
        reason="",
        action="none",
        client_should="nothing; reconnect if the client did not ask for it",
        sent_by_server=True,
        when="a write to the socket failed, or the peer vanished (nobody reads it); a client's own Close is echoed with its code (none if it sent none)",
    ),
    CloseCodeRow(
        code=1000,
        reason="heartbeat_timeout",
        action="reconnect",
        client_should="reconnect",
        sent_by_server=True,
        when="the peer answered no ping for three heartbeat intervals",
    ),
    CloseCodeRow(
        code=1001,
        reason="shutdown",
        action="reconnect",
        client_should="reconnect with a jittered backoff; resubscribe",
        sent_by_server=True,
        when="the server is stopping (restart, deploy); closes are spread over the drain window",
    ),
    CloseCodeRow(
        code=1002,
        reason="protocol_error",
        action="fix_client",
        client_should="stop and report: the WebSocket library is broken",
        sent_by_server=True,
        when="a frame that breaks RFC 6455: reserved bits set, an unknown opcode, an unmasked frame, a fragmented or oversized control frame, a continuation with nothing to continue, a new message inside a fragmented one, a Close payload of one byte",
    ),
    CloseCodeRow(
        code=1002,
        reason="Protocol violation",
        action="fix_client",
        client_should="stop and report: close with 1000 or a code of 3000–4999",
        sent_by_server=True,
        when="the client's own Close carried a code tungstenite refuses (below 1000, 1004–1006, 1014–2999, 5000 and above): the WebSocket library substitutes this reply, in its wording, and doorman cannot change it",
    ),
    CloseCodeRow(
        code=1006,
        reason="",
        action="reconnect",
        client_should="reconnect with a jittered backoff; resubscribe",
        sent_by_server=False,
        when="no close frame arrived: the network dropped, the server was killed, or (in browsers) the handshake was refused with an HTTP error",
    ),
    CloseCodeRow(
        code=1007,
        reason="invalid_utf8",
        action="fix_client",
        client_should="stop and report: send text frames as UTF-8",
        sent_by_server=True,
        when="a text message, or the reason in a Close frame, that is not valid UTF-8",
    ),
    CloseCodeRow(
        code=1009,
        reason="message too big",
        action="fix_client",
        client_should="not send such messages",
        sent_by_server=True,
        when="a message over DOORMAN_WS_MAX_MESSAGE_BYTES (default 64 KiB)",
    ),
    CloseCodeRow(
        code=1011,
        reason="internal_error",
        action="reconnect_later",
        client_should="reconnect after a longer backoff",
        sent_by_server=True,
        when="a server-side failure while authenticating the socket (logged)",
    ),
    CloseCodeRow(
        code=1013,
        reason="database_unavailable",
        action="reconnect_later",
        client_should="reconnect after a second or more; keep the token",
        sent_by_server=True,
        when="the database could not be reached while the socket was being authenticated; an open socket is never closed for this",
    ),
    CloseCodeRow(
        code=4400,
        reason="bad_request",
        action="fix_client",
        client_should="stop and report: send `auth` first",
        sent_by_server=True,
        when="anything but `auth` as the first frame of a socket opened without credentials",
    ),
    CloseCodeRow(
        code=4401,
        reason="invalid_token",
        action="refresh_token",
        client_should="refresh the access token, then reconnect with the new one",
        sent_by_server=True,
        when="a bad or expired token in the `auth` frame",
    ),
    CloseCodeRow(
        code=4403,
        reason="session_revoked",
        action="sign_in_again",
        client_should="not retry: the session is over; sign in again",
        sent_by_server=True,
        when="the session ended while the socket was open (logout, revocation, a password change, refresh-token reuse)",
    ),
    CloseCodeRow(
        code=4403,
        reason="session_expired",
        action="sign_in_again",
        client_should="not retry: the session is over; sign in again",
        sent_by_server=True,
        when="the session reached its absolute expiry (`session_expires_at`) or idle expiry",
    ),
    CloseCodeRow(
        code=4403,
        reason="account_blocked",
        action="sign_in_again",
        client_should="not retry: signing in is refused with `account_blocked` until an admin unblocks the account",
        sent_by_server=True,
        when="an admin blocked the account while the socket was open (every session of the account ended)",
    ),
    CloseCodeRow(
        code=4408,
        reason="auth_timeout",
        action="reconnect",
        client_should="reconnect and send `auth` at once",
        sent_by_server=True,
        when="no `auth` frame within DOORMAN_WS_AUTH_TIMEOUT_SECONDS (default 10)",
    ),
    CloseCodeRow(
        code=4429,
        reason="rate_limited",
        action="back_off",
        client_should="reconnect only after a long backoff, and send less",
        sent_by_server=True,
        when="the socket sent more than DOORMAN_WS_MESSAGES_PER_SECOND frames (burst twice that), or more than 16 pings before `auth`",
    ),
    CloseCodeRow(
        code=4429,
        reason="too_many_sockets",
        action="back_off",
        client_should="close sockets it no longer needs; reconnect only after a long backoff",
        sent_by_server=True,
        when="the user already holds DOORMAN_WS_MAX_SOCKETS_PER_USER sockets on this instance",
    ),
)


class HandshakeRefusal(NamedTuple):
    """One row of the channel's ``x-handshake-refusals``: an HTTP status that
    refuses the upgrade, with the ``error`` codes of its JSON body."""

    status: int
    errors: tuple[str, ...]
    action: CloseAction
    client_should: str | None
    when: str


HANDSHAKE_REFUSALS: Final[tuple[HandshakeRefusal, ...]] = (
    HandshakeRefusal(
        status=400,
        errors=("bad_request",),
        action="fix_client",
        client_should=None,
        when="not a WebSocket upgrade, or not HTTP/1.1",
    ),
    HandshakeRefusal(
        status=401,
        errors=("invalid_token", "session_revoked", "session_expired",),
        action="refresh_token",
        client_should="refresh the access token and reconnect; on session_revoked or session_expired, or when the refresh fails, sign in again",
        when="a Bearer header or cookie is present but invalid, expired, or its session ended",
    ),
    HandshakeRefusal(
        status=403,
        errors=("origin_refused",),
        action="fix_client",
        client_should=None,
        when="a cookie credential from an Origin that is not allowed",
    ),
    HandshakeRefusal(
        status=403,
        errors=("account_blocked",),
        action="sign_in_again",
        client_should="not retry: signing in is refused until an admin unblocks the account",
        when="a credential of a session that ended when an admin blocked the account",
    ),
    HandshakeRefusal(
        status=429,
        errors=("rate_limited", "too_many_sockets",),
        action="back_off",
        client_should="wait at least Retry-After seconds",
        when="too many handshakes from this IP (DOORMAN_WS_HANDSHAKE_PER_SECOND), or the user holds DOORMAN_WS_MAX_SOCKETS_PER_USER sockets",
    ),
    HandshakeRefusal(
        status=503,
        errors=("database_unavailable", "shutting_down",),
        action="reconnect_later",
        client_should="wait Retry-After seconds (or a longer backoff) and reconnect",
        when="the database is unreachable, or the server is draining",
    ),
)
