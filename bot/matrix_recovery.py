"""The recovery key and secret storage (SSSS) of the Matrix spec, as pure functions.

The recovery key is 32 random bytes, written for people as base58 of ``0x8B 0x01 || key || parity``
(parity: XOR of all bytes before it) in groups of four. Secrets are stored encrypted in account data
with ``m.secret_storage.v1.aes-hmac-sha2``: HKDF-SHA256 (32 zero bytes of salt, the secret's name as
info) gives an AES-256-CTR key and an HMAC-SHA256 key. pycryptodome comes with matrix-nio.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from Crypto.Cipher import AES
from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

ALGORITHM = "m.secret_storage.v1.aes-hmac-sha2"
PREFIX = b"\x8b\x01"
BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class RecoveryKeyError(ValueError):
    """A recovery key that is mistyped or does not open the secret storage."""


def b64(data: bytes) -> str:
    """Unpadded base64, as Matrix writes binary data."""
    return base64.b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    """Decode base64 with or without padding."""
    return base64.b64decode(text + "=" * (-len(text) % 4))


def new_recovery_key() -> bytes:
    """A fresh 32-byte secret storage key."""
    return os.urandom(32)


def encode_recovery_key(key: bytes) -> str:
    """The recovery key as people write it down: base58, spaces every four characters."""
    raw = PREFIX + key
    raw += bytes([_parity(raw)])
    number, text = int.from_bytes(raw, "big"), ""
    while number:
        number, digit = divmod(number, 58)
        text = BASE58[digit] + text
    text = BASE58[0] * (len(raw) - len(raw.lstrip(b"\0"))) + text
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def decode_recovery_key(text: str) -> bytes:
    """The 32-byte key in a written recovery key; :class:`RecoveryKeyError` if it is mistyped."""
    digits = "".join(text.split())
    number = 0
    for char in digits:
        if char not in BASE58:
            raise RecoveryKeyError(f"the recovery key contains {char!r}, which is not a base58 character")
        number = number * 58 + BASE58.index(char)
    raw = number.to_bytes(35, "big") if number < 1 << 280 else b""
    if len(raw) != 35 or raw[:2] != PREFIX or _parity(raw[:-1]) != raw[-1]:
        raise RecoveryKeyError("the recovery key is mistyped (wrong length or checksum)")
    return raw[2:34]


def _parity(data: bytes) -> int:
    parity = 0
    for byte in data:
        parity ^= byte
    return parity


def _keys(key: bytes, name: str) -> tuple[bytes, bytes]:
    derived = HKDF(key, 64, b"\0" * 32, SHA256, context=name.encode())
    return derived[:32], derived[32:]


def encrypt_secret(key: bytes, name: str, secret: str, iv: bytes | None = None) -> dict:
    """``{"iv", "ciphertext", "mac"}`` for one secret stored under ``name``."""
    aes_key, mac_key = _keys(key, name)
    iv = bytearray(iv or os.urandom(16))
    iv[8] &= 0x7F  # bit 63 cleared, so the 64-bit counter of AES-CTR cannot wrap (spec)
    ciphertext = AES.new(aes_key, AES.MODE_CTR, nonce=b"", initial_value=bytes(iv)).encrypt(secret.encode())
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    return {"iv": b64(bytes(iv)), "ciphertext": b64(ciphertext), "mac": b64(mac)}


def decrypt_secret(key: bytes, name: str, encrypted: dict) -> str:
    """The secret stored under ``name``; :class:`RecoveryKeyError` if the MAC does not match."""
    aes_key, mac_key = _keys(key, name)
    ciphertext = unb64(encrypted["ciphertext"])
    mac = hmac.new(mac_key, ciphertext, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, unb64(encrypted["mac"])):
        raise RecoveryKeyError(f"the recovery key does not open the stored secret {name}")
    iv = unb64(encrypted["iv"])
    return AES.new(aes_key, AES.MODE_CTR, nonce=b"", initial_value=iv).decrypt(ciphertext).decode()


def key_description(key: bytes) -> dict:
    """The ``m.secret_storage.key.*`` content: lets a client check a recovery key before using it."""
    check = encrypt_secret(key, "", "\0" * 32)
    return {"algorithm": ALGORITHM, "iv": check["iv"], "mac": check["mac"]}


def key_matches(key: bytes, description: dict) -> bool:
    """True if ``key`` is the key that ``description`` describes."""
    if description.get("algorithm") != ALGORITHM or "iv" not in description:
        return False
    check = encrypt_secret(key, "", "\0" * 32, iv=unb64(description["iv"]))
    return check["mac"] == description.get("mac", "").rstrip("=")
