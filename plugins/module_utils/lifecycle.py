# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine operations on one workspace's container and volumes: create, start (until it accepts exec),
stop, unpause, remove, purge. Each is one bounded engine call (or a bounded wait) and keeps the plan's idea of
the container's state in step, so later steps never inspect again."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine, container_state, exec_argv
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, WorkspaceError
from ansible_collections.perry.fleet.plugins.module_utils.waiter import wait_until
from ansible_collections.perry.fleet.plugins.module_utils.workspace_spec import WorkspaceSpec, kv_file_text


class Lifecycle:
    def __init__(self, engine: Engine, timeout: float, start_timeout: float, stop_timeout: int):
        self.engine = engine
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout

    def _set_state(self, plan, running: bool, paused: bool = False) -> None:
        plan.existing["State"] = {"Running": running, "Paused": paused,
                                  "Status": "paused" if paused else ("running" if running else "exited")}

    def create(self, plan) -> None:
        """(Re)create the container from plan.spec; volumes first, the old container (if any) last moment."""
        if plan.existing is not None:
            self.remove(plan)
        self.ensure_volumes(plan)
        plan.actions.append("recreate" if plan.existing is not None else "create")
        with private_files(plan.spec) as (env_file, label_file):
            res = self.engine.run(plan.spec.create_args(env_file, label_file), timeout=self.timeout)
        plan.existing = {"Id": res.stdout.strip(), "Name": plan.container, "Config": {"Labels": plan.spec.labels()}}
        self._set_state(plan, running=False)

    def ensure_volumes(self, plan) -> None:
        have = set(self.engine.run(["volume", "ls", "-q"], timeout=self.timeout).stdout.split())
        for vol in plan.spec.volumes.values():
            if vol not in have:
                self.engine.run(["volume", "create", "--label", "%s=%s" % (layout.LABEL_NAME, plan.name),
                                 "--label", "%s=true" % layout.LABEL_MANAGED, vol], timeout=self.timeout)
                plan.actions.append("create volume %s" % vol)

    def remove(self, plan) -> None:
        if container_state(plan.existing) in ("running", "paused"):
            self.stop(plan)
        self.engine.run(["rm", "-f", plan.container], timeout=self.timeout)

    def stop(self, plan) -> None:
        # A paused container's processes cannot handle the stop signal: unpause first (both engines).
        if container_state(plan.existing) == "paused":
            self.unpause(plan)
        self.engine.run(["stop", "--time", str(self.stop_timeout), plan.container],
                        timeout=self.timeout + self.stop_timeout)
        self._set_state(plan, running=False)

    def unpause(self, plan) -> None:
        self.engine.run(["unpause", plan.container], timeout=self.timeout)
        self._set_state(plan, running=True)

    def start(self, plan) -> None:
        self.engine.run(["start", plan.container], timeout=self.timeout)
        self._set_state(plan, running=True)
        self.wait_ready(plan.container)

    def wait_ready(self, container: str) -> None:
        """Perry's waitForContainerReady (exec true), bounded by start_timeout."""
        probe_argv = exec_argv(container, ["/bin/true"], user="root")  # root with a fixed PATH, no user binary

        def probe(remaining):
            try:
                res = self.engine.run(probe_argv, timeout=max(min(remaining, 5.0), 0.5),
                                      check=False, record=False)
            except EngineError as exc:
                return False, exc.msg
            return res.rc == 0, res.stderr.strip()

        waited = wait_until(probe, self.start_timeout, interval=0.1, max_interval=0.5)
        self.engine.commands.append({"cmd": self.engine.describe(probe_argv),
                                     "rc": 0 if waited.ok else None, "attempts": waited.attempts,
                                     "elapsed": round(waited.elapsed, 3)})
        if not waited.ok:
            logs = self.engine.run(["logs", "--tail", "20", container], timeout=self.timeout, check=False)
            raise WorkspaceError(
                "container %s did not accept exec within %.0f s (last error: %s). Its last log lines:\n%s"
                % (container, self.start_timeout, waited.result, (logs.stdout + logs.stderr)[-2000:]))

    def purge_volumes(self, plan, check_mode: bool) -> bool:
        """Remove the workspace's volumes (both runtimes' names: it may have been created under the other)."""
        candidates = [layout.home_volume(plan.name), layout.dind_volume(plan.name)]
        have = set(self.engine.run(["volume", "ls", "-q"], timeout=self.timeout).stdout.split())
        removed = False
        for vol in candidates:
            if vol in have:
                plan.actions.append("remove volume %s" % vol)
                if not check_mode:
                    self.engine.run(["volume", "rm", "-f", vol], timeout=self.timeout)
                removed = True
        return removed


@contextmanager
def private_files(spec: WorkspaceSpec):
    """Env and label files in a 0700 directory, 0600 each, removed as soon as create returns."""
    tmpdir = tempfile.mkdtemp(prefix="perry-fleet-")
    try:
        paths = []
        for fname, pairs in (("env", spec.container_env()), ("labels", spec.labels())):
            path = os.path.join(tmpdir, fname)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(kv_file_text(pairs))
            paths.append(path)
        yield paths[0], paths[1]
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
