"""The `verification_code` table: one live code per address.

Every check-and-change here is one statement, so two requests racing on one
address (two sign-ups, a burst of guesses) cannot both win: the database's
row lock decides.
"""
from __future__ import annotations

from typing import Any

from ..db import Tx


def get(tx: Tx, key: str) -> dict[str, Any] | None:
    return tx.one("SELECT `id`, `code`, `validity_at`, `created_at`, `attempts`"
                  " FROM `verification_code` WHERE `id` = %s", (key,))


def create(tx: Tx, key: str, code: str, validity_at: int, now: int) -> bool:
    """Store a code for an address that has none; False if it has one."""
    return tx.execute(f"{tx.insert_ignore} INTO `verification_code`"
                      " (`id`, `code`, `validity_at`, `created_at`, `attempts`)"
                      " VALUES (%s, %s, %s, %s, 0)", (key, code, validity_at, now)) == 1


def replace_if_older(tx: Tx, key: str, code: str, validity_at: int, now: int,
                     resend_before: int) -> bool:
    """Replace the address's code if it was sent before `resend_before` or has
    expired; False while the resend interval runs (nothing changes then)."""
    return tx.execute("UPDATE `verification_code` SET `code` = %s, `validity_at` = %s,"
                      " `created_at` = %s, `attempts` = 0"
                      " WHERE `id` = %s AND (`created_at` <= %s OR `validity_at` <= %s)",
                      (code, validity_at, now, key, resend_before, now)) == 1


def claim_attempt(tx: Tx, key: str, now: int, max_attempts: int) -> bool:
    """Count one attempt at a live code; False if it is expired, used up or absent."""
    return tx.execute("UPDATE `verification_code` SET `attempts` = `attempts` + 1"
                      " WHERE `id` = %s AND `validity_at` > %s AND `attempts` < %s",
                      (key, now, max_attempts)) == 1


def consume(tx: Tx, key: str, code: str) -> bool:
    """Delete the code if it is still this one; False if someone used it first."""
    return tx.execute("DELETE FROM `verification_code` WHERE `id` = %s AND `code` = %s",
                      (key, code)) == 1


def delete(tx: Tx, key: str, code: str | None = None) -> None:
    if code is None:
        tx.execute("DELETE FROM `verification_code` WHERE `id` = %s", (key,))
    else:
        consume(tx, key, code)
