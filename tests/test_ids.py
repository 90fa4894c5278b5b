"""Hashids must match the Erlang server's ids exactly (PROTOCOL section 1)."""
from __future__ import annotations

import pytest

from imboy import ids

VECTORS = [
    (0, "2ja1kp"),
    (1, "kybqdp"),
    (108, "7b4v1b"),
    (12345, "bxyxr9"),
    (13238, "bymj5g"),
    (513244, "9d4nnk"),
]


@pytest.mark.parametrize("n, hashid", VECTORS)
def test_protocol_vectors_encode(n: int, hashid: str) -> None:
    assert ids.encode(n) == hashid


@pytest.mark.parametrize("n, hashid", VECTORS)
def test_protocol_vectors_decode(n: int, hashid: str) -> None:
    assert ids.decode(hashid) == n


def test_round_trip_small_ids() -> None:
    seen = set()
    for n in range(20001):
        h = ids.encode(n)
        assert len(h) >= 6
        assert ids.decode(h) == n, (n, h)
        seen.add(h)
    assert len(seen) == 20001  # no two ids share a hashid


@pytest.mark.parametrize("n", [2**31 - 1, 2**31, 2**32 + 7, 2**53, 2**63 - 1, 10**25])
def test_round_trip_big_ids(n: int) -> None:
    h = ids.encode(n)
    assert h.isalnum() and h == h.lower()
    assert ids.decode(h) == n


def test_hashids_use_only_the_configured_alphabet() -> None:
    allowed = set("123456789abcdefghijkmnpqrstuvwxyz")
    for n in (0, 5, 99, 100, 101, 4567, 98765, 2**40):
        assert set(ids.encode(n)) <= allowed


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "KYBQDP", "kybqd", "kybqdpp", " kybqdp", "kybqdp ", "kybq0p", "ky-qdp",
     "x" * 10_000, "kybqdp\n", "ｋybqdp", "2ja1kp2ja1kp"],
)
def test_decode_garbage_is_zero(garbage: str) -> None:
    assert ids.decode(garbage) == 0


@pytest.mark.parametrize("garbage", [None, 1, 1.0, b"kybqdp", ["kybqdp"], {"a": 1}, object()])
def test_decode_non_str_is_zero(garbage: object) -> None:
    assert ids.decode(garbage) == 0


def test_decode_of_a_changed_character_is_zero() -> None:
    alphabet = "123456789abcdefghijkmnpqrstuvwxyz"
    for n in (1, 108, 12345, 513244):
        h = ids.encode(n)
        for i in range(len(h)):
            for c in alphabet:
                if c == h[i]:
                    continue
                other = h[:i] + c + h[i + 1:]
                # Another id's hashid is fine; anything else must be 0.
                decoded = ids.decode(other)
                assert decoded == 0 or ids.encode(decoded) == other


@pytest.mark.parametrize("mutated", ["kybqdq", "jybqdp", "kyaqdp", "2ja1kq", "bxyxr8"])
def test_decode_of_a_mutated_known_id_is_zero(mutated: str) -> None:
    assert ids.decode(mutated) == 0


@pytest.mark.parametrize("bad", [-1, 1.5, "1", None, True])
def test_encode_rejects_non_ids(bad: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        ids.encode(bad)  # type: ignore[arg-type]
