"""Password hashes: scrypt for new ones, the original formats still verify.

New hashes are ``scrypt$<n>$<r>$<p>$<b64 salt>$<b64 hash>`` so parameters can
be raised later without losing old hashes. The two formats of the original
server (PROTOCOL section 5) verify and report ``needs_upgrade`` so the caller
can rehash on the next successful login. scrypt is deliberately slow and
would stall every connection of the worker if run on the gevent hub, so it
runs in gevent's native threadpool.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from typing import Callable, TypeVar

import gevent

__all__ = [
    "hash_password",
    "verify_password",
    "legacy_hmac_sha512_hash",
    "legacy_md5_hash",
]

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
# Bounds for parameters read back from storage, so a corrupted or hostile row
# cannot make one login allocate gigabytes or spin for minutes.
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16
_MAX_MEMORY = 256 * 1024 * 1024

_MD5_SALT = "Up2fQm6aBgE8Qzuar6oixJmqpffcL2yz"
_MD5_HEX = re.compile(r"[0-9a-fA-F]{32}\Z")
_HMAC_TAG = b":hmac_sha512:"

T = TypeVar("T")


def _offload(fn: Callable[..., T], *args) -> T:
    """Run CPU-heavy work in gevent's threadpool so the hub keeps serving.

    Works whether or not the process is monkey-patched: the pool's workers are
    real OS threads either way, and hashlib.scrypt releases the GIL.
    """
    return gevent.get_hub().threadpool.apply(fn, args)


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(
        password, salt=salt, n=n, r=r, p=p, dklen=dklen, maxmem=_MAX_MEMORY + 1024 * 1024
    )


def _b64decode(text: str) -> bytes:
    """Strict standard base64; padding may be missing."""
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str) -> str:
    """A new self-describing scrypt hash with a random salt."""
    salt = os.urandom(SALT_BYTES)
    digest = _offload(
        _scrypt, password.encode("utf-8"), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, HASH_BYTES
    )
    return "scrypt${}${}${}${}${}".format(
        SCRYPT_N,
        SCRYPT_R,
        SCRYPT_P,
        base64.b64encode(salt).decode("ascii"),
        base64.b64encode(digest).decode("ascii"),
    )


def verify_password(password: str, stored: str) -> tuple[bool, bool]:
    """(ok, needs_upgrade) for a password against a stored hash.

    needs_upgrade is True when the password matched a legacy hash or a scrypt
    hash with weaker parameters than today's. Unknown or damaged stored values
    simply do not match.
    """
    if not isinstance(password, str) or not isinstance(stored, str) or not stored:
        return False, False
    try:
        secret = password.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates
        return False, False
    if stored.startswith("scrypt$"):
        return _verify_scrypt(secret, stored)
    if _MD5_HEX.match(stored):
        ok = hmac.compare_digest(_md5(secret).encode("ascii"), stored.lower().encode("ascii"))
        return ok, ok
    ok = _verify_legacy_hmac(secret, stored)
    return ok, ok


def _verify_scrypt(secret: bytes, stored: str) -> tuple[bool, bool]:
    parts = stored.split("$")
    if len(parts) != 6:
        return False, False
    _, n_text, r_text, p_text, salt_text, hash_text = parts
    if not (n_text.isdigit() and r_text.isdigit() and p_text.isdigit()):
        return False, False
    n, r, p = int(n_text), int(r_text), int(p_text)
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        return False, False
    if 128 * n * r * p > _MAX_MEMORY:
        return False, False
    try:
        salt = _b64decode(salt_text)
        expected = _b64decode(hash_text)
    except (binascii.Error, ValueError):
        return False, False
    if not salt or not 16 <= len(expected) <= 64:
        return False, False
    digest = _offload(_scrypt, secret, salt, n, r, p, len(expected))
    ok = hmac.compare_digest(digest, expected)
    weaker = (
        n < SCRYPT_N or r < SCRYPT_R or p < SCRYPT_P
        or len(salt) < SALT_BYTES or len(expected) < HASH_BYTES
    )
    return ok, ok and weaker


def _verify_legacy_hmac(secret: bytes, stored: str) -> bool:
    """``base64("<salt>:hmac_sha512:" + base64(HMAC-SHA512(salt, password)))``."""
    if len(stored) > 1024:
        return False
    try:
        inner = _b64decode(stored.strip())
    except (binascii.Error, ValueError):
        return False
    salt, tag, mac_b64 = inner.partition(_HMAC_TAG)
    if not tag or not salt.isdigit() or not mac_b64:
        return False
    expected = base64.b64encode(hmac.new(salt, secret, hashlib.sha512).digest())
    return hmac.compare_digest(expected, mac_b64.rstrip(b"\r\n"))


def _md5(secret: bytes) -> str:
    return hashlib.md5(secret + _MD5_SALT.encode("ascii")).hexdigest()


def legacy_hmac_sha512_hash(password: str, salt: int) -> str:
    """A hash in the original server's HMAC-SHA512 format (for tests and imports)."""
    if type(salt) is not int or salt < 0:
        raise ValueError("the legacy salt is a non-negative integer")
    key = str(salt).encode("ascii")
    mac = base64.b64encode(hmac.new(key, password.encode("utf-8"), hashlib.sha512).digest())
    return base64.b64encode(key + _HMAC_TAG + mac).decode("ascii")


def legacy_md5_hash(password: str) -> str:
    """A hash in the original server's salted-MD5 format (for tests and imports)."""
    return _md5(password.encode("utf-8"))
