"""Access and refresh tokens: standard HS256 JWTs (PROTOCOL section 2).

The Flutter client reads ``exp`` (milliseconds) and ``uid`` (a hashid) from the
payload, so the format is fixed. Signing goes through itsdangerous, which,
with no key derivation and "." as separator, produces exactly the HS256
signature of ``header.payload``. Verification checks the signature before it
looks at a single claim, and every failure becomes TokenInvalid (706),
TokenExpired (705) or RefreshTokenNotAccepted, never another exception.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from typing import Any

import ujson
from itsdangerous import BadSignature, Signer

from imboy import ids
from imboy.errors import RefreshTokenNotAccepted, TokenExpired, TokenInvalid

__all__ = ["TokenService", "ACCESS", "REFRESH"]

ACCESS = "tk"
REFRESH = "rtk"

_HEADER = {"alg": "HS256", "typ": "JWT"}
# Real tokens are ~150 characters; refuse megabyte "tokens" before hashing them.
_MAX_TOKEN_LENGTH = 4096
_B64URL = re.compile(r"[A-Za-z0-9_-]+\Z")
# An HS256 signature is 43 base64url characters whose last one carries two
# unused bits; only the canonical spelling is accepted, so a token has exactly
# one string form (it may be used as a key elsewhere).
_SIG_LENGTH = 43
_SIG_LAST_CHARS = frozenset("AEIMQUYcgkosw048")


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_json(segment: str) -> Any:
    """Decode one base64url JSON segment; any defect is TokenInvalid."""
    if not _B64URL.match(segment) or len(segment) % 4 == 1:
        raise TokenInvalid()
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return ujson.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError, TypeError, OverflowError, RecursionError):
        raise TokenInvalid() from None


def _now_ms() -> int:
    return int(time.time() * 1000)


class TokenService:
    """Issues and checks tokens with one secret and two lifetimes (seconds)."""

    def __init__(self, secret: str | bytes, access_ttl: float = 7200, refresh_ttl: float = 864000):
        if not secret:
            raise ValueError("a token secret is required")
        self._signer = Signer(
            secret, key_derivation="none", digest_method=hashlib.sha256, sep="."
        )
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._header_b64 = _b64url_encode(ujson.dumps(_HEADER).encode("ascii"))

    # -- issuing ---------------------------------------------------------

    def encode(self, claims: dict) -> str:
        """Sign arbitrary claims under the standard HS256 header."""
        payload = _b64url_encode(ujson.dumps(claims, ensure_ascii=True).encode("ascii"))
        return self._signer.sign(f"{self._header_b64}.{payload}").decode("ascii")

    def _issue(self, uid: int, sub: str, ttl: float) -> str:
        if type(uid) is not int or uid <= 0:
            raise ValueError(f"user ids are positive integers, not {uid!r}")
        exp = _now_ms() + int(ttl * 1000)
        return self.encode({"exp": exp, "sub": sub, "uid": ids.encode(uid)})

    def access_token(self, uid: int) -> str:
        return self._issue(uid, ACCESS, self.access_ttl)

    def refresh_token(self, uid: int) -> str:
        return self._issue(uid, REFRESH, self.refresh_ttl)

    # -- checking --------------------------------------------------------

    def verify_access(self, token: object) -> int:
        """The user id an access token stands for.

        A refresh token here is refused with its own error (code 1, "Does not
        support refreshtoken") as the original server did.
        """
        claims = self._claims(token)
        sub = claims.get("sub")
        if sub == REFRESH:
            raise RefreshTokenNotAccepted()
        if sub != ACCESS:
            raise TokenInvalid()
        return self._check(claims)

    def verify_refresh(self, token: object) -> int:
        """The user id a refresh token stands for; an access token is 706."""
        claims = self._claims(token)
        if claims.get("sub") != REFRESH:
            raise TokenInvalid()
        return self._check(claims)

    @staticmethod
    def _check(claims: dict) -> int:
        """Expiry and user id, after the caller has settled the token type."""
        uid = ids.decode(claims.get("uid"))
        if uid <= 0:
            raise TokenInvalid()
        exp = claims.get("exp")
        if type(exp) is not int:
            raise TokenInvalid()
        if exp <= _now_ms():
            raise TokenExpired()
        return uid

    def _claims(self, token: object) -> dict:
        """Signature-checked payload of a compact JWS, or TokenInvalid."""
        if isinstance(token, (bytes, bytearray)):
            try:
                token = bytes(token).decode("ascii")
            except UnicodeDecodeError:
                raise TokenInvalid() from None
        if not isinstance(token, str) or not token or len(token) > _MAX_TOKEN_LENGTH:
            raise TokenInvalid()
        token = token.strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token.isascii() or token.count(".") != 2:
            raise TokenInvalid()
        sig = token[token.rindex(".") + 1:]
        if len(sig) != _SIG_LENGTH or sig[-1] not in _SIG_LAST_CHARS:
            raise TokenInvalid()
        try:
            signed = self._signer.unsign(token)
        except BadSignature:
            raise TokenInvalid() from None
        header_b64, payload_b64 = signed.decode("ascii").split(".")
        header = _b64url_json(header_b64)
        if not isinstance(header, dict) or header.get("alg") != "HS256":
            raise TokenInvalid()
        claims = _b64url_json(payload_b64)
        if not isinstance(claims, dict):
            raise TokenInvalid()
        return claims
