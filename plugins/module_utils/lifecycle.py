# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine operations on one workspace's container and volumes: create (and recreate without losing the old
container), start (until it accepts exec), stop, unpause, remove, and the volumes (which are ours, create, purge).
Each is one bounded engine call (or a bounded wait) and keeps the plan's idea of the container's state in step,
so later steps never inspect again.

Volumes are ours only by their labels (layout.volume_owner): a volume labelled for another workspace or role is
never mounted or removed, an unlabelled one only with ``adopt`` (or when our own container already mounts it),
and purge refuses while any other container uses a volume instead of force-removing that container.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine, container_state, exec_argv, labels
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, WorkspaceError
from ansible_collections.perry.fleet.plugins.module_utils.waiter import wait_until
from ansible_collections.perry.fleet.plugins.module_utils.workspace_spec import WorkspaceSpec, kv_file_text

# The old container's name while its replacement is created: a '.' is outside Perry's name rule, so this can
# never be another workspace's container.
REPLACED_SUFFIX = ".perry-fleet-replaced"


def replaced_name(container: str) -> str:
    return container + REPLACED_SUFFIX


class Lifecycle:
    def __init__(self, engine: Engine, timeout: float, start_timeout: float, stop_timeout: int):
        self.engine = engine
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout

    def set_state(self, plan, running: bool, paused: bool = False) -> None:
        plan.existing["State"] = {"Running": running, "Paused": paused,
                                  "Status": "paused" if paused else ("running" if running else "exited")}

    # -- the container ---------------------------------------------------------------------------
    def create(self, plan) -> None:
        """(Re)create the container from plan.spec. The old container is renamed aside and removed only once the
        new one exists, so a failed create leaves the workspace (and its ports) as it was."""
        self.ensure_volumes(plan)
        old = plan.existing
        if old is not None:
            self.engine.run(["rename", plan.container, replaced_name(plan.container)], timeout=self.timeout)
        try:
            with private_files(plan.spec) as (env_file, label_file, fds):
                res = self.engine.run(plan.spec.create_args(env_file, label_file), timeout=self.timeout,
                                      pass_fds=fds)
        except EngineError:
            if old is not None:
                self.engine.run(["rename", replaced_name(plan.container), plan.container], timeout=self.timeout)
            raise
        if old is not None:
            self.remove_container(replaced_name(plan.container), old)
        plan.actions.append("recreate" if old is not None else "create")
        plan.existing = {"Id": res.stdout.strip(), "Name": plan.container, "Config": {"Labels": plan.spec.labels()}}
        self.set_state(plan, running=False)

    def update(self, plan, args: list) -> None:
        """Change the container's limits in place (RuntimeProfile.update_resources): same container, processes kept."""
        self.engine.run(["update"] + list(args) + [plan.container], timeout=self.timeout)

    def restore(self, plan) -> None:
        """Rename the old container of an interrupted recreate back to the workspace's name."""
        self.engine.run(["rename", replaced_name(plan.container), plan.container], timeout=self.timeout)
        plan.existing["Name"] = "/" + plan.container

    def remove(self, plan) -> None:
        self.remove_container(plan.container, plan.existing)

    def remove_container(self, name: str, inspected: dict | None) -> None:
        if container_state(inspected) in ("running", "paused"):
            self._stop(name, inspected)
        self.engine.run(["rm", "-f", name], timeout=self.timeout)

    def stop(self, plan) -> None:
        self._stop(plan.container, plan.existing)
        self.set_state(plan, running=False)

    def _stop(self, name: str, inspected: dict | None) -> None:
        # A paused container's processes cannot handle the stop signal: unpause first (both engines).
        if container_state(inspected) == "paused":
            self.engine.run(["unpause", name], timeout=self.timeout)
        self.engine.run(["stop", "--time", str(self.stop_timeout), name], timeout=self.timeout + self.stop_timeout)

    def unpause(self, plan) -> None:
        self.engine.run(["unpause", plan.container], timeout=self.timeout)
        self.set_state(plan, running=True)

    def start(self, plan, wait: bool = True) -> None:
        """Start; with ``wait``, also until it accepts exec (else the caller calls wait_ready later)."""
        try:
            self.engine.run(["start", plan.container], timeout=self.timeout)
        except EngineError as exc:
            if "address already in use" not in (exc.stderr or "").lower():
                raise
            # Ports stay with a workspace across runs, so this repeats until someone acts: say who can.
            raise WorkspaceError(
                "container %s cannot start: one of its host ports %s is taken by something this engine does not "
                "know (a process, or a container of another engine or user that was stopped when the port was "
                "chosen). Stop that holder, or set ssh_port/worker_port to a free port (the workspace is recreated "
                "on it). Engine said: %s" % (plan.container, ports_text(plan.spec), exc.stderr.strip()[-500:]),
                cmd=exc.cmd) from None
        self.set_state(plan, running=True)
        if wait:
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

    # -- the volumes -----------------------------------------------------------------------------
    def inspect_volumes(self, names) -> dict:
        """{volume: labels} of those of ``names`` that exist, in one call."""
        names = [n for n in dict.fromkeys(names) if n]
        if not names:
            return {}
        res = self.engine.run(["volume", "inspect"] + names, timeout=self.timeout, check=False)
        try:
            found = json.loads(res.stdout or "[]") or []
        except ValueError:
            found = []
        if res.rc != 0:
            other = [ln.strip() for ln in res.stderr.splitlines() if ln.strip() and "no such volume" not in ln.lower()]
            if other:
                raise EngineError("cannot inspect volumes %s: %s" % (", ".join(names), " ".join(other)[-1000:]),
                                  cmd=self.engine.describe(["volume", "inspect"] + names), rc=res.rc, stderr=res.stderr)
        return {v.get("Name"): v.get("Labels") or {} for v in found if isinstance(v, dict) and v.get("Name") in names}

    def check_volumes(self, plans) -> None:
        """Refuse, before anything is created, every volume a (re)create would mount that is not this workspace's:
        labelled for another workspace or role, or unlabelled without ``adopt``. Records which exist."""
        found = self.inspect_volumes([v for p in plans for v in p.spec.volumes.values()])
        for plan in plans:
            plan.volumes_found = {v: found[v] for v in plan.spec.volumes.values() if v in found}
            for role, vol in plan.spec.volumes.items():
                if vol not in found:
                    continue
                owner = layout.volume_owner(vol, found[vol])
                if owner == (plan.name, role):
                    continue
                if owner is not None:
                    raise WorkspaceError(
                        "workspace %s cannot use volume %s as its %s volume: its labels say it is the %s volume of "
                        "workspace %s (Perry names a workspace's Docker-in-Docker volume <name>-docker, the home "
                        "volume of a workspace called <name>-docker). Nothing was created: give one of the two "
                        "workspaces another name." % (plan.name, vol, role, owner[1], owner[0]))
                if not (plan.item.get("adopt") or mounted_by_us(plan.existing, vol, role)):
                    raise WorkspaceError(
                        "volume %s already exists without perry.fleet's labels (made by Perry, by hand, or holding "
                        "someone's data), so workspace %s will not mount it as its %s volume. Nothing was created: "
                        "set adopt=true to use it (a later purge then removes it), or remove or rename it."
                        % (vol, plan.name, role))

    def ensure_volumes(self, plan) -> None:
        """Create the missing volumes of plan.spec, labelled with their workspace and role (check_volumes ran)."""
        for role, vol in plan.spec.volumes.items():
            if vol in plan.volumes_found:
                continue
            argv = ["volume", "create"]
            for key, value in sorted(layout.volume_labels(plan.name, role).items()):
                argv += ["--label", "%s=%s" % (key, value)]
            self.engine.run(argv + [vol], timeout=self.timeout)
            plan.volumes_found[vol] = layout.volume_labels(plan.name, role)
            plan.actions.append("create volume %s" % vol)

    def purge_plan(self, plan) -> list:
        """The volumes a purge removes: the workspace's by label under either runtime's names (it may have been
        created under the other), an unlabelled one only with adopt or when our own container mounts it.
        Refuses, before anything is removed, while another container uses one of them."""
        slots = {layout.home_volume(plan.name): "home", layout.dind_volume(plan.name): "docker"}
        found = self.inspect_volumes(list(slots))
        doomed = []
        for vol, role in slots.items():
            if vol not in found:
                continue
            owner = layout.volume_owner(vol, found[vol])
            if owner == (plan.name, role) or (owner is None and (plan.item.get("adopt")
                                                                 or mounted_by_us(plan.existing, vol, role))):
                doomed.append(vol)
            elif owner is not None:
                plan.notes.append("kept volume %s: its labels say it is the %s volume of workspace %s"
                                  % (vol, owner[1], owner[0]))
            else:
                plan.notes.append("kept volume %s: it carries no perry.fleet labels (set adopt=true to purge it)" % vol)
        users = {}
        for vol in doomed:
            res = self.engine.run(["ps", "-a", "--filter", "volume=" + vol, "--format", "{{.Names}}"],
                                  timeout=self.timeout)
            others = sorted(n for n in res.stdout.split() if n not in (plan.container, replaced_name(plan.container)))
            if others:
                users[vol] = others
        if users:
            raise WorkspaceError(
                "purge of workspace %s refused, nothing was removed: %s. Remove those containers (or set purge=false "
                "to keep the volumes) and run again." % (
                    plan.name, "; ".join("volume %s is used by container(s) %s" % (v, ", ".join(n))
                                         for v, n in sorted(users.items()))))
        return doomed

    def remove_volume(self, vol: str) -> None:
        # No -f: podman's force removes the containers using the volume; without it the engine refuses instead.
        self.engine.run(["volume", "rm", vol], timeout=self.timeout)


def ports_text(spec: WorkspaceSpec | None) -> str:
    if spec is None:
        return "(unknown)"
    return ", ".join("%s %d" % (k, v) for k, v in (("ssh", spec.ssh_port), ("worker", spec.worker_port)) if v)


def mounted_by_us(container: dict | None, vol: str, role: str) -> bool:
    """Whether a container perry.fleet created mounts ``vol`` where a ``role`` volume goes (an adopted volume)."""
    if not container or layout.LABEL_SPEC_HASH not in labels(container):
        return False
    return any(m.get("Name") == vol and m.get("Destination") == layout.VOLUME_MOUNTS[role]
               for m in container.get("Mounts") or [])


@contextmanager
def private_files(spec: WorkspaceSpec):
    """The env and label files as anonymous memory files (memfd), passed to the CLI as /dev/fd/N: they have no
    name on any file system, so no crash (not even kill -9) can leave the secrets behind. Yields the two paths
    and the fds the CLI must inherit."""
    fds = []
    try:
        for pairs in (spec.container_env(), spec.labels()):
            fd = os.memfd_create("perry-fleet", os.MFD_CLOEXEC)
            fds.append(fd)
            data = kv_file_text(pairs).encode()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.lseek(fd, 0, os.SEEK_SET)
        yield "/dev/fd/%d" % fds[0], "/dev/fd/%d" % fds[1], tuple(fds)
    finally:
        for fd in fds:
            os.close(fd)
