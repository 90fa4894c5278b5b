"""Wall-clock milliseconds, the unit of every time on the wire."""
import time


def now_ms() -> int:
    return int(time.time() * 1000)


_last_stamp = 0


def server_ts() -> int:
    """A store's `server_ts`: the wall-clock milliseconds, or 1 ms past the last one this
    process gave when that is not earlier (the same millisecond, or a clock stepped back).

    One-to-one and group messages live in separate tables and are merged by
    `server_ts` for the pending store, so two stores of one process in the
    same millisecond must not tie: they come back in the order stored.
    """
    global _last_stamp
    now = now_ms()
    _last_stamp = now if now > _last_stamp else _last_stamp + 1
    return _last_stamp
