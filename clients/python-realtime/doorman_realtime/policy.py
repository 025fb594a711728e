"""The close-code policy: what the client does after a close or a refused handshake.

Read from the document's tables (``frames.CLOSE_CODES``, ``frames.HANDSHAKE_REFUSALS``,
generated from asyncapi.json's ``x-close-codes`` and ``x-handshake-refusals``); this
module holds only the rules for what the tables do not decide.
"""

from __future__ import annotations

from .frames import CLOSE_CODES, HANDSHAKE_REFUSALS, CloseAction

# A code or status the document does not list (a proxy's 502, a close code a newer
# server adds) reconnects with the jittered backoff, as the TypeScript SDK does.
UNLISTED: CloseAction = "reconnect"


def close_action(code: int, reason: str) -> CloseAction:
    """The document's action for a close with this code and reason.

    A row with the same code and reason decides. Otherwise the rows of the code do:
    their action when they agree, else the action of the row without a reason
    (1000 with an unlisted reason is the plain 1000). A code without rows is
    ``reconnect``. ``none`` means: stop if this client asked for the close,
    reconnect if it did not (the client applies that).
    """
    rows = [r for r in CLOSE_CODES if r.code == code]
    for r in rows:
        if r.reason == reason:
            return r.action
    if not rows:
        return UNLISTED
    actions = {r.action for r in rows}
    if len(actions) == 1:
        return rows[0].action
    plain = [r for r in rows if r.reason == ""]
    return (plain or rows)[0].action


def handshake_action(status: int, error: str | None = None) -> CloseAction:
    """The document's action for a handshake refused with this HTTP status.

    A status can have several rows (403: a refused Origin is ``fix_client``, a blocked
    account is ``sign_in_again``); the refusal's JSON ``error`` picks the row when it
    names one. Without it (a proxy's body, a browser that hides it) the status's first
    row decides, as in the TypeScript SDK.
    """
    rows = [r for r in HANDSHAKE_REFUSALS if r.status == status]
    for r in rows:
        if error is not None and error in r.errors:
            return r.action
    return rows[0].action if rows else UNLISTED
