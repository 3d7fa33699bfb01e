"""Server-side backup of the bot's room keys (``m.megolm_backup.v1.curve25519-aes-sha2``).

Each inbound room key the bot gets is encrypted to the backup's curve25519 public key (vodozemac's
PkEncryption, the scheme libolm and Element use) and uploaded. The backup's private key is kept in
``<data_dir>/matrix/store/key-backup.json`` and in secret storage under the recovery key, so a bot
restored with ``MATRIX_RECOVERY_KEY`` downloads the keys again and reads messages sent before it.
Without cross-signing (no recovery key in the store) there is no backup.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import aiohttp
import vodozemac
from nio import AsyncClient, ForwardedRoomKeyEvent, RoomKeyEvent
from nio.crypto.sessions import InboundGroupSession

from bot.matrix_api import MatrixAPI, MatrixAPIError
from bot.matrix_crosssign import DEFAULT_KEY, canonical_json, load_keys, recovery_file
from bot.matrix_session import write_private
from bot.matrix_recovery import RecoveryKeyError, b64, decode_recovery_key, decrypt_secret, encrypt_secret, unb64
from bot.matrix_session import StoredSession, store_path

log = logging.getLogger(__name__)

ALGORITHM = "m.megolm_backup.v1.curve25519-aes-sha2"
SECRET = "m.megolm_backup.v1"


def backup_file(data_dir: Path) -> Path:
    """Where the backup's version and private key are kept."""
    return store_path(data_dir) / "key-backup.json"


def has_backup_key(data_dir: Path, version: str | None) -> bool:
    """True if the store holds the private key of backup ``version``."""
    path = backup_file(data_dir)
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("version") == version
    except (OSError, ValueError):
        return False


class KeyBackup:
    """Uploads the bot's room keys to one backup version on the homeserver."""

    def __init__(self, client: AsyncClient, session: StoredSession, data_dir: Path, version: str, private: bytes) -> None:
        self.client, self.session, self.data_dir = client, session, data_dir
        self.version = version
        self.decryption = vodozemac.PkDecryption.from_key(vodozemac.Curve25519SecretKey.from_bytes(private))
        self.encryption = vodozemac.PkEncryption.from_key(self.decryption.public_key)
        self.uploaded: set[str] = set()
        client.add_to_device_callback(self._on_room_key, (RoomKeyEvent, ForwardedRoomKeyEvent))

    def _api(self) -> MatrixAPI:
        return MatrixAPI(self.session.homeserver, self.session.access_token)

    async def _on_room_key(self, event: RoomKeyEvent | ForwardedRoomKeyEvent) -> None:
        try:
            await self.upload()
        except (MatrixAPIError, OSError, aiohttp.ClientError) as exc:  # the next room key (or restart) uploads what is missing
            log.warning("matrix: key backup upload failed (%s)", exc)

    async def upload(self) -> int:
        """Upload the room keys not yet in the backup; returns how many were sent."""
        rooms: dict[str, dict] = {}
        sent = []
        for session in self.client.olm.inbound_group_store:
            if session.id in self.uploaded:
                continue
            rooms.setdefault(session.room_id, {"sessions": {}})["sessions"][session.id] = self._encrypt(session)
            sent.append(session.id)
        if sent:
            async with self._api() as api:
                await api.call("PUT", f"/room_keys/keys?version={self.version}", {"rooms": rooms})
            self.uploaded.update(sent)
        return len(sent)

    def _encrypt(self, session: InboundGroupSession) -> dict:
        data = {
            "algorithm": "m.megolm.v1.aes-sha2",
            "sender_key": session.sender_key,
            "sender_claimed_keys": {"ed25519": session.ed25519},
            "forwarding_curve25519_key_chain": session.forwarding_chain,
            "session_key": session.export_session(session.first_known_index),
        }
        # Message.to_base64() returns (ephemeral, mac, ciphertext), unlike from_base64: use the fields.
        message = self.encryption.encrypt(json.dumps(data).encode())
        ciphertext, mac, ephemeral = b64(message.ciphertext), b64(message.mac), b64(message.ephemeral_key)
        return {
            "first_message_index": session.first_known_index,
            "forwarded_count": len(session.forwarding_chain),
            "is_verified": False,
            "session_data": {"ephemeral": ephemeral, "ciphertext": ciphertext, "mac": mac},
        }

    async def restore(self) -> int:
        """Import every room key in the backup that the store lacks; returns how many were imported."""
        async with self._api() as api:
            _, backup = await api.call("GET", f"/room_keys/keys?version={self.version}")
        imported = 0
        for room_id, room in (backup.get("rooms") or {}).items():
            for session_id, entry in (room.get("sessions") or {}).items():
                self.uploaded.add(session_id)
                data = entry.get("session_data") or {}
                try:
                    message = vodozemac.Message(unb64(data["ciphertext"]), unb64(data["mac"]), unb64(data["ephemeral"]))
                    key = json.loads(self.decryption.decrypt(message))
                    session = InboundGroupSession.import_session(
                        key["session_key"], key["sender_claimed_keys"]["ed25519"], key["sender_key"], room_id,
                        key.get("forwarding_curve25519_key_chain") or [],
                    )
                except (KeyError, ValueError, TypeError) as exc:  # one bad entry must not stop the rest
                    log.warning("matrix: skipping backed-up key %s of %s (%s)", session_id, room_id, exc)
                    continue
                if self.client.olm.inbound_group_store.add(session):
                    self.client.olm.save_inbound_group_session(session)
                    imported += 1
        return imported


async def start_backup(client: AsyncClient, data_dir: Path, session: StoredSession) -> KeyBackup | None:
    """Join the account's backup (creating it if there is none), restore its keys, and back up the rest.

    Any failure leaves the bot without backup, with a warning: it still works as before.
    """
    if client.olm is None or not recovery_file(data_dir).exists():
        return None
    try:
        backup = await _open(client, data_dir, session)
        if backup is None:
            return None
        restored = await backup.restore()
        if restored:
            log.info("matrix: restored %d room keys from the key backup", restored)
        await backup.upload()
        return backup
    except (MatrixAPIError, RecoveryKeyError, OSError, aiohttp.ClientError) as exc:
        log.warning("matrix: no key backup: %s", exc)
        return None


async def _open(client: AsyncClient, data_dir: Path, session: StoredSession) -> KeyBackup | None:
    user_id = session.user_id
    recovery_key = decode_recovery_key(recovery_file(data_dir).read_text(encoding="utf-8"))
    local = json.loads(backup_file(data_dir).read_text(encoding="utf-8")) if backup_file(data_dir).exists() else None
    async with MatrixAPI(session.homeserver, session.access_token) as api:
        status, current = await api.call("GET", "/room_keys/version", ok=(200, 404))
        if status == 200 and local and local["version"] == current.get("version"):
            return KeyBackup(client, session, data_dir, local["version"], unb64(local["private"]))
        if status == 200:
            private = await _private_from_secret_storage(api, user_id, recovery_key)
            public = current.get("auth_data", {}).get("public_key")
            if private is None or _public(private) != public:
                log.warning("matrix: the account's key backup (version %s) is not one the recovery key opens; "
                            "room keys are not backed up", current.get("version"))
                return None
            version = current["version"]
        else:
            private = vodozemac.Curve25519SecretKey().to_bytes()
            version = await _create(api, client, data_dir, user_id, private, recovery_key)
            log.info("matrix: created key backup version %s", version)
        write_private(backup_file(data_dir), json.dumps({"version": version, "private": b64(private)}))
        return KeyBackup(client, session, data_dir, version, private)


def _public(private: bytes) -> str:
    return vodozemac.PkDecryption.from_key(vodozemac.Curve25519SecretKey.from_bytes(private)).public_key.to_base64()


async def _private_from_secret_storage(api: MatrixAPI, user_id: str, recovery_key: bytes) -> bytes | None:
    key_id = ((await api.get_account_data(user_id, DEFAULT_KEY)) or {}).get("key")
    stored = ((await api.get_account_data(user_id, SECRET)) or {}).get("encrypted", {}).get(key_id or "")
    return unb64(decrypt_secret(recovery_key, SECRET, stored)) if stored else None


async def _create(api: MatrixAPI, client: AsyncClient, data_dir: Path, user_id: str, private: bytes, recovery_key: bytes) -> str:
    """A new backup version whose auth data the master key and the device sign, its key in secret storage."""
    auth_data: dict = {"public_key": _public(private)}
    keys = load_keys(data_dir)
    if keys is not None:
        auth_data = keys.master.sign(auth_data, user_id)
    device_signature = client.olm.account.sign(canonical_json(auth_data).decode("utf-8"))
    auth_data.setdefault("signatures", {}).setdefault(user_id, {})[f"ed25519:{client.device_id}"] = device_signature
    _, created = await api.call("POST", "/room_keys/version", {"algorithm": ALGORITHM, "auth_data": auth_data})
    key_id = ((await api.get_account_data(user_id, DEFAULT_KEY)) or {}).get("key")
    if key_id:
        await api.put_account_data(user_id, SECRET, {"encrypted": {key_id: encrypt_secret(recovery_key, SECRET, b64(private))}})
    return created["version"]
