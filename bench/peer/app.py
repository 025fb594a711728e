"""Reference peer: the common FastAPI design for "JWT + server-side session" auth.

One dependency, `current_identity`, authenticates both HTTP requests and
WebSocket handshakes: Bearer header first, else the `doorman_access` cookie;
PyJWT verifies the EdDSA signature and claims; SQLite confirms the session is
live and yields the user. Paths and frames match doorman's /api/me and /ws.

Configuration: PEER_DATA_DIR holds peer.db and public.pem (see setup.py).
"""

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect
from fastapi.requests import HTTPConnection
from fastapi.responses import JSONResponse

DATA_DIR = Path(os.environ.get("PEER_DATA_DIR", "."))
DB_PATH = DATA_DIR / "peer.db"
PUBLIC_KEY = load_pem_public_key((DATA_DIR / "public.pem").read_bytes())
COOKIE_NAME = "doorman_access"

# One query, always the same text: sqlite3 prepares it once per connection and
# reuses the compiled statement from its cache afterwards.
SESSION_SQL = """
SELECT s.revoked_at, s.expires_at, u.id, u.email, u.display_name, u.created_at
FROM sessions AS s JOIN users AS u ON u.id = s.user_id
WHERE s.id = ? AND s.user_id = ?
"""

# sqlite3 connections must stay on the thread that opened them; sync
# dependencies run in FastAPI's thread pool, so each pool thread keeps one.
# Each uvicorn worker is its own process and so has its own pool and connections.
_local = threading.local()


def db() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DB_PATH)
        _local.conn = conn
    return conn


class Unauthorized(Exception):
    def __init__(self, error: str, message: str) -> None:
        self.error, self.message = error, message


@dataclass(frozen=True, slots=True)
class Identity:
    user: dict
    session_id: str
    auth_source: Literal["bearer", "cookie"]


def current_identity(conn: HTTPConnection) -> Identity:
    """Authenticate an HTTP request or a WebSocket handshake."""
    scheme, _, token = conn.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        source = "bearer"
    elif token := conn.cookies.get(COOKIE_NAME, ""):
        source = "cookie"
    else:
        raise Unauthorized("missing_credentials", "no credentials were presented")

    try:
        claims = jwt.decode(
            token,
            PUBLIC_KEY,
            algorithms=["EdDSA"],
            audience="doorman",
            issuer="peer",
            options={"require": ["exp", "iss", "aud", "sub", "sid"]},
        )
    except jwt.InvalidTokenError:
        raise Unauthorized("invalid_token", "the access token is invalid or expired")

    row = db().execute(SESSION_SQL, (claims["sid"], claims["sub"])).fetchone()
    if row is None:
        raise Unauthorized("invalid_token", "the access token is invalid or expired")
    revoked_at, expires_at, user_id, email, display_name, created_at = row
    if revoked_at is not None:
        raise Unauthorized("session_revoked", "the session has been revoked")
    if expires_at <= time.time():
        raise Unauthorized("session_expired", "the session has expired")

    user = {"id": user_id, "email": email, "display_name": display_name, "created_at": created_at}
    return Identity(user=user, session_id=claims["sid"], auth_source=source)


CurrentIdentity = Annotated[Identity, Depends(current_identity)]

app = FastAPI(title="doorman reference peer")


@app.exception_handler(Unauthorized)
async def unauthorized(conn: HTTPConnection, exc: Unauthorized) -> JSONResponse | None:
    if isinstance(conn, WebSocket):
        # Closing before accept refuses the upgrade (uvicorn answers HTTP 403).
        await conn.close(code=4401, reason=exc.error)
        return None
    return JSONResponse(
        {"error": exc.error, "message": exc.message},
        status_code=401,
        headers={"WWW-Authenticate": f'Bearer realm="peer", error="{exc.error}"'},
    )


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


@app.get("/api/me")
async def me(identity: CurrentIdentity) -> dict:
    return {"user": identity.user, "session_id": identity.session_id, "auth_source": identity.auth_source}


@app.websocket("/ws")
async def ws(websocket: WebSocket, identity: CurrentIdentity) -> None:
    await websocket.accept()
    await websocket.send_json(
        {
            "type": "welcome",
            "user_id": identity.user["id"],
            "session_id": identity.session_id,
            "auth_source": identity.auth_source,
        }
    )
    try:
        while True:
            try:
                frame = await websocket.receive_json()
            except ValueError:
                await websocket.send_json({"type": "error", "code": "bad_request", "message": "frame is not valid JSON"})
                continue
            if isinstance(frame, dict) and frame.get("type") == "ping":
                await websocket.send_json({"type": "pong", "id": frame.get("id")})
            else:
                await websocket.send_json(
                    {"type": "error", "code": "bad_request", "message": "unknown frame type or missing fields"}
                )
    except WebSocketDisconnect:
        pass
