from __future__ import annotations

import os
import re

from ansible_collections.perry.fleet.plugins.module_utils import worker_process
from ansible_collections.perry.fleet.plugins.module_utils.engine import Result

ENTRYPOINT = os.path.join(os.path.dirname(__file__), "..", "..", "..", "..", "roles", "image", "files", "entrypoint.sh")


def test_the_image_supervisor_recognises_the_worker_with_the_same_pattern():
    with open(ENTRYPOINT) as fh:
        found = re.search(r"^WORKER_PATTERN='([^']*)'$", fh.read(), re.M)
    assert found and found.group(1) == worker_process.PATTERN


def test_pattern_matches_the_worker_and_nothing_that_names_it():
    rx = re.compile(worker_process.PATTERN)
    assert rx.search("/usr/local/bin/perry worker serve")
    assert rx.search("perry worker serve")
    assert rx.search("/usr/local/bin/bun /usr/local/lib/perry/current/cli.js worker serve")
    assert not rx.search("sh -c nohup perry worker serve >/tmp/perry-worker.log")
    assert not rx.search("pkill -f " + worker_process.PATTERN)
    assert not rx.search("sh -c " + worker_process.RESTART_SCRIPT)
    assert not rx.search("sh -c " + worker_process.START_SCRIPT)


class Recorder:
    def __init__(self, out=""):
        self.calls, self.out = [], out

    def run(self, args, timeout=None, check=True, **kw):
        self.calls.append((args, timeout))
        return Result(0, self.out, "", 0.0)


def test_every_step_runs_as_the_workspace_user_with_a_timeout():
    eng = Recorder()
    for step in (worker_process.stop, worker_process.find, worker_process.start, worker_process.restart):
        step(eng, "workspace-a", 2.5)
    assert all(a[:4] == ["exec", "-u", "workspace", "workspace-a"] and t == 2.5 for a, t in eng.calls)


def test_log_tail_is_cut_by_bytes_then_lines():
    eng = Recorder("x" * 100 + "\n" + "\n".join("line %d" % i for i in range(50)) + "\n")
    tail = worker_process.log_tail(eng, "workspace-a", 1.0, lines=3)
    assert tail == "line 47\nline 48\nline 49"
    assert eng.calls[0][0][4:9] == ["/bin/sh", "-c", worker_process.LOG_TAIL_SCRIPT, "sh", "/tmp/perry-worker.log"]
    assert eng.calls[0][0][9] == str(worker_process.LOG_TAIL_BYTES)
