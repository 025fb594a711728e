"""The real release server for the tests, and what they need around it.

``Server`` starts ``$DOORMAN_BIN`` on free ports with a SQLite file in a temporary
directory that survives restarts (the signing key lives there too, so tokens stay
valid across them); tests stop it with SIGTERM or SIGKILL, freeze it with SIGSTOP and
start it again on the same port and database. The HTTP helpers use the standard
library only.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from doorman_realtime import CloseInfo, RealtimeClient, StateChange
from doorman_realtime.frames import SERVER_FRAMES

BIN = os.environ.get("DOORMAN_BIN", "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict[str, str] | None = None):
        if not BIN or not os.access(BIN, os.X_OK):
            raise RuntimeError(f"DOORMAN_BIN={BIN!r} is not an executable")
        self.port = free_port()
        self.metrics_port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="doorman-pyrealtime-"))
        self.log_path = self.dir / "server.log"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "DOORMAN_BIND": f"127.0.0.1:{self.port}",
            "DATABASE_URL": f"sqlite://{self.dir / 'doorman.db'}?mode=rwc",
            "DOORMAN_LOGIN_PER_MINUTE": "1000",
            "DOORMAN_METRICS_BIND": f"127.0.0.1:{self.metrics_port}",
            **self.env,
        }
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([BIN], cwd=self.dir, env=env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(100):
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(f"{self.http}/readyz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"doorman did not start on {self.port}:\n{self.tail()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM (the server closes its sockets with 1001) or SIGKILL; waits for the exit."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def freeze(self, frozen: bool) -> None:
        """SIGSTOP / SIGCONT: the sockets stay open and go silent."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGSTOP if frozen else signal.SIGCONT)

    def dispose(self) -> None:
        self.freeze(False)
        self.stop(signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def handshakes(self) -> int:
        """doorman_ws_handshakes_total since this process started, every outcome."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return int(sum(float(line.rsplit(" ", 1)[-1]) for line in text.splitlines() if line.startswith("doorman_ws_handshakes_total")))

    # -- HTTP ----------------------------------------------------------------------

    def call(self, method: str, path: str, body: Any = None, status: int = 200, bearer: str | None = None) -> Any:
        headers = {"content-type": "application/json"} if body is not None else {}
        if bearer:
            headers["authorization"] = f"Bearer {bearer}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.http + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                got, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            got, text = e.code, e.read().decode()
        if got != status:
            raise AssertionError(f"{method} {path}: expected {status}, got {got} {text}")
        return json.loads(text) if text else None


_seq = 0


@dataclass
class User:
    server: Server
    email: str
    password: str = "correct horse battery"

    def login(self) -> dict[str, Any]:
        return self.server.call("POST", "/api/auth/login", {"email": self.email, "password": self.password, "mode": "token"})


def new_user(server: Server) -> User:
    global _seq
    _seq += 1
    user = User(server, f"pyrt-{os.getpid()}-{time.time_ns()}-{_seq}@example.test")
    server.call("POST", "/api/auth/register", {"email": user.email, "password": user.password}, 201)
    return user


def refresh(server: Server, tokens: dict[str, Any]) -> dict[str, Any]:
    return server.call("POST", "/api/auth/refresh", {"refresh_token": tokens["refresh_token"]})


def logout(server: Server, access: str) -> None:
    server.call("POST", "/api/auth/logout", None, 204, bearer=access)


def publish_http(server: Server, access: str, room: str, body: str) -> None:
    server.call("POST", f"/api/rooms/{room}/messages", {"body": body}, 202, bearer=access)


# -- recording a client ------------------------------------------------------------


@dataclass
class Recorder:
    """Everything a client reports, and every frame checked against the document."""

    client: RealtimeClient
    messages: list[dict[str, Any]] = field(default_factory=list)
    subscribed: list[dict[str, Any]] = field(default_factory=list)
    welcomes: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    closes: list[CloseInfo] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    ended: list[Exception] = field(default_factory=list)
    recovery_failed: list[Any] = field(default_factory=list)
    # How many messages had been delivered when each `subscribed` came.
    delivered_at_subscribed: list[int] = field(default_factory=list)
    frames: int = 0
    invalid: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        c = self.client
        c.on("message", self.messages.append)
        c.on("subscribed", self._subscribed)
        c.on("recovery_failed", self.recovery_failed.append)
        c.on("welcome", self.welcomes.append)
        c.on("error", self.errors.append)
        c.on("close", self.closes.append)
        c.on("state", lambda s: self.states.append(s.state))
        c.on("session_ended", self.ended.append)
        c.on("frame", self._check)

    def _subscribed(self, frame: dict[str, Any]) -> None:
        self.subscribed.append(frame)
        self.delivered_at_subscribed.append(len(self.messages))

    def _check(self, frame: dict[str, Any]) -> None:
        """A frame's type must be one the document's server sends, and it must carry
        the required fields of (one variant of) that type's schema."""
        self.frames += 1
        variants = SERVER_FRAMES.get(frame["type"])
        if variants is None or not any(v.__required_keys__ <= frame.keys() for v in variants):
            self.invalid.append(json.dumps(frame))

    def bodies(self) -> list[str]:
        return [m["body"] for m in self.messages]


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


class TokenCalls:
    """A token callback that records why it was asked; ``answer(reason)`` decides."""

    def __init__(self, answer: Callable[[str], Any]):
        self.reasons: list[str] = []
        self._answer = answer

    async def __call__(self, reason: str) -> str:
        self.reasons.append(reason)
        result = self._answer(reason)
        if asyncio.iscoroutine(result):
            result = await result
        return result


__all__ = [
    "Recorder",
    "Server",
    "StateChange",
    "TokenCalls",
    "User",
    "free_port",
    "logout",
    "new_user",
    "publish_http",
    "refresh",
    "until",
]
