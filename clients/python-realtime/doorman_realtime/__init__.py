"""doorman_realtime: an asyncio client for doorman's WebSocket (asyncapi.json).

    from doorman_realtime import RealtimeClient

See README.md beside the package for a first example, the close-code policy and the
events.
"""

from . import frames
from .client import (
    EVENTS,
    Backoff,
    ClientClosed,
    ClientFailed,
    CloseInfo,
    HistoryError,
    NotConnected,
    Position,
    PublishQueueFull,
    RealtimeClient,
    RealtimeError,
    RecoveryFailed,
    SessionEnded,
    State,
    StateChange,
    TokenProvider,
    TokenReason,
    redact,
)
from .frames import CloseAction, MessageFrame, ServerFrame, WelcomeFrame
from .policy import close_action, handshake_action

__version__ = "0.1.0"

__all__ = [
    "EVENTS",
    "Backoff",
    "ClientClosed",
    "ClientFailed",
    "CloseAction",
    "CloseInfo",
    "HistoryError",
    "MessageFrame",
    "NotConnected",
    "Position",
    "PublishQueueFull",
    "RealtimeClient",
    "RealtimeError",
    "RecoveryFailed",
    "ServerFrame",
    "SessionEnded",
    "State",
    "StateChange",
    "TokenProvider",
    "TokenReason",
    "WelcomeFrame",
    "close_action",
    "frames",
    "handshake_action",
    "redact",
]
