"""Tokens are standard HS256 JWTs the Flutter client can read (PROTOCOL section 2)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from imboy import ids
from imboy.errors import RefreshTokenNotAccepted, TokenExpired, TokenInvalid
from imboy.tokens import TokenService

SECRET = "test-secret-not-for-production"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hs256(secret: str, signing_input: str) -> str:
    return b64url(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())


def make_jwt(header: dict, payload: dict, secret: str | None = SECRET) -> str:
    """A JWT built by hand, independently of the module under test."""
    signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode())
    return signing_input + "." + (hs256(secret, signing_input) if secret else "")


def future_ms(seconds: float = 3600) -> int:
    return int((time.time() + seconds) * 1000)


@pytest.fixture
def svc() -> TokenService:
    return TokenService(SECRET)


def test_round_trip(svc: TokenService) -> None:
    assert svc.verify_access(svc.access_token(108)) == 108
    assert svc.verify_refresh(svc.refresh_token(108)) == 108
    assert svc.verify_access(svc.access_token(2**40)) == 2**40


def test_bytes_secret_and_bytes_token(svc: TokenService) -> None:
    other = TokenService(SECRET.encode())
    token = other.access_token(5)
    assert svc.verify_access(token.encode()) == 5


def test_token_is_a_standard_jwt(svc: TokenService) -> None:
    before = int(time.time() * 1000)
    token = svc.access_token(12345)
    after = int(time.time() * 1000)
    header_b64, payload_b64, sig_b64 = token.split(".")
    assert "=" not in token
    assert json.loads(unb64url(header_b64)) == {"alg": "HS256", "typ": "JWT"}
    payload = json.loads(unb64url(payload_b64))
    assert payload["sub"] == "tk"
    assert payload["uid"] == "bxyxr9"
    assert isinstance(payload["exp"], int)
    assert before + 7200 * 1000 <= payload["exp"] <= after + 7200 * 1000
    # The signature is plain HMAC-SHA256 over "header.payload" with the secret.
    assert sig_b64 == hs256(SECRET, header_b64 + "." + payload_b64)


def test_refresh_token_claims(svc: TokenService) -> None:
    token = svc.refresh_token(1)
    payload = json.loads(unb64url(token.split(".")[1]))
    assert payload["sub"] == "rtk"
    assert payload["uid"] == "kybqdp"
    assert payload["exp"] - int(time.time() * 1000) > 863000 * 1000


def test_ttls_are_configurable() -> None:
    svc = TokenService(SECRET, access_ttl=60, refresh_ttl=120.5)
    now = int(time.time() * 1000)
    exp_tk = json.loads(unb64url(svc.access_token(1).split(".")[1]))["exp"]
    exp_rtk = json.loads(unb64url(svc.refresh_token(1).split(".")[1]))["exp"]
    assert abs(exp_tk - (now + 60_000)) < 2000
    assert abs(exp_rtk - (now + 120_500)) < 2000


def test_hand_made_token_is_accepted(svc: TokenService) -> None:
    token = make_jwt({"alg": "HS256", "typ": "JWT"}, {"exp": future_ms(), "sub": "tk", "uid": ids.encode(77)})
    assert svc.verify_access(token) == 77


def test_bearer_prefix_is_accepted(svc: TokenService) -> None:
    token = svc.access_token(9)
    assert svc.verify_access("Bearer " + token) == 9
    assert svc.verify_access(b"Bearer " + token.encode()) == 9


def test_expired_access_token() -> None:
    svc = TokenService(SECRET, access_ttl=0.05, refresh_ttl=0.05)
    token, refresh = svc.access_token(3), svc.refresh_token(3)
    assert svc.verify_access(token) == 3
    time.sleep(0.1)
    with pytest.raises(TokenExpired) as err:
        svc.verify_access(token)
    assert err.value.code == 705
    with pytest.raises(TokenExpired):
        svc.verify_refresh(refresh)


def test_exp_equal_to_now_is_expired(svc: TokenService) -> None:
    token = svc.encode({"exp": int(time.time() * 1000), "sub": "tk", "uid": ids.encode(3)})
    with pytest.raises(TokenExpired):
        svc.verify_access(token)


def test_expiry_is_in_milliseconds(svc: TokenService) -> None:
    # An exp in seconds an hour ahead is, read as milliseconds, long past.
    token = svc.encode({"exp": int(time.time()) + 3600, "sub": "tk", "uid": ids.encode(3)})
    with pytest.raises(TokenExpired):
        svc.verify_access(token)


def test_tampered_payload(svc: TokenService) -> None:
    header, payload, sig = svc.access_token(1).split(".")
    claims = json.loads(unb64url(payload))
    claims["uid"] = ids.encode(2)
    forged = header + "." + b64url(json.dumps(claims).encode()) + "." + sig
    with pytest.raises(TokenInvalid) as err:
        svc.verify_access(forged)
    assert err.value.code == 706


def test_wrong_key(svc: TokenService) -> None:
    token = TokenService("another-secret").access_token(1)
    with pytest.raises(TokenInvalid):
        svc.verify_access(token)


def test_tampered_signature(svc: TokenService) -> None:
    token = svc.access_token(1)
    i = len(token) - 10
    flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
    with pytest.raises(TokenInvalid):
        svc.verify_access(flipped)


def test_only_the_canonical_signature_spelling_is_accepted(svc: TokenService) -> None:
    # The last base64url character of a 32-byte MAC has two unused bits; a
    # token must have one string form.
    token = svc.access_token(1)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(token[-1])
    for spare in (1, 2, 3):
        variant = token[:-1] + alphabet[index + spare]
        with pytest.raises(TokenInvalid):
            svc.verify_access(variant)


def test_alg_none_unsigned(svc: TokenService) -> None:
    claims = {"exp": future_ms(), "sub": "tk", "uid": ids.encode(1)}
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"alg": "HS256", "typ": "JWT"}):
        with pytest.raises(TokenInvalid):
            svc.verify_access(make_jwt(header, claims, secret=None))


@pytest.mark.parametrize("alg", ["none", "HS512", "hs256", "RS256", None])
def test_wrong_alg_even_when_signed(svc: TokenService, alg: object) -> None:
    claims = {"exp": future_ms(), "sub": "tk", "uid": ids.encode(1)}
    token = make_jwt({"alg": alg, "typ": "JWT"}, claims)
    with pytest.raises(TokenInvalid):
        svc.verify_access(token)


def test_truncated(svc: TokenService) -> None:
    token = svc.access_token(1)
    for cut in (1, 5, len(token) // 2, len(token) - 1):
        with pytest.raises(TokenInvalid):
            svc.verify_access(token[:cut])
    with pytest.raises(TokenInvalid):
        svc.verify_access(token.rsplit(".", 1)[0])


@pytest.mark.parametrize(
    "garbage",
    [None, "", " ", "Bearer ", "Bearer", "a.b.c", "...", "a..b", "not a token",
     b"\xff\xfe\x00\x01", b"", bytearray(b"\x80.\x81.\x82"), "é.é.é", "tøken.with.ünicode",
     "\u2603" * 100, "x" * 1_000_000, "a." * 5000, 12345, 1.5, ["a"], {"a": 1}],
)
def test_garbage_is_invalid(svc: TokenService, garbage: object) -> None:
    with pytest.raises(TokenInvalid):
        svc.verify_access(garbage)
    with pytest.raises(TokenInvalid):
        svc.verify_refresh(garbage)


def test_non_ascii_inside_a_valid_token(svc: TokenService) -> None:
    token = svc.access_token(1)
    with pytest.raises(TokenInvalid):
        svc.verify_access(token[:10] + "é" + token[11:])


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": "later", "sub": "tk", "uid": "kybqdp"},
        {"exp": 1.5e20, "sub": "tk", "uid": "kybqdp"},
        {"exp": True, "sub": "tk", "uid": "kybqdp"},
        {"sub": "tk", "uid": "kybqdp"},
        {"exp": "FUTURE", "sub": "tk", "uid": "KYBQDP"},
        {"exp": "FUTURE", "sub": "tk", "uid": "kybqd"},
        {"exp": "FUTURE", "sub": "tk", "uid": 1},
        {"exp": "FUTURE", "sub": "tk", "uid": "2ja1kp"},  # uid 0 is nobody
        {"exp": "FUTURE", "sub": "tk"},
        {"exp": "FUTURE", "sub": "xx", "uid": "kybqdp"},
        {"exp": "FUTURE", "uid": "kybqdp"},
    ],
)
def test_bad_claims_are_invalid(svc: TokenService, claims: dict) -> None:
    claims = {k: (future_ms() if v == "FUTURE" else v) for k, v in claims.items()}
    with pytest.raises(TokenInvalid):
        svc.verify_access(svc.encode(claims))


def test_payload_that_is_not_an_object(svc: TokenService) -> None:
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    for payload in (b"[1,2]", b"123", b"not json", b'"str"'):
        signing_input = header + "." + b64url(payload)
        with pytest.raises(TokenInvalid):
            svc.verify_access(signing_input + "." + hs256(SECRET, signing_input))


def test_refresh_token_as_access_token(svc: TokenService) -> None:
    with pytest.raises(RefreshTokenNotAccepted) as err:
        svc.verify_access(svc.refresh_token(1))
    assert err.value.code == 1
    assert err.value.msg == "Does not support refreshtoken"


def test_access_token_as_refresh_token(svc: TokenService) -> None:
    with pytest.raises(TokenInvalid) as err:
        svc.verify_refresh(svc.access_token(1))
    assert err.value.code == 706


def test_issuing_for_a_non_id_fails(svc: TokenService) -> None:
    for bad in (0, -1, "1", None):
        with pytest.raises((TypeError, ValueError)):
            svc.access_token(bad)  # type: ignore[arg-type]
