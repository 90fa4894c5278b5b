"""Password hashes (new and legacy) and the RSA login transport (PROTOCOL section 5)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
import time

import gevent
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding

from imboy.errors import BadRequest
from imboy.passwords import (
    hash_password,
    legacy_hmac_sha512_hash,
    legacy_md5_hash,
    verify_password,
)
from imboy.rsakey import RsaKey

# -- new hashes ------------------------------------------------------------


def test_new_hash_verifies_and_wrong_password_does_not() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse", stored) == (True, False)
    assert verify_password("correct horsE", stored) == (False, False)
    assert verify_password("", stored) == (False, False)


def test_unicode_passwords() -> None:
    stored = hash_password("pässwörd 密码 🔑")
    assert verify_password("pässwörd 密码 🔑", stored) == (True, False)
    assert verify_password("passwörd 密码 🔑", stored) == (False, False)


def test_hashes_differ_per_call() -> None:
    a, b = hash_password("same"), hash_password("same")
    assert a != b
    assert a.split("$")[4] != b.split("$")[4]  # the salts
    assert verify_password("same", a)[0] and verify_password("same", b)[0]


def test_tampered_new_hash_fails() -> None:
    stored = hash_password("pw")
    parts = stored.split("$")
    digest = bytearray(base64.b64decode(parts[5]))
    digest[0] ^= 1
    parts[5] = base64.b64encode(bytes(digest)).decode()
    assert verify_password("pw", "$".join(parts)) == (False, False)


def test_weaker_scrypt_parameters_verify_and_ask_for_an_upgrade() -> None:
    salt = os.urandom(16)
    digest = hashlib.scrypt(b"pw", salt=salt, n=2**10, r=8, p=1, dklen=32)
    stored = f"scrypt$1024$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    assert verify_password("pw", stored) == (True, True)
    assert verify_password("px", stored) == (False, False)


def test_hashing_does_not_block_other_greenlets() -> None:
    """scrypt runs off the hub: a ticking greenlet keeps ticking meanwhile."""
    ticks: list[float] = []

    def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            gevent.sleep(0.002)

    g = gevent.spawn(ticker)
    gevent.sleep(0)
    try:
        start = time.monotonic()
        stored = hash_password("pw")
        assert verify_password("pw", stored) == (True, False)
        elapsed = time.monotonic() - start
    finally:
        g.kill()
    during = [t for t in ticks if t > start]
    # Blocking the hub would allow at most one tick; expect many.
    assert elapsed > 0.02
    assert len(during) >= 5, (elapsed, len(during))


# -- legacy hashes -----------------------------------------------------------


def test_legacy_hmac_sha512_format_is_the_documented_one() -> None:
    mac = base64.b64encode(hmac.new(b"1234567", b"secret", hashlib.sha512).digest()).decode()
    expected = base64.b64encode(f"1234567:hmac_sha512:{mac}".encode()).decode()
    assert legacy_hmac_sha512_hash("secret", 1234567) == expected


@pytest.mark.parametrize("salt", [0, 7, 1234567, 2**62])
def test_legacy_hmac_sha512_verifies_and_needs_upgrade(salt: int) -> None:
    stored = legacy_hmac_sha512_hash("hunter2", salt)
    assert verify_password("hunter2", stored) == (True, True)
    assert verify_password("hunter3", stored) == (False, False)
    assert verify_password("", stored) == (False, False)


def test_legacy_hmac_with_the_salt_changed_fails() -> None:
    stored = legacy_hmac_sha512_hash("hunter2", 1000)
    inner = base64.b64decode(stored).replace(b"1000:", b"1001:", 1)
    assert verify_password("hunter2", base64.b64encode(inner).decode()) == (False, False)


def test_legacy_md5_format_is_the_documented_one() -> None:
    expected = hashlib.md5(b"hunter2Up2fQm6aBgE8Qzuar6oixJmqpffcL2yz").hexdigest()
    assert legacy_md5_hash("hunter2") == expected


def test_legacy_md5_verifies_and_needs_upgrade() -> None:
    stored = legacy_md5_hash("hunter2")
    assert len(stored) == 32 and stored == stored.lower()
    assert verify_password("hunter2", stored) == (True, True)
    assert verify_password("hunter3", stored) == (False, False)
    # A plain unsalted md5 of the password is not the legacy format.
    assert verify_password("hunter2", hashlib.md5(b"hunter2").hexdigest()) == (False, False)


@pytest.mark.parametrize(
    "stored",
    [
        "", "x", "scrypt$", "scrypt$16384$8$1$$", "scrypt$16384$8$1$!!!$!!!",
        "scrypt$3$8$1$AAAA$AAAAAAAAAAAAAAAAAAAAAA==",  # n not a power of two
        "scrypt$1073741824$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "scrypt$16384$99999$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "scrypt$-16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "d41d8cd98f00b204e9800998ecf8427",  # 31 hex
        "zz1d8cd98f00b204e9800998ecf8427e",
        base64.b64encode(b"abc:hmac_sha512:AAAA").decode(),
        base64.b64encode(b"123:hmac_sha256:AAAA").decode(),
        base64.b64encode(b"123:hmac_sha512:").decode(),
        "bm90IGEgaGFzaA==", "\u00e9\u00e9\u00e9", "\x00" * 10, "A" * 100_000,
    ],
)
def test_garbage_stored_values_do_not_match(stored: str) -> None:
    assert verify_password("hunter2", stored) == (False, False)
    assert verify_password("", stored) == (False, False)


@pytest.mark.parametrize("stored", [None, 123, b"abc"])
def test_non_str_stored_values_do_not_match(stored: object) -> None:
    assert verify_password("hunter2", stored) == (False, False)  # type: ignore[arg-type]


# -- RSA login transport -----------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> RsaKey:
    return RsaKey.load_or_create(str(tmp_path_factory.mktemp("rsa") / "key.pem"))


def encrypt(key: RsaKey, text: str | bytes) -> bytes:
    public = serialization.load_pem_public_key(key.public_pem.encode())
    data = text.encode() if isinstance(text, str) else text
    return public.encrypt(data, padding.PKCS1v15())


def test_key_is_generated_with_mode_0600_and_reloaded_identically(tmp_path) -> None:
    path = tmp_path / "nested" / "dir" / "rsa.pem"
    first = RsaKey.load_or_create(str(path))
    assert path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.public_pem.startswith("-----BEGIN PUBLIC KEY-----")
    again = RsaKey.load_or_create(str(path))
    assert again.public_pem == first.public_pem
    from_pem = RsaKey.from_pem(path.read_bytes())
    assert from_pem.public_pem == first.public_pem
    # What the reloaded key decrypts was encrypted for the first one.
    assert again.decrypt(base64.b64encode(encrypt(first, "s3cret")).decode()) == "s3cret"
    assert [p.name for p in path.parent.iterdir()] == ["rsa.pem"]  # no temp files left


def test_public_key_is_2048_bit_spki(rsa_key: RsaKey) -> None:
    public = serialization.load_pem_public_key(rsa_key.public_pem.encode())
    assert public.key_size == 2048
    assert rsa_key.public_pem.strip().endswith("-----END PUBLIC KEY-----")


@pytest.mark.parametrize("text", ["hunter2", "", "pässwörd 密码 🔑", "x" * 200])
def test_decrypt_round_trip(rsa_key: RsaKey, text: str) -> None:
    assert rsa_key.decrypt(base64.b64encode(encrypt(rsa_key, text)).decode()) == text


def test_decrypt_tolerates_urlsafe_and_missing_padding(rsa_key: RsaKey) -> None:
    for _ in range(5):  # several ciphertexts so "+" and "/" certainly occur
        ciphertext = encrypt(rsa_key, "hunter2")
        assert rsa_key.decrypt(base64.urlsafe_b64encode(ciphertext).decode().rstrip("=")) == "hunter2"
        assert rsa_key.decrypt(base64.b64encode(ciphertext).decode().rstrip("=")) == "hunter2"


def test_decrypt_with_another_key_fails(rsa_key: RsaKey) -> None:
    other = RsaKey.generate()
    b64 = base64.b64encode(encrypt(other, "hunter2")).decode()
    try:
        result = rsa_key.decrypt(b64)
    except BadRequest:
        return
    # Implicit rejection (newer OpenSSL) yields random bytes instead of an error.
    assert result != "hunter2"


def test_non_utf8_plaintext_is_bad_request(rsa_key: RsaKey) -> None:
    with pytest.raises(BadRequest) as err:
        rsa_key.decrypt(base64.b64encode(encrypt(rsa_key, b"\xff\xfe\x80")).decode())
    assert err.value.msg == "Invalid password encryption"


@pytest.mark.parametrize(
    "garbage",
    ["", "   ", "not base64 at all!", "%%%%", "QUJD", base64.b64encode(b"x" * 255).decode(),
     base64.b64encode(b"x" * 257).decode(), "é" * 344, "A" * 100_000, None, 42],
)
def test_bad_ciphertext_is_bad_request(rsa_key: RsaKey, garbage: object) -> None:
    with pytest.raises(BadRequest) as err:
        rsa_key.decrypt(garbage)  # type: ignore[arg-type]
    assert err.value.msg == "Invalid password encryption"


def test_right_length_garbage_never_escapes_as_another_error(rsa_key: RsaKey) -> None:
    for _ in range(20):
        try:
            rsa_key.decrypt(base64.b64encode(os.urandom(256)).decode())
        except BadRequest:
            pass
