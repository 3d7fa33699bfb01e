"""A real Synapse on 127.0.0.1 for the Matrix tests and the round-trip benchmark.

SQLite in a temp dir, no federation listener, rate limits out of the way, registration only through
the shared-secret admin API. ``stop()`` and ``start()`` again keep the database and port, which is
how the tests simulate a homeserver restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

SERVER_NAME = "bron.test"
UNLIMITED = {"per_second": 100000, "burst_count": 100000}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(root: Path, port: int, secret: str) -> dict:
    limits = {
        "rc_message": UNLIMITED,
        "rc_registration": UNLIMITED,
        "rc_login": {"address": UNLIMITED, "account": UNLIMITED, "failed_attempts": UNLIMITED},
        "rc_joins": {"local": UNLIMITED, "remote": UNLIMITED},
        "rc_joins_per_room": UNLIMITED,
        "rc_invites": {"per_room": UNLIMITED, "per_user": UNLIMITED, "per_issuer": UNLIMITED},
        "rc_room_creation": UNLIMITED,
        "rc_key_requests": UNLIMITED,
        "rc_3pid_validation": UNLIMITED,
        "rc_admin_redaction": UNLIMITED,
        "rc_presence": {"per_user": UNLIMITED},
        "rc_delayed_event_mgmt": UNLIMITED,
        "rc_profile": UNLIMITED,
        "rc_user_directory": UNLIMITED,
    }
    return {
        "server_name": SERVER_NAME,
        "pid_file": str(root / "homeserver.pid"),
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                # client only: no federation resource at all
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(root / "homeserver.db")}},
        "log_config": str(root / "log.yaml"),
        "media_store_path": str(root / "media"),
        "enable_media_repo": False,
        "url_preview_enabled": False,
        "registration_shared_secret": secret,
        "enable_registration": False,
        "report_stats": False,
        "macaroon_secret_key": secrets.token_hex(16),
        "form_secret": secrets.token_hex(16),
        "signing_key_path": str(root / "signing.key"),
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        "bcrypt_rounds": 4,
        "presence": {"enabled": False},
        "enable_metrics": False,
        **limits,
    }


def _log_config(root: Path) -> dict:
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
        "handlers": {
            "file": {"class": "logging.FileHandler", "filename": str(root / "homeserver.log"), "formatter": "plain"}
        },
        "root": {"level": "WARNING", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


@dataclass
class User:
    """A registered account."""

    user_id: str
    password: str
    access_token: str
    device_id: str


class Synapse:
    """One Synapse process on a free loopback port, with its files under ``root``."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.secret = secrets.token_hex(16)
        self.process: subprocess.Popen | None = None
        self.start_seconds = 0.0
        self._write_config()

    def _write_config(self) -> None:
        from signedjson.key import generate_signing_key, write_signing_keys

        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "homeserver.yaml").write_text(yaml.safe_dump(_config(self.root, self.port, self.secret)))
        (self.root / "log.yaml").write_text(yaml.safe_dump(_log_config(self.root)))
        with open(self.root / "signing.key", "w") as f:
            write_signing_keys(f, [generate_signing_key("a")])

    def start(self, timeout: float = 60.0) -> float:
        """Start the server and wait until the client API answers; returns the seconds it took."""
        began = time.monotonic()
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "synapse.app.homeserver", "-c", str(self.root / "homeserver.yaml")],
            cwd=self.root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "stderr.log", "ab"),
        )
        while time.monotonic() - began < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"synapse exited with {self.process.returncode}; see {self.root}/stderr.log")
            try:
                with urllib.request.urlopen(f"{self.url}/_matrix/client/versions", timeout=2) as r:
                    if r.status == 200:
                        self.start_seconds = time.monotonic() - began
                        return self.start_seconds
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"synapse did not answer within {timeout}s; see {self.root}")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for the process to end."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _post(self, path: str, body: dict | None = None) -> dict:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"},
            method="POST" if body is not None else "GET",
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def register(self, localpart: str, password: str | None = None, admin: bool = False) -> User:
        """Create an account through the shared-secret admin API (HMAC-SHA1 over nonce, user, password)."""
        password = password or secrets.token_hex(8)
        nonce = self._post("/_synapse/admin/v1/register")["nonce"]
        body = {
            "nonce": nonce,
            "username": localpart,
            "password": password,
            "admin": admin,
            "mac": self._mac(nonce, localpart, password, admin),
        }
        reply = self._post("/_synapse/admin/v1/register", body)
        return User(reply["user_id"], password, reply["access_token"], reply["device_id"])

    def _mac(self, nonce: str, user: str, password: str, admin: bool) -> str:
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join(p.encode() for p in (nonce, user, password, "admin" if admin else "notadmin")))
        return mac.hexdigest()

    def send_raw(self, access_token: str, room_id: str, event_type: str, content: dict) -> str:
        """Send an event as given, bypassing client-side encryption; returns its event id."""
        from urllib.parse import quote

        request = urllib.request.Request(
            f"{self.url}/_matrix/client/v3/rooms/{quote(room_id)}/send/{event_type}/{secrets.token_hex(8)}",
            data=json.dumps(content).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {access_token}"},
            method="PUT",
        )
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())["event_id"]
