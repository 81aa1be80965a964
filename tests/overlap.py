"""Runs that overlap a lease holder for certain: ``runs`` calls of ``invoke`` released at once on
threads, while whichever takes the lease is held at its first ``queue.send`` until every other run
has returned. Used by the dispatch-lease tests on both stores (in memory and the local stack)."""

from __future__ import annotations

import threading
from typing import Any, Callable


def overlapping_runs(runs: int, invoke: Callable[[], Any], queue: Any, monkeypatch) -> list[Any]:
    """The results of the ``runs`` calls, in the order they returned."""
    start, results, lock, others_done, send = threading.Barrier(runs), [], threading.Lock(), threading.Event(), queue.send

    def send_after_the_others(advertiser_ids) -> None:
        assert others_done.wait(timeout=30), "the other runs did not return while the lease was held"
        send(advertiser_ids)

    monkeypatch.setattr(queue, "send", send_after_the_others)

    def run() -> None:
        start.wait()
        result = invoke()
        with lock:
            results.append(result)
            if len(results) == runs - 1:
                others_done.set()

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
