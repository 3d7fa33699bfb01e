"""``bron matrix status`` and ``bron matrix recovery-key``: what an operator needs to know and keep.

Status reads the stored session and asks the homeserver, so it works while the bot runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import quote

from bot.matrix_api import MatrixAPI
from bot.matrix_backup import has_backup_key
from bot.matrix_crosssign import device_signed_by, keys_file, load_keys, recovery_file, server_key
from bot.matrix_session import MatrixStartupError, load_session, session_path


async def gather(data_dir: Path) -> dict:
    """Device, cross-signing, backup and rooms of the bot whose login is stored in ``data_dir``."""
    session = load_session(data_dir)
    if session is None:
        raise MatrixStartupError(f"no Matrix login in {session_path(data_dir)}: start `bron serve matrix` once first.")
    user_id = session.user_id
    async with MatrixAPI(session.homeserver, session.access_token) as api:
        query = await api.query_keys(user_id)
        master = server_key(query, "master", user_id)
        local = load_keys(data_dir)
        status, backup = await api.call("GET", "/room_keys/version", ok=(200, 404))
        _, joined = await api.call("GET", "/joined_rooms")
        rooms = []
        for room_id in joined.get("joined_rooms", []):
            code, _ = await api.call("GET", f"/rooms/{quote(room_id)}/state/m.room.encryption/", ok=(200, 404))
            rooms.append((room_id, code == 200))
    return {
        "user_id": user_id,
        "device_id": session.device_id,
        "cross_signed": device_signed_by(query, user_id, session.device_id, server_key(query, "self_signing", user_id)),
        "identity": "none" if master is None else ("kept in this store" if local and local.master.public == master
                                                    else "not in this store (set MATRIX_RECOVERY_KEY)"),
        "backup": (f"version {backup.get('version')}, {backup.get('count', 0)} room keys"
                   + (" (this store has its key)" if has_backup_key(data_dir, backup.get("version")) else " (not this store's)")
                   if status == 200 else "none"),
        "rooms": rooms,
    }


def render(status: dict) -> str:
    """The status as lines for a terminal."""
    lines = [
        f"user:          {status['user_id']}",
        f"device:        {status['device_id']}",
        f"cross-signed:  {'yes' if status['cross_signed'] else 'no'}",
        f"identity keys: {status['identity']}",
        f"key backup:    {status['backup']}",
        f"rooms:         {len(status['rooms'])}",
    ]
    lines += [f"  {room_id}  {'encrypted' if encrypted else 'not encrypted'}" for room_id, encrypted in status["rooms"]]
    return "\n".join(lines)


def status_text(data_dir: Path) -> str:
    """``bron matrix status``."""
    return render(asyncio.run(gather(data_dir)))


def recovery_key_text(data_dir: Path) -> str:
    """``bron matrix recovery-key``: the key and how to keep it."""
    path = recovery_file(data_dir)
    if not path.exists():
        raise MatrixStartupError(
            f"no recovery key in {path}: the bot creates one on its first encrypted start; a store restored with "
            "MATRIX_RECOVERY_KEY keeps that key."
        )
    return (
        f"{path.read_text(encoding='utf-8').strip()}\n\n"
        "Keep this recovery key off this machine, e.g. in a password manager. It opens the bot's secret storage:\n"
        f"if {keys_file(data_dir).parent} is lost, start the bot on a fresh store with MATRIX_RECOVERY_KEY set to it\n"
        "and the new device gets the same cross-signing identity, so users see no warning."
    )
