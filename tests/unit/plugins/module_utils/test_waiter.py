from __future__ import annotations

from ansible_collections.perry.fleet.plugins.module_utils.waiter import wait_until


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert seconds >= 0
        self.now += seconds


def test_returns_first_success_with_attempts():
    clock = FakeClock()
    answers = iter([(False, "no"), (False, "no"), (True, "yes")])
    res = wait_until(lambda remaining: next(answers), 10, interval=0.1, clock=clock, sleep=clock.sleep)
    assert res.ok and res.result == "yes" and res.attempts == 3


def test_never_sleeps_past_deadline_and_backs_off():
    clock = FakeClock()
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        clock.sleep(s)

    res = wait_until(lambda remaining: (False, remaining), 2.0, interval=0.2, max_interval=0.5, clock=clock, sleep=sleep)
    assert not res.ok
    assert clock.now == 2.0
    assert sleeps[0] == 0.2 and max(sleeps) <= 0.5
    assert res.result == 0.0  # the last probe was told no time was left


def test_probe_gets_remaining_time():
    clock = FakeClock()
    seen = []
    wait_until(lambda r: (seen.append(r) or len(seen) == 2, None), 5, interval=1, clock=clock, sleep=clock.sleep)
    assert seen == [5.0, 4.0]
