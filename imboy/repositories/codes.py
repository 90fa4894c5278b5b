"""The `verification_code` table: one live code per address."""
from __future__ import annotations

from typing import Any

from ..db import Tx


def get(tx: Tx, key: str) -> dict[str, Any] | None:
    return tx.one("SELECT `id`, `code`, `validity_at`, `created_at`, `attempts`"
                  " FROM `verification_code` WHERE `id` = %s", (key,))


def put(tx: Tx, key: str, code: str, validity_at: int, now: int) -> None:
    tx.execute("DELETE FROM `verification_code` WHERE `id` = %s", (key,))
    tx.execute("INSERT INTO `verification_code` (`id`, `code`, `validity_at`, `created_at`, `attempts`)"
               " VALUES (%s, %s, %s, %s, 0)", (key, code, validity_at, now))


def count_attempt(tx: Tx, key: str) -> None:
    tx.execute("UPDATE `verification_code` SET `attempts` = `attempts` + 1 WHERE `id` = %s", (key,))


def delete(tx: Tx, key: str) -> None:
    tx.execute("DELETE FROM `verification_code` WHERE `id` = %s", (key,))
