"""Batches: requests of many greenlets handled together, each caller getting its own outcome."""
from __future__ import annotations

import gevent
import pytest

from imboy.batching import Batches
from imboy.errors import BadRequest


def test_each_caller_gets_its_own_outcome_in_order():
    seen: list[list[int]] = []

    def handle(items: list[int]) -> list[object]:
        seen.append(items)
        return [BadRequest(f"odd {i}") if i % 2 else i * 10 for i in items]

    batches: Batches[int, int] = Batches(handle)
    jobs = [gevent.spawn(batches.run, i) for i in range(20)]
    gevent.joinall(jobs, timeout=5)
    assert [job.value for job in jobs if job.successful()] == [i * 10 for i in range(0, 20, 2)]
    assert [str(job.exception.msg) for job in jobs if not job.successful()] == [f"odd {i}" for i in range(1, 20, 2)]
    # Queued together, handled together, in order.
    assert seen == [list(range(20))]


def test_a_failing_batch_fails_every_caller_in_it_and_the_next_batch_runs():
    calls = []

    def handle(items: list[str]) -> list[str]:
        calls.append(items)
        if "boom" in items:
            raise ConnectionError("backend down")
        return [i.upper() for i in items]

    batches: Batches[str, str] = Batches(handle)
    together = [gevent.spawn(batches.run, x) for x in ("a", "boom", "b")]
    gevent.joinall(together, timeout=5)
    assert [type(j.exception) for j in together] == [ConnectionError] * 3
    assert batches.run("c") == "C"
    assert calls == [["a", "boom", "b"], ["c"]]


def test_linger_gathers_a_steady_stream_into_fewer_batches():
    sizes: list[int] = []

    def handle(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    def stream(batches: Batches[int, int]) -> list[int]:
        sizes.clear()
        jobs = []
        for i in range(60):
            jobs.append(gevent.spawn(batches.run, i))
            gevent.sleep(0.001)
        gevent.joinall(jobs, timeout=10)
        assert [j.value for j in jobs] == list(range(60))
        return list(sizes)

    eager = stream(Batches(handle))
    lingering = stream(Batches(handle, linger=0.02))
    assert len(eager) > 30  # each request alone, or nearly
    assert len(lingering) <= len(eager) / 3
    assert lingering[0] == 1  # an idle lane does not wait for company


@pytest.mark.parametrize("max_items", [1, 4])
def test_batches_never_exceed_max_items(max_items):
    sizes: list[int] = []

    def handle(items: list[int]) -> list[int]:
        sizes.append(len(items))
        return items

    batches: Batches[int, int] = Batches(handle, max_items=max_items)
    jobs = [gevent.spawn(batches.run, i) for i in range(10)]
    gevent.joinall(jobs, timeout=5)
    assert [j.value for j in jobs] == list(range(10))
    assert max(sizes) <= max_items
