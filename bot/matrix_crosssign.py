"""Cross-signing of the bot's own device, so that clients treat it as verified by its owner.

On the first start the bot creates master, self-signing and user-signing ed25519 keys, keeps their
private parts in ``<data_dir>/matrix/store/cross-signing.json`` (owner only), uploads the public
parts (answering the user-interactive auth with the bot's password), stores the private parts in
secret storage under a new recovery key (shown once, kept in ``recovery-key.txt`` beside them), and
signs its device with the self-signing key. Later starts only check that the device is signed. On a
fresh store of an account that already has an identity, ``MATRIX_RECOVERY_KEY`` brings the keys back
from secret storage and the new device is signed again.

matrix-nio has no cross-signing; the signatures are ed25519 over the spec's canonical JSON (keys
sorted, no insignificant whitespace, UTF-8, ``signatures`` and ``unsigned`` left out), made with
pycryptodome, which matrix-nio already depends on.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from nio import AsyncClient

from bot.config import MatrixConfig
from bot.matrix_api import MatrixAPI, MatrixAPIError
from bot.matrix_recovery import (
    RecoveryKeyError,
    b64,
    decode_recovery_key,
    decrypt_secret,
    encode_recovery_key,
    encrypt_secret,
    key_description,
    key_matches,
    new_recovery_key,
    unb64,
)
from bot.matrix_session import MatrixStartupError, StoredSession, store_path, write_private

log = logging.getLogger(__name__)

USAGES = ("master", "self_signing", "user_signing")
DEFAULT_KEY = "m.secret_storage.default_key"


def canonical_json(value: dict) -> bytes:
    """The bytes a Matrix signature covers: canonical JSON without ``signatures`` and ``unsigned``."""
    body = {k: v for k, v in value.items() if k not in ("signatures", "unsigned")}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


class SigningKey:
    """One ed25519 key pair, known by its 32-byte seed."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self._key = ECC.construct(curve="Ed25519", seed=seed)
        self.public = b64(self._key.public_key().export_key(format="raw"))

    @property
    def key_id(self) -> str:
        """``ed25519:<public key>``, how Matrix names a cross-signing key."""
        return f"ed25519:{self.public}"

    def sign(self, value: dict, user_id: str) -> dict:
        """``value`` with this key's signature added under ``user_id``."""
        signature = b64(eddsa.new(self._key, "rfc8032").sign(canonical_json(value)))
        signed = dict(value)
        signatures = {user: dict(sigs) for user, sigs in (value.get("signatures") or {}).items()}
        signatures.setdefault(user_id, {})[self.key_id] = signature
        signed["signatures"] = signatures
        return signed


@dataclass
class CrossSigningKeys:
    """The account's three cross-signing keys."""

    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        """Three new random keys."""
        return cls(*(SigningKey(os.urandom(32)) for _ in USAGES))

    def by_usage(self) -> dict[str, SigningKey]:
        """The keys by their spec usage name."""
        return dict(zip(USAGES, (self.master, self.self_signing, self.user_signing)))

    def public_keys(self, user_id: str) -> dict:
        """The body of ``/keys/device_signing/upload``: the master key signs the other two."""
        body = {}
        for usage, key in self.by_usage().items():
            public = {"user_id": user_id, "usage": [usage], "keys": {key.key_id: key.public}}
            body[f"{usage}_key"] = public if usage == "master" else self.master.sign(public, user_id)
        return body


def keys_file(data_dir: Path) -> Path:
    """Where the private cross-signing keys are kept."""
    return store_path(data_dir) / "cross-signing.json"


def recovery_file(data_dir: Path) -> Path:
    """Where the recovery key is kept, for ``bron matrix recovery-key``."""
    return store_path(data_dir) / "recovery-key.txt"


def save_keys(data_dir: Path, keys: CrossSigningKeys, recovery_key: bytes) -> None:
    """Keep the private keys and the recovery key in the store."""
    seeds = {usage: b64(key.seed) for usage, key in keys.by_usage().items()}
    write_private(keys_file(data_dir), json.dumps(seeds))
    write_private(recovery_file(data_dir), encode_recovery_key(recovery_key) + "\n")


def load_keys(data_dir: Path) -> CrossSigningKeys | None:
    """The private keys kept in the store, or None if there are none yet."""
    path = keys_file(data_dir)
    if not path.exists():
        return None
    try:
        seeds = json.loads(path.read_text(encoding="utf-8"))
        return CrossSigningKeys(*(SigningKey(unb64(seeds[usage])) for usage in USAGES))
    except (ValueError, KeyError, TypeError) as exc:
        raise MatrixStartupError(
            f"{path} is damaged ({exc}). Delete it and set MATRIX_RECOVERY_KEY to restore the keys from secret storage."
        ) from exc


def server_key(query: dict, usage: str, user_id: str) -> str | None:
    """The public key of one cross-signing usage in a /keys/query answer."""
    keys = (query.get(f"{usage}_keys") or {}).get(user_id, {}).get("keys", {})
    return next(iter(keys.values()), None)


def device_signed_by(query: dict, user_id: str, device_id: str, self_signing: str | None) -> bool:
    """True if the device carries a signature by the self-signing key (presence only; clients verify it)."""
    device = (query.get("device_keys") or {}).get(user_id, {}).get(device_id) or {}
    return bool(self_signing) and f"ed25519:{self_signing}" in (device.get("signatures") or {}).get(user_id, {})


async def upload_keys(api: MatrixAPI, keys: CrossSigningKeys, user_id: str, password: str) -> None:
    """Upload the public keys, answering the user-interactive auth with the password if asked."""
    body = keys.public_keys(user_id)
    status, answer = await api.call("POST", "/keys/device_signing/upload", body, ok=(200, 401))
    if status == 200:
        return
    if not password:
        raise MatrixAPIError("POST", "/keys/device_signing/upload", status,
                             {"error": "the homeserver wants the password (MATRIX_PASSWORD) to upload cross-signing keys"})
    body["auth"] = {
        "type": "m.login.password",
        "identifier": {"type": "m.id.user", "user": user_id},
        "password": password,
        "session": answer.get("session"),
    }
    await api.call("POST", "/keys/device_signing/upload", body)


async def sign_device(api: MatrixAPI, keys: CrossSigningKeys, query: dict, user_id: str, device_id: str) -> None:
    """Sign the device's keys (as the homeserver has them) with the self-signing key and upload the signature."""
    device = query["device_keys"][user_id][device_id]
    unsigned = {k: v for k, v in device.items() if k not in ("signatures", "unsigned")}
    signed = keys.self_signing.sign(unsigned, user_id)
    _, answer = await api.call("POST", "/keys/signatures/upload", {user_id: {device_id: signed}})
    if answer.get("failures"):
        raise MatrixAPIError("POST", "/keys/signatures/upload", 200, {"error": json.dumps(answer["failures"])})


async def store_secrets(api: MatrixAPI, keys: CrossSigningKeys, user_id: str, recovery_key: bytes) -> None:
    """Put the private keys into secret storage under a new default key (the recovery key)."""
    key_id = secrets.token_urlsafe(24)
    await api.put_account_data(user_id, f"m.secret_storage.key.{key_id}", key_description(recovery_key))
    for usage, key in keys.by_usage().items():
        name = f"m.cross_signing.{usage}"
        await api.put_account_data(user_id, name, {"encrypted": {key_id: encrypt_secret(recovery_key, name, b64(key.seed))}})
    await api.put_account_data(user_id, DEFAULT_KEY, {"key": key_id})


async def restore_secrets(api: MatrixAPI, user_id: str, recovery_key: bytes) -> CrossSigningKeys:
    """The private keys from secret storage; :class:`RecoveryKeyError` if the key does not fit."""
    default = await api.get_account_data(user_id, DEFAULT_KEY) or {}
    key_id = default.get("key", "")
    description = await api.get_account_data(user_id, f"m.secret_storage.key.{key_id}") if key_id else None
    if not description or not key_matches(recovery_key, description):
        raise RecoveryKeyError("MATRIX_RECOVERY_KEY is not the recovery key of this account's secret storage")
    seeds = []
    for usage in USAGES:
        name = f"m.cross_signing.{usage}"
        stored = ((await api.get_account_data(user_id, name)) or {}).get("encrypted", {}).get(key_id)
        if stored is None:
            raise RecoveryKeyError(f"secret storage holds no {name}")
        seeds.append(unb64(decrypt_secret(recovery_key, name, stored)))
    return CrossSigningKeys(*(SigningKey(seed) for seed in seeds))


def _announce(user_id: str, recovery_key: bytes, data_dir: Path) -> None:
    """Show the new recovery key once, outside the (quiet by default) log."""
    print(
        f"\nBron created a cross-signing identity for {user_id}. Its recovery key:\n\n"
        f"    {encode_recovery_key(recovery_key)}\n\n"
        "Keep it off this machine (a password manager). With it a new store gets the identity back: start\n"
        f"with MATRIX_RECOVERY_KEY set. `bron matrix recovery-key` shows it again while {recovery_file(data_dir)} exists.\n",
        file=sys.stderr,
    )


async def cross_sign(client: AsyncClient, config: MatrixConfig, data_dir: Path, session: StoredSession) -> bool:
    """Make sure the bot's device is cross-signed; True if it is.

    Network and homeserver errors leave the device unsigned with a warning (the bot still works,
    with the trust it had before); a recovery key that does not fit stops start-up.
    """
    if client.olm is None:
        return False
    try:
        return await _cross_sign(client, config, data_dir, session)
    except RecoveryKeyError as exc:
        raise MatrixStartupError(f"{exc}. Check MATRIX_RECOVERY_KEY (spaces do not matter).") from exc
    except MatrixAPIError as exc:
        log.warning("matrix: device %s not cross-signed: %s", session.device_id, exc)
        return False


async def _cross_sign(client: AsyncClient, config: MatrixConfig, data_dir: Path, session: StoredSession) -> bool:
    user_id, device_id = session.user_id, session.device_id
    if client.should_upload_keys:  # a new device: its keys must be on the server before they are signed
        await client.keys_upload()
    async with MatrixAPI(session.homeserver, session.access_token) as api:
        query = await api.query_keys(user_id)
        on_server = server_key(query, "master", user_id)
        keys = load_keys(data_dir)
        if keys is None and on_server:
            if not config.recovery_key:
                log.warning("matrix: device %s not cross-signed: %s already has cross-signing keys and this store "
                            "has none. Start once with MATRIX_RECOVERY_KEY to restore them.", device_id, user_id)
                return False
            recovery_key = decode_recovery_key(config.recovery_key)
            keys = await restore_secrets(api, user_id, recovery_key)
            save_keys(data_dir, keys, recovery_key)
            log.info("matrix: cross-signing keys of %s restored from secret storage", user_id)
        elif keys is None:
            keys, recovery_key = CrossSigningKeys.generate(), new_recovery_key()
            # Kept before uploading: a crash in between must not lose the keys the server then has.
            save_keys(data_dir, keys, recovery_key)
        if on_server is None:
            await upload_keys(api, keys, user_id, config.password)
            await store_secrets(api, keys, user_id, decode_recovery_key(recovery_file(data_dir).read_text()))
            _announce(user_id, decode_recovery_key(recovery_file(data_dir).read_text()), data_dir)
            log.info("matrix: uploaded new cross-signing keys for %s", user_id)
            query = await api.query_keys(user_id)
        elif on_server != keys.master.public:
            log.warning("matrix: device %s not cross-signed: the cross-signing identity of %s was replaced "
                        "elsewhere. Move %s away and start with the new MATRIX_RECOVERY_KEY.",
                        device_id, user_id, keys_file(data_dir))
            return False
        if not device_signed_by(query, user_id, device_id, keys.self_signing.public):
            await sign_device(api, keys, query, user_id, device_id)
            log.info("matrix: device %s is now cross-signed", device_id)
        return True
