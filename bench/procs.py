"""What the harness reads from /proc: memory and CPU of process trees, sockets.

Memory per connection is a difference of summed RSS (and PSS, which does not
count the pages forked workers share twice) of every process of a server,
so the same helpers serve a single `python wsgi.py`, a gunicorn master with
its workers, and the baseline's processes.
"""
from __future__ import annotations

import os
import time
from typing import Iterable

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (not `pid` itself)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree(pids: Iterable[int]) -> list[int]:
    """The given processes and all their descendants."""
    out: list[int] = []
    for pid in pids:
        out.append(pid)
        out.extend(children(pid))
    return out


def rss(pid: int) -> int:
    """Resident set size in bytes (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            return int(fh.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def pss(pid: int) -> int:
    """Proportional set size in bytes: shared pages divided among sharers."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(b")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def memory(pids: Iterable[int]) -> dict[str, int]:
    """Summed RSS and PSS of the processes."""
    pids = list(pids)
    return {"rss": sum(rss(p) for p in pids), "pss": sum(pss(p) for p in pids), "processes": len(pids)}


def cpu(pids: Iterable[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def sockstat() -> dict[str, int]:
    """TCP counters of /proc/net/sockstat; `mem_bytes` is buffer memory of all TCP sockets."""
    out: dict[str, int] = {}
    try:
        with open("/proc/net/sockstat") as fh:
            for line in fh:
                if line.startswith("TCP:"):
                    parts = line.split()[1:]
                    out = {parts[i]: int(parts[i + 1]) for i in range(0, len(parts) - 1, 2)}
    except OSError:
        pass
    if "mem" in out:
        out["mem_bytes"] = out["mem"] * PAGE
    return out


_SLABS = ("TCP", "request_sock_TCP", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "skbuff_head_cache")


def slabs() -> dict[str, int]:
    """Bytes held by the kernel slab caches a TCP connection uses (root only)."""
    out: dict[str, int] = {}
    try:
        with open("/proc/slabinfo") as fh:
            for line in fh:
                parts = line.split()
                if parts and parts[0] in _SLABS:
                    out[parts[0]] = int(parts[1]) * int(parts[3])
    except (OSError, ValueError, IndexError):
        pass
    return out


def meminfo() -> dict[str, int]:
    out = {}
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable", "Slab", "SUnreclaim"):
                    out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        time.sleep(0.05)
    return False


def listen_overflows() -> dict[str, int]:
    """TcpExt ListenOverflows/ListenDrops: SYNs dropped because an accept queue was full."""
    try:
        with open("/proc/net/netstat") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return {}
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return {k: int(table.get(k, 0)) for k in ("ListenOverflows", "ListenDrops")}
    return {}
