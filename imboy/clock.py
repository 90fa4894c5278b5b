"""Wall-clock milliseconds, the unit of every time on the wire."""
import time


def now_ms() -> int:
    return int(time.time() * 1000)
