"""The recovery key and secret storage encryption, checked against the spec with independent code."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.config import MatrixConfig
from bot.matrix_recovery import (
    RecoveryKeyError,
    decode_recovery_key,
    decrypt_secret,
    encode_recovery_key,
    encrypt_secret,
    key_description,
    key_matches,
)
from bot.matrix_session import MatrixStartupError, check_config

KEY = bytes(range(32))


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def test_recovery_key_round_trips_and_catches_typos() -> None:
    written = encode_recovery_key(KEY)
    assert written.startswith("Es") and all(len(group) == 4 for group in written.split())
    assert decode_recovery_key(written) == KEY
    assert decode_recovery_key(written.replace(" ", "") + "\n") == KEY
    typo = written[:10] + ("2" if written[10] != "2" else "3") + written[11:]
    with pytest.raises(RecoveryKeyError, match="mistyped"):
        decode_recovery_key(typo)
    with pytest.raises(RecoveryKeyError, match="not a base58"):
        decode_recovery_key(written.replace(written[5], "0", 1))


def test_secret_is_aes_ctr_with_hkdf_keys_and_hmac_as_the_spec_says() -> None:
    name = "m.cross_signing.master"
    stored = encrypt_secret(KEY, name, "the secret")
    derived = HKDF(hashes.SHA256(), 64, salt=b"\0" * 32, info=name.encode()).derive(KEY)
    ciphertext = unb64(stored["ciphertext"])
    assert hmac.new(derived[32:], ciphertext, hashlib.sha256).digest() == unb64(stored["mac"])
    decryptor = Cipher(algorithms.AES(derived[:32]), modes.CTR(unb64(stored["iv"]))).decryptor()
    assert decryptor.update(ciphertext) + decryptor.finalize() == b"the secret"
    assert unb64(stored["iv"])[8] & 0x80 == 0
    assert decrypt_secret(KEY, name, stored) == "the secret"
    with pytest.raises(RecoveryKeyError):
        decrypt_secret(bytes(32), name, stored)


def test_key_description_tells_the_right_key() -> None:
    description = key_description(KEY)
    assert description["algorithm"] == "m.secret_storage.v1.aes-hmac-sha2"
    assert key_matches(KEY, description) and not key_matches(bytes(32), description)


def test_mistyped_recovery_key_stops_start_up_naming_the_variable() -> None:
    config = MatrixConfig(homeserver="https://matrix.example.org", user_id="@bron:example.org", password="x",
                          recovery_key="EsTm SsEV ezzm")
    with pytest.raises(MatrixStartupError, match="MATRIX_RECOVERY_KEY"):
        check_config(config, None)
