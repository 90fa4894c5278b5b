"""Hashids for user, group and category ids, as the Erlang hashids 1.0.5 makes them.

Existing clients and databases hold ids made by the original Erlang server, so
this must reproduce that library bit for bit (PROTOCOL section 1). It differs
from the PyPI ``hashids`` package in one place: it divides the alphabet length
by the separator count with integer division, which leaves the separators
unextended. Only single non-negative integers are encoded, so everything that
depends on the salt and the "lottery" character is computed once at import;
``encode`` is then a base-23 conversion plus a few slices.
"""
from __future__ import annotations

import math
from functools import lru_cache

__all__ = ["encode", "decode", "SALT", "MIN_LENGTH"]

SALT = "cVQtrKNu"
MIN_LENGTH = 6
_SOURCE_ALPHABET = "123456789abcdefghijkmnpqrstuvwxyz"
_DEFAULT_SEPS = "cfhistuCFHISTU"
_SEP_DIV = 3.5
_GUARD_DIV = 12


def _shuffle(alphabet: str, salt: str) -> str:
    """The hashids consistent shuffle (a salt-keyed Fisher-Yates)."""
    if not salt:
        return alphabet
    chars = list(alphabet)
    v = p = 0
    for i in range(len(chars) - 1, 0, -1):
        v %= len(salt)
        n = ord(salt[v])
        p += n
        j = (n + v + p) % i
        chars[i], chars[j] = chars[j], chars[i]
        v += 1
    return "".join(chars)


def _setup(source: str, salt: str) -> tuple[str, str, str]:
    """Return (alphabet, separators, guards) the way hashids-erlang sets them up."""
    unique = "".join(dict.fromkeys(source))
    seps = "".join(c for c in _DEFAULT_SEPS if c in unique)
    alphabet = "".join(c for c in unique if c not in seps)
    seps = _shuffle(seps, salt)
    # The Erlang library compares `length(Alphabet) div length(Seps)` (integer
    # division) with 3.5; keep that, it is what makes our ids theirs.
    if not alphabet or len(alphabet) // len(seps) > _SEP_DIV:
        wanted = max(math.ceil(len(alphabet) / _SEP_DIV), 2)
        if wanted > len(seps):
            diff = wanted - len(seps)
            seps, alphabet = seps + alphabet[:diff], alphabet[diff:]
        else:
            seps = seps[:wanted]
    alphabet = _shuffle(alphabet, salt)
    guard_count = math.ceil(len(alphabet) / _GUARD_DIV)
    if len(alphabet) < 3:
        guards, seps = seps[:guard_count], seps[guard_count:]
    else:
        guards, alphabet = alphabet[:guard_count], alphabet[guard_count:]
    return alphabet, seps, guards


ALPHABET, SEPARATORS, GUARDS = _setup(_SOURCE_ALPHABET, SALT)
_BASE = len(ALPHABET)
_HALF = _BASE // 2


def _lottery_tables(lottery: str) -> tuple[str, dict[str, int], str, str]:
    """Per lottery character: the digit alphabet, its index and the two paddings.

    For a single number the first (and only) shuffle is keyed by
    ``lottery + salt + alphabet``, so it depends on the lottery character alone.
    """
    digits = _shuffle(ALPHABET, (lottery + SALT + ALPHABET)[:_BASE])
    padding = _shuffle(digits, digits)
    return digits, {c: i for i, c in enumerate(digits)}, padding[_HALF:], padding[:_HALF]


_TABLES = {c: _lottery_tables(c) for c in ALPHABET}
_VALID_CHARS = frozenset(ALPHABET + SEPARATORS + GUARDS)
_GUARD_TO_SPACE = str.maketrans({c: " " for c in GUARDS})
# A hashid of a 64-bit id is far shorter; anything longer is garbage.
_MAX_DECODE_LENGTH = 64


# Ids met again and again (the senders and groups of busy chats) are encoded
# once: every frame names its sender and target.  Small on purpose: a full
# cache costs about 350 bytes an id, and a process holds thousands of idle
# connections whose handshakes would fill a larger one.
_CACHED = 1024


@lru_cache(maxsize=_CACHED, typed=True)  # typed: True is not 1 (encode refuses bools)
def encode(n: int) -> str:
    """The hashid of a non-negative integer (user, group or category id)."""
    if type(n) is not int:
        raise TypeError(f"hashids encode an int, not {type(n).__name__}")
    if n < 0:
        raise ValueError("hashids encode non-negative integers only")
    hash_int = n % 100
    lottery = ALPHABET[hash_int % _BASE]
    digits, _, pad_left, pad_right = _TABLES[lottery]
    if n == 0:
        body = digits[0]
    else:
        out = []
        while n:
            n, r = divmod(n, _BASE)
            out.append(digits[r])
        body = "".join(reversed(out))
    encoded = lottery + body
    if len(encoded) < MIN_LENGTH:
        encoded = GUARDS[(hash_int + ord(encoded[0])) % len(GUARDS)] + encoded
        if len(encoded) < MIN_LENGTH:
            encoded += GUARDS[(hash_int + ord(encoded[2])) % len(GUARDS)]
            if len(encoded) < MIN_LENGTH:
                # The Erlang library pads once (not in a loop); with a
                # 23-character alphabet once is always enough for length 6.
                encoded = pad_left + encoded + pad_right
                excess = len(encoded) - MIN_LENGTH
                if excess > 0:
                    start = excess // 2
                    encoded = encoded[start:start + MIN_LENGTH]
    return encoded


def decode(s: object) -> int:
    """The integer a hashid stands for, or 0 for anything that is not one.

    0 matches no row, so callers can look it up without a separate check.
    Hashids of several numbers are not ids here and also give 0.
    """
    if type(s) is not str or not s or len(s) > _MAX_DECODE_LENGTH:
        return 0
    return _decode(s)


@lru_cache(maxsize=_CACHED)
def _decode(s: str) -> int:
    if not _VALID_CHARS.issuperset(s):
        return 0
    # Erlang's string:tokens drops empty pieces, unlike str.split.
    parts = [p for p in s.translate(_GUARD_TO_SPACE).split(" ") if p]
    if not parts:
        return 0
    breakdown = parts[1] if len(parts) in (2, 3) else parts[0]
    lottery, rest = breakdown[0], breakdown[1:]
    tables = _TABLES.get(lottery)
    if tables is None or not rest:
        return 0
    index = tables[1]
    n = 0
    for c in rest:
        i = index.get(c)
        if i is None:  # a separator: more than one number, or garbage
            return 0
        n = n * _BASE + i
    return n if encode(n) == s else 0

