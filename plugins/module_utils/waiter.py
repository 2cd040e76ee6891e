# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting with a monotonic deadline: every wait in the collection goes through here."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class WaitResult:
    ok: bool
    result: object
    elapsed: float
    attempts: int


def wait_until(probe, timeout: float, interval: float = 0.1, max_interval: float = 1.0,
               backoff: float = 1.5, clock=time.monotonic, sleep=time.sleep) -> WaitResult:
    """Call ``probe(remaining_seconds)`` until it returns (True, result) or the deadline passes.

    The probe gets the time left so it can bound its own I/O; we never sleep past the deadline.
    """
    start = clock()
    deadline = start + timeout
    attempts = 0
    result = None
    delay = interval
    while True:
        attempts += 1
        ok, result = probe(max(deadline - clock(), 0.0))
        now = clock()
        if ok:
            return WaitResult(True, result, now - start, attempts)
        if now >= deadline:
            return WaitResult(False, result, now - start, attempts)
        sleep(min(delay, max(deadline - now, 0.0)))
        delay = min(delay * backoff, max_interval)
