"""`--profile`: py-spy samples the server during a phase; the top functions go in the JSON.

py-spy (`pip install py-spy`) writes collapsed stacks ("a;b;c 12" per line);
this module starts it on a pid for a fixed time and sums them into the
functions with the most samples on top of the stack (self) and anywhere in
it (inclusive).  The raw file stays beside the results for flame graphs
(`py-spy record --format flamegraph` draws one from a live process too).
"""
from __future__ import annotations

import collections
import re
import shutil
import subprocess
from typing import Any

_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def available() -> bool:
    return shutil.which("py-spy") is not None


class Profile:
    def __init__(self, pid: int, seconds: float, path: str, rate: int = 100) -> None:
        self.path = path
        self.proc = subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                      "--rate", str(rate), "--format", "raw", "--output", path],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def finish(self, timeout: float = 60.0, top: int = 25) -> dict[str, Any]:
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            _, err = self.proc.communicate()
        return summarise(self.path, top) | {"stderr": err.decode(errors="replace")[-500:] if err else ""}


def _name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    for marker in ("site-packages/", "/work/main/", "lib/python3"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{m.group('fn')} ({file})"


def summarise(path: str, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample counts per function, from collapsed stacks."""
    own: collections.Counter = collections.Counter()
    incl: collections.Counter = collections.Counter()
    total = 0
    try:
        with open(path, errors="replace") as fh:
            for line in fh:
                stack, _, count = line.rstrip("\n").rpartition(" ")
                if not count.isdigit():
                    continue
                n = int(count)
                frames = [_name(f) for f in stack.split(";") if f and not f.startswith("process ")
                          and not f.startswith("thread ")]
                if not frames:
                    continue
                total += n
                own[frames[-1]] += n
                for f in set(frames):
                    incl[f] += n
    except OSError:
        return {"samples": 0}

    def pct(c: collections.Counter) -> list[list[Any]]:
        return [[name, round(100.0 * v / max(total, 1), 1)] for name, v in c.most_common(top)]

    return {"samples": total, "self_pct": pct(own), "inclusive_pct": pct(incl), "raw": path}
