"""The Matrix login kept in the data directory, so that a restart is the same device.

``<data_dir>/matrix/session.json`` holds the homeserver, user id, device id, access token and the
last sync token (next_batch); ``<data_dir>/matrix/store/`` holds matrix-nio's encryption store
(``<user>_<device>.db`` plus the device trust files). Losing the store while keeping the session
would silently make the bot unable to read encrypted rooms, so :func:`login` refuses to start
then and says what to do.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from nio import AsyncClient, LoginResponse, WhoamiResponse

from bot.config import MatrixConfig
from bot.errors import ConfigError
from bot.matrix_recovery import RecoveryKeyError, decode_recovery_key

log = logging.getLogger(__name__)


class MatrixStartupError(ConfigError):
    """The bot cannot start; the message says why and what to do."""


@dataclass
class StoredSession:
    """What a restart needs to be the same Matrix device."""

    homeserver: str
    user_id: str
    device_id: str
    access_token: str
    next_batch: str = ""


def matrix_dir(data_dir: Path) -> Path:
    """The bot's Matrix folder inside the data directory."""
    return Path(data_dir) / "matrix"


def session_path(data_dir: Path) -> Path:
    """Where the stored login lives."""
    return matrix_dir(data_dir) / "session.json"


def store_path(data_dir: Path) -> Path:
    """Where matrix-nio keeps the encryption keys."""
    return matrix_dir(data_dir) / "store"


def store_file(data_dir: Path, user_id: str, device_id: str) -> Path:
    """The SQLite file of the encryption store for one device (matrix-nio's naming)."""
    return store_path(data_dir) / f"{user_id}_{device_id}.db"


def load_session(data_dir: Path) -> StoredSession | None:
    """The stored login, or None on first start; a damaged file stops start-up with advice."""
    path = session_path(data_dir)
    if not path.exists():
        return None
    try:
        return StoredSession(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise MatrixStartupError(
            f"{path} is damaged ({exc}). Restore it from a backup, or delete it (and {store_path(data_dir)}) "
            "to log in as a new device; encrypted messages sent to the old device stay unreadable."
        ) from exc


def write_private(path: Path, text: str) -> None:
    """Write atomically, readable by the owner only: these files hold tokens and private keys."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_session(data_dir: Path, session: StoredSession) -> None:
    """Write the login atomically, readable by the owner only (it holds the access token)."""
    write_private(session_path(data_dir), json.dumps(asdict(session)))


def check_config(config: MatrixConfig, stored: StoredSession | None) -> None:
    """Refuse to start on a bad matrix.* value or without a way to log in, naming the key to fix."""
    _check_values(config)
    if stored is None and not (config.access_token or (config.password and config.user_id)):
        raise MatrixStartupError(
            "no Matrix login: set matrix.user_id in config.yaml and the environment variable MATRIX_PASSWORD, "
            "or set MATRIX_ACCESS_TOKEN."
        )
    if stored and config.user_id and stored.user_id != config.user_id:
        raise MatrixStartupError(
            f"the stored Matrix session (device {stored.device_id}) belongs to {stored.user_id}, but config key "
            f"matrix.user_id is {config.user_id}. Fix matrix.user_id, or move the data directory's matrix/ "
            "folder away to log in anew."
        )


def _check_values(config: MatrixConfig) -> None:
    if not config.homeserver.startswith(("https://", "http://")):
        raise MatrixStartupError(
            f"config key matrix.homeserver: {config.homeserver!r} is not the homeserver's URL. Set it in "
            "config.yaml (e.g. https://matrix.example.org) or with BRON_MATRIX_HOMESERVER."
        )
    if config.recovery_key:
        try:
            decode_recovery_key(config.recovery_key)
        except RecoveryKeyError as exc:
            raise MatrixStartupError(f"MATRIX_RECOVERY_KEY: {exc}. Copy it again as it was shown.") from exc
    if not config.command_prefix.strip():
        raise MatrixStartupError('config key matrix.command_prefix is empty. Set it in config.yaml, e.g. "!".')
    for key, sigil, example in (
        ("allowed_users", "@", "@alice:example.org"),
        ("admin_users", "@", "@alice:example.org"),
        ("allowed_rooms", "!", "!abc123:example.org (Element: room settings, Advanced)"),
    ):
        for value in getattr(config, key):
            if not (value.startswith(sigil) and ":" in value):
                raise MatrixStartupError(
                    f"config key matrix.{key}: {value!r} is not a full id. Write ids like {example}."
                )


def _check_store(data_dir: Path, stored: StoredSession) -> None:
    """A stored session without its encryption store would be a new identity on an old device."""
    db = store_file(data_dir, stored.user_id, stored.device_id)
    if not db.exists():
        raise MatrixStartupError(
            f"the encryption store {db} of device {stored.device_id} is missing. Restore "
            f"{store_path(data_dir)} from your backup, or delete {session_path(data_dir)} to log in as a new "
            "device (messages encrypted for the old device stay unreadable to the bot)."
        )


def _check_account(client: AsyncClient, data_dir: Path, stored: StoredSession) -> None:
    if client.olm is not None and not client.olm.account.shared:
        # The store opened but has no keys for this device: it was replaced or emptied.
        raise MatrixStartupError(
            f"the encryption store in {store_path(data_dir)} has no keys for device {stored.device_id} "
            f"(replaced or emptied). Restore it from your backup, or delete {session_path(data_dir)} to log "
            "in as a new device."
        )


def _restore(client: AsyncClient, data_dir: Path, stored: StoredSession, encryption: bool) -> None:
    if encryption:
        _check_store(data_dir, stored)
    try:
        client.restore_login(stored.user_id, stored.device_id, stored.access_token)
    except Exception as exc:  # peewee/sqlite/vodozemac errors all mean an unreadable store
        raise MatrixStartupError(
            f"the encryption store in {store_path(data_dir)} cannot be read ({exc}). Restore it from your "
            f"backup, or delete {session_path(data_dir)} and the store to log in as a new device."
        ) from exc
    if encryption:
        _check_account(client, data_dir, stored)


async def login(client: AsyncClient, config: MatrixConfig, data_dir: Path, encryption: bool) -> StoredSession:
    """Reuse the stored session, else log in with the access token or password and store the result."""
    stored = load_session(data_dir)
    check_config(config, stored)
    if stored is not None:
        _restore(client, data_dir, stored, encryption)
        log.info("matrix: reusing device %s of %s", stored.device_id, stored.user_id)
        return stored
    if config.access_token:
        client.access_token = config.access_token
        who = await client.whoami()
        if not isinstance(who, WhoamiResponse) or not who.device_id:
            raise MatrixStartupError(f"MATRIX_ACCESS_TOKEN was not accepted by {config.homeserver}: {who}.")
        stored = StoredSession(config.homeserver, who.user_id, who.device_id, config.access_token)
        save_session(data_dir, stored)
        client.restore_login(stored.user_id, stored.device_id, stored.access_token)
    else:
        client.user = config.user_id
        reply = await client.login(config.password, device_name=config.device_name)
        if not isinstance(reply, LoginResponse):
            raise MatrixStartupError(
                f"login of {config.user_id} on {config.homeserver} failed: {getattr(reply, 'message', reply)}. "
                "Check matrix.user_id and MATRIX_PASSWORD."
            )
        stored = StoredSession(config.homeserver, reply.user_id, reply.device_id, reply.access_token)
        save_session(data_dir, stored)
    log.info("matrix: logged in as %s, new device %s", stored.user_id, stored.device_id)
    return stored
