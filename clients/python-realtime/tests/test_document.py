"""The package against asyncapi.json: the generated frames are current, and the
close-code policy is the document's (and the TypeScript SDK's)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import doorman_realtime
from doorman_realtime import EVENTS, close_action, handshake_action, frames

HERE = Path(__file__).resolve().parent
PKG = HERE.parent
DOC_PATH = PKG.parent.parent / "asyncapi.json"
DOC = json.loads(DOC_PATH.read_text(encoding="utf-8"))
CHANNEL = DOC["channels"]["socket"]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_frames", PKG / "scripts" / "gen_frames.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_installed_frames_are_what_the_generator_makes_of_the_document():
    generated = _generator().generate(DOC, DOC_PATH.name)
    installed = Path(frames.__file__).read_text(encoding="utf-8")
    assert installed == generated, "frames.py is stale: run python scripts/gen_frames.py"
    # The tables are the document's rows, in its order.
    assert [(r.code, r.reason, r.action) for r in frames.CLOSE_CODES] == [
        (r["code"], r["reason"], r["action"]) for r in CHANNEL["x-close-codes"]
    ]
    assert [(r.status, list(r.errors), r.action) for r in frames.HANDSHAKE_REFUSALS] == [
        (r["status"], r["error"], r["action"]) for r in CHANNEL["x-handshake-refusals"]
    ]


def test_every_server_frame_of_the_document_is_an_event_with_its_required_fields():
    schemas = DOC["components"]["schemas"]
    send = {
        m["$ref"].rsplit("/", 1)[-1]
        for op in DOC["operations"].values()
        if op["action"] == "send"
        for m in op["messages"]
    }
    assert send <= EVENTS
    for tag in send:
        schema = schemas[DOC["components"]["messages"][tag]["payload"]["$ref"].rsplit("/", 1)[-1]]
        for variant in frames.SERVER_FRAMES[tag]:
            required = set(schema.get("required", []))
            assert required <= variant.__required_keys__, (tag, variant)


def test_the_close_policy_is_the_documents():
    rows = CHANNEL["x-close-codes"]
    assert len(rows) >= 10
    for row in rows:
        assert close_action(row["code"], row["reason"]) == row["action"], row
    for row in CHANNEL["x-handshake-refusals"]:
        for error in row["error"]:
            assert handshake_action(row["status"], error) == row["action"], row
        # Without the body, the status's first row decides.
        first = next(r for r in CHANNEL["x-handshake-refusals"] if r["status"] == row["status"])
        assert handshake_action(row["status"]) == first["action"], row
    # What the tables leave open: an unlisted reason of a listed code, and unlisted codes.
    assert close_action(1000, "something new") == "none"  # the plain 1000 row
    assert close_action(4401, "") == "refresh_token"  # every 4401 row agrees
    assert close_action(4999, "") == "reconnect"
    assert handshake_action(502) == "reconnect"


def test_the_policy_matches_the_typescript_sdk_for_every_code_the_document_lists():
    # The TypeScript SDK (clients/realtime) keeps its own table; both must do the
    # same with every code and status of the document. `none` is "reconnect unless
    # the client asked", which the TypeScript table writes as reconnect.
    ts = (PKG.parent / "realtime" / "src" / "index.ts").read_text(encoding="utf-8")

    def table(name: str) -> dict[int, str]:
        block = re.search(r"export const " + name + r"\b[^=]*= \{(.*?)\n\};", ts, re.S)
        assert block, name
        return {int(k): v for k, v in re.findall(r"(\d{3,4}): \"(\w+)\"", block.group(1))}

    close_ts, handshake_ts = table("CLOSE_POLICY"), table("HANDSHAKE_POLICY")
    assert len(close_ts) >= 10 and len(handshake_ts) >= 5
    for row in CHANNEL["x-close-codes"]:
        ours = close_action(row["code"], row["reason"])
        assert (ours if ours != "none" else "reconnect") == close_ts[row["code"]], row
    for row in CHANNEL["x-handshake-refusals"]:
        assert handshake_action(row["status"]) == handshake_ts[row["status"]], row


def test_tokens_are_redacted():
    token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    for line in (
        f"> Authorization: Bearer {token}",
        f"> TEXT '{{\"type\":\"auth\",\"token\":\"{token[:40]}...' [300 bytes]",
        f"got {token}",
    ):
        out = doorman_realtime.redact(line)
        assert "eyJ" not in out and "c2lnbmF0dXJl" not in out and "[redacted]" in out, out
