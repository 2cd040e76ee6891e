# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running one step for many workspaces at once, with a backstop that guarantees the caller gets an answer.

Every step already bounds its own I/O; the bound here only covers a step that forgot to (it is abandoned in a
daemon thread and reported as a TimeoutError). Exceptions are returned per item, never raised, so one workspace's
failure never hides the others' results.
"""

from __future__ import annotations

import threading
import time

MAX_PARALLEL = 32


def run_parallel(func, items: list, bound: float | None = None, limit: int = MAX_PARALLEL) -> list:
    """[func(item) or the exception it raised] in the order of ``items``; at most ``limit`` run at once."""
    results = [None] * len(items)
    done = [False] * len(items)
    gate = threading.Semaphore(max(1, limit))

    def one(i, item):
        with gate:
            try:
                results[i] = func(item)
            except Exception as exc:  # reported per item, never a crash of the whole task
                results[i] = exc
            done[i] = True

    threads = [threading.Thread(target=one, args=(i, it), daemon=True) for i, it in enumerate(items)]
    for t in threads:
        t.start()
    end = None if bound is None else time.monotonic() + bound
    for t in threads:
        t.join(None if end is None else max(end - time.monotonic(), 0))
    for i, finished in enumerate(done):
        if not finished:
            results[i] = TimeoutError("no answer within %.1f s" % bound)
    return results
