"""Prepare the reference peer's data, or mint an access token for it.

    python setup.py DATA_DIR            create DATA_DIR/peer.db (one user, one
                                        active session), private.pem, public.pem;
                                        print one access token
    python setup.py DATA_DIR --token    print a fresh access token for the
                                        existing session

The token is an EdDSA (Ed25519) JWT: iss "peer", aud "doorman", sub (user id),
sid (session id), iat, exp = now + 1 hour, jti.
"""

import argparse
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

SCHEMA = """
CREATE TABLE users (
    id           TEXT PRIMARY KEY,
    email        TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    created_at   TEXT NOT NULL
);
CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX sessions_user_id ON sessions(user_id);
"""

SESSION_LIFETIME_S = 10 * 365 * 24 * 3600  # far from expiry for any benchmark
TOKEN_LIFETIME_S = 3600


def create(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    db_path = data_dir / "peer.db"
    if db_path.exists():
        sys.exit(f"{db_path} already exists; use --token to mint a token")

    key = Ed25519PrivateKey.generate()
    (data_dir / "private.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (data_dir / "private.pem").chmod(0o600)
    (data_dir / "public.pem").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
    )

    now = int(time.time())
    user_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    created = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    with sqlite3.connect(db_path) as conn:
        conn.executescript(SCHEMA)
        conn.execute(
            "INSERT INTO users (id, email, display_name, created_at) VALUES (?, ?, ?, ?)",
            (user_id, "bench@example.com", "Bench User", created),
        )
        conn.execute(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
            (session_id, user_id, now, now + SESSION_LIFETIME_S),
        )
    conn.close()


def mint(data_dir: Path) -> str:
    key = serialization.load_pem_private_key((data_dir / "private.pem").read_bytes(), password=None)
    conn = sqlite3.connect(data_dir / "peer.db")
    row = conn.execute(
        "SELECT id, user_id FROM sessions WHERE revoked_at IS NULL AND expires_at > ? ORDER BY created_at LIMIT 1",
        (int(time.time()),),
    ).fetchone()
    conn.close()
    if row is None:
        sys.exit("no active session in peer.db")
    session_id, user_id = row
    now = int(time.time())
    claims = {
        "iss": "peer",
        "aud": "doorman",
        "sub": user_id,
        "sid": session_id,
        "iat": now,
        "exp": now + TOKEN_LIFETIME_S,
        "jti": str(uuid.uuid4()),
    }
    return jwt.encode(claims, key, algorithm="EdDSA")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--token", action="store_true", help="only mint a token for the existing session")
    args = parser.parse_args()
    if not args.token:
        create(args.data_dir)
    print(mint(args.data_dir))


if __name__ == "__main__":
    main()
