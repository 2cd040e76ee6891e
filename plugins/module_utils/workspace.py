# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converging Perry workspaces: plan from one batched inspect, then apply only what differs.

Order of work: validate every item (bad input creates nothing) -> one ``inspect`` of all containers
and images -> plan -> apply. Creates and recreates run under the host port lock so that ports
handed out here cannot be handed out again by a concurrent run before the container exists.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine, EngineError, short_id
from ansible_collections.perry.fleet.plugins.module_utils.ports import HostPortLock, PortAllocator, PortError
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import get_profile
from ansible_collections.perry.fleet.plugins.module_utils.waiter import wait_until
from ansible_collections.perry.fleet.plugins.module_utils.worker_sync import WorkerArtifact, WorkerSync, WorkerSyncError
from ansible_collections.perry.fleet.plugins.module_utils.workspace_files import FilesError, FilesSync, build_files
from ansible_collections.perry.fleet.plugins.module_utils import workspace_spec as ws

STATES = ("present", "started", "stopped", "restarted", "absent")
# Options a single workspace may set; in the list form each item may override the module-level value.
ITEM_OPTIONS = ("name", "state", "image", "env", "secret_env", "docker_host", "privileged", "memory",
                "cpus", "pids_limit", "ssh_port", "worker_port", "bind_address", "purge", "adopt", "files")


class WorkspaceError(Exception):
    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


@dataclass
class Settings:
    runtime: str
    check_mode: bool = False
    pull: str = "missing"
    engine_timeout: float = 60.0
    start_timeout: float = 30.0
    stop_timeout: int = 10
    ssh_port_range: tuple = ws.SSH_PORT_RANGE
    worker_port_range: tuple = ws.WORKER_PORT_RANGE
    port_lock_path: str = "/tmp/perry-fleet-ports.lock"
    worker: WorkerArtifact | None = None
    parallel: int = 8


@dataclass
class Plan:
    item: dict
    existing: dict | None
    spec: ws.WorkspaceSpec | None = None
    actions: list = field(default_factory=list)
    before: dict | None = None   # the spec label of the existing container
    was_running: bool = False
    worker: dict | None = None
    files: dict | None = None

    @property
    def name(self) -> str:
        return self.item["name"]

    @property
    def container(self) -> str:
        return ws.container_name(self.name)


def expand_items(params: dict) -> list:
    """The single form (name=...) and the list form (workspaces=[...]) as one list of items."""
    defaults = {k: params.get(k) for k in ITEM_OPTIONS}
    raw = params.get("workspaces")
    if raw is None:
        return [defaults]
    items = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise ws.SpecError("each entry of workspaces must be a mapping with at least a name")
        unknown = sorted(set(entry) - set(ITEM_OPTIONS))
        if unknown:
            raise ws.SpecError("unknown key(s) %s in a workspaces entry: allowed are %s"
                               % (", ".join(unknown), ", ".join(ITEM_OPTIONS)))
        item = dict(defaults)
        item.update({k: v for k, v in entry.items() if v is not None})
        items.append(item)
    return items


def validate_items(items: list, settings: Settings) -> list:
    profile = get_profile(settings.runtime)
    ws.validate_range(settings.ssh_port_range, "ssh_port_range")
    ws.validate_range(settings.worker_port_range, "worker_port_range")
    if settings.start_timeout <= 0:
        raise ws.SpecError("start_timeout must be greater than 0 seconds")
    if settings.stop_timeout < 0:
        raise ws.SpecError("stop_timeout must be 0 or more seconds")
    seen = set()
    out = []
    for item in items:
        item = dict(item)
        item["name"] = ws.validate_name(item.get("name"))
        if item["name"] in seen:
            raise ws.SpecError("workspace %r is listed twice" % item["name"])
        seen.add(item["name"])
        item["state"] = item.get("state") or "started"
        if item["state"] not in STATES:
            raise ws.SpecError("state %r for %s is invalid: use one of %s" % (item["state"], item["name"], ", ".join(STATES)))
        item["env"] = ws.validate_env(item.get("env"), "env")
        item["secret_env"] = ws.validate_env(item.get("secret_env"), "secret_env")
        both = sorted(set(item["env"]) & set(item["secret_env"]))
        if both:
            raise ws.SpecError("%s set in both env and secret_env: keep each key in one of them" % ", ".join(both))
        if item.get("privileged") is None:
            item["privileged"] = profile.privileged
        if item["privileged"] and not profile.privileged:
            raise ws.SpecError(
                "privileged=true is refused for runtime=%s: rootless workspaces cannot be privileged "
                "(use runtime=docker for Docker-in-Docker)" % profile.name)
        if item.get("docker_host") and not profile.forward_docker_host:
            raise ws.SpecError(
                "docker_host is forwarded only with runtime=podman; runtime=%s workspaces run their own "
                "engine (Docker-in-Docker). Unset docker_host or use runtime=podman." % profile.name)
        if item.get("docker_host"):
            ws_url = item["docker_host"]
            if not (ws_url.startswith(("tcp://", "unix://", "ssh://")) and len(ws_url) > 7 and not any(c.isspace() for c in ws_url)):
                raise ws.SpecError("docker_host %r is not an engine URL: use tcp://HOST:PORT, unix:///path or ssh://..." % ws_url)
        memory = item.get("memory")
        if memory is not None and not ws.MEMORY_RE.match(str(memory)):
            raise ws.SpecError("memory %r is invalid: use a number with an optional unit b, k, m or g (e.g. 4g)" % memory)
        if item.get("cpus") is not None and float(item["cpus"]) <= 0:
            raise ws.SpecError("cpus must be greater than 0")
        if item.get("pids_limit") is not None and int(item["pids_limit"]) <= 0:
            raise ws.SpecError("pids_limit must be greater than 0")
        ws.validate_port(item.get("ssh_port"), settings.ssh_port_range, "ssh_port")
        if item.get("worker_port") is not None and not profile.publish_worker_port:
            raise ws.SpecError("worker_port is published only with runtime=podman; runtime=%s reaches the worker "
                               "without a published port. Unset worker_port." % profile.name)
        ws.validate_port(item.get("worker_port"), settings.worker_port_range, "worker_port")
        item["bind_address"] = ws.validate_address(item.get("bind_address") or "127.0.0.1", "bind_address")
        item["files"] = build_files(item.get("files"))
        if item["state"] != "absent" and not item.get("image"):
            raise ws.SpecError("image is required for state=%s (build one with the perry.fleet.image role)" % item["state"])
        out.append(item)
    return out


class WorkspaceManager:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.profile = get_profile(settings.runtime)
        self.changed = False

    # -- planning -------------------------------------------------------------------------------
    def plan(self, items: list) -> list:
        names = [ws.container_name(i["name"]) for i in items]
        images = sorted({i["image"] for i in items if i["state"] != "absent"})
        objects = self.engine.inspect(names + images, timeout=self.settings.engine_timeout)
        images_by_ref = {ref: objects.get(ref) for ref in images}
        missing = [ref for ref, obj in images_by_ref.items() if obj is None]
        if missing:
            images_by_ref.update(self._pull(missing))
        plans = []
        for item in items:
            existing = objects.get(ws.container_name(item["name"]))
            if existing is not None and not self._ours(existing) and not item.get("adopt"):
                raise WorkspaceError(
                    "container %s exists but was not created by perry.fleet (no %s label): remove it, or set "
                    "adopt=true to recreate it under management (volumes are kept)"
                    % (ws.container_name(item["name"]), ws.LABEL_SPEC_HASH))
            plan = Plan(item=item, existing=existing, was_running=_running(existing))
            if existing is not None:
                plan.before = ws.spec_from_labels(_labels(existing))
            if item["state"] != "absent":
                plan.spec = self._desired_spec(item, images_by_ref.get(item["image"]), plan.before)
            plans.append(plan)
        return plans

    def _ours(self, container: dict) -> bool:
        return ws.LABEL_SPEC_HASH in _labels(container)

    def _pull(self, refs: list) -> dict:
        if self.settings.pull == "never" or self.settings.check_mode:
            if self.settings.pull == "never":
                raise WorkspaceError(
                    "image(s) %s not found in the engine and pull=never: build them with the perry.fleet.image "
                    "role (or set pull=missing)" % ", ".join(refs))
            return {ref: None for ref in refs}
        found = {}
        for ref in refs:
            try:
                self.engine.run(["pull", ref], timeout=max(self.settings.engine_timeout, 600))
            except EngineError as exc:
                raise WorkspaceError(
                    "image %s is not in the engine and could not be pulled: %s. Build it with the "
                    "perry.fleet.image role or check the image name." % (ref, exc.stderr.strip()[-300:] or exc.msg)) from None
            self.changed = True
            found[ref] = self.engine.inspect([ref], timeout=self.settings.engine_timeout).get(ref)
        return found

    def _desired_spec(self, item: dict, image: dict | None, before: dict | None) -> ws.WorkspaceSpec:
        before_ports = (before or {}).get("ports") or {}
        return ws.WorkspaceSpec(
            name=item["name"], profile=self.profile, image=item["image"],
            image_id=short_id(image.get("Id")) if image else "(pulled at apply)",
            env=item["env"], secret_env=item["secret_env"], docker_host=item.get("docker_host"),
            privileged=bool(item["privileged"]), memory=item.get("memory"),
            cpus=float(item["cpus"]) if item.get("cpus") is not None else None,
            pids_limit=int(item["pids_limit"]) if item.get("pids_limit") is not None else None,
            bind_address=item["bind_address"],
            # Stable across recreate: keep the ports the workspace already has unless told otherwise.
            ssh_port=item.get("ssh_port") or before_ports.get("ssh"),
            worker_port=(item.get("worker_port") or before_ports.get("worker")) if self.profile.publish_worker_port else None,
        )

    # -- applying -------------------------------------------------------------------------------
    def apply(self, plans: list) -> list:
        creating = [p for p in plans if p.spec is not None and self._needs_create(p)]
        if creating and not self.settings.check_mode:
            with HostPortLock(self.settings.port_lock_path, timeout=self.settings.engine_timeout):
                self._assign_ports(creating)
                for plan in creating:
                    self._create(plan)
        elif creating:
            for plan in creating:
                plan.actions.append("recreate" if plan.existing else "create")
        for plan in plans:
            self._converge_state(plan)
        if self.settings.worker is not None:
            self._sync_workers(plans)
        self._sync_files(plans)
        return [self._result(p) for p in plans]

    def _sync_files(self, plans: list) -> None:
        """Credentials and config files in each running workspace's home."""
        syncer = FilesSync(self.engine, self.settings.engine_timeout)

        def one(plan):
            if _would_be_new(plan, self.settings.check_mode):
                return {"count": len(plan.item["files"]), "changed": True}
            return syncer.sync(plan.container, plan.item["files"], check_mode=self.settings.check_mode, inspected=plan.existing)

        for plan, result in self._each_running(plans, one, "placing files", lambda p: bool(p.item["files"])):
            plan.files = result
            if result["changed"]:
                plan.actions.append("place %d file(s)" % result["count"])

    def _sync_workers(self, plans: list) -> None:
        """The worker in each running workspace (no exec when unchanged and readable on this host, else one)."""
        syncer = WorkerSync(self.engine, self.settings.worker, self.settings.engine_timeout)

        def one(plan):
            if _would_be_new(plan, self.settings.check_mode):  # a (re)created container has no worker yet
                return {"kind": syncer.artifact.kind, "digest": syncer.artifact.digest, "changed": True, "action": "install"}
            return syncer.sync(plan.container, check_mode=self.settings.check_mode, inspected=plan.existing)

        for plan, result in self._each_running(plans, one, "worker sync"):
            plan.worker = result
            if result["changed"]:
                plan.actions.append("worker %s" % result["action"])

    def _each_running(self, plans: list, step, what: str, wanted=lambda plan: True) -> list:
        """Run step(plan) for every running workspace in parallel; [(plan, result)], or one error naming all failures."""
        targets = [p for p in plans if p.item["state"] in ("started", "restarted")
                   and (_running(p.existing) or self.settings.check_mode) and wanted(p)]

        def guarded(plan):
            try:
                return plan, step(plan), None
            except (WorkerSyncError, FilesError, EngineError) as exc:
                return plan, None, "%s: %s" % (plan.name, exc)

        done, errors = [], []
        with ThreadPoolExecutor(max_workers=max(1, min(self.settings.parallel, len(targets) or 1))) as pool:
            for plan, result, error in pool.map(guarded, targets):
                if error:
                    errors.append(error)
                else:
                    done.append((plan, result))
                    self.changed = self.changed or result["changed"]
        if errors:
            raise WorkspaceError("%s failed for %d workspace(s): %s" % (what, len(errors), "; ".join(errors)))
        return done

    def _needs_create(self, plan: Plan) -> bool:
        if plan.existing is None:
            return True
        return _labels(plan.existing).get(ws.LABEL_SPEC_HASH) != plan.spec.spec_hash()

    def _assign_ports(self, plans: list) -> None:
        allocator = PortAllocator(self.engine.list_containers(timeout=self.settings.engine_timeout))
        try:
            for plan in plans:
                spec = plan.spec
                if spec.ssh_port:
                    allocator.claim(spec.ssh_port, "ssh", plan.container)
                if spec.worker_port:
                    allocator.claim(spec.worker_port, "worker", plan.container)
            for plan in plans:
                spec = plan.spec
                if not spec.ssh_port:
                    spec.ssh_port = allocator.allocate(self.settings.ssh_port_range, "ssh")
                if self.profile.publish_worker_port and not spec.worker_port:
                    spec.worker_port = allocator.allocate(self.settings.worker_port_range, "worker")
        except PortError as exc:
            raise WorkspaceError(str(exc)) from None

    def _create(self, plan: Plan) -> None:
        if plan.existing is not None:
            self._remove_container(plan)
        self._ensure_volumes(plan)
        plan.actions.append("recreate" if plan.existing is not None else "create")
        with _private_files(plan.spec) as (env_file, label_file):
            res = self.engine.run(plan.spec.create_args(env_file, label_file), timeout=self.settings.engine_timeout)
        plan.existing = {"Id": res.stdout.strip(), "State": {"Running": False}, "Name": plan.container,
                         "Config": {"Labels": plan.spec.labels()}}
        self.changed = True

    def _ensure_volumes(self, plan: Plan) -> None:
        wanted = list(plan.spec.volumes.values())
        have = set(self.engine.run(["volume", "ls", "-q"], timeout=self.settings.engine_timeout).stdout.split())
        for vol in wanted:
            if vol not in have:
                self.engine.run(["volume", "create", "--label", "%s=%s" % (ws.LABEL_NAME, plan.name),
                                 "--label", "%s=true" % ws.LABEL_MANAGED, vol], timeout=self.settings.engine_timeout)
                plan.actions.append("create volume %s" % vol)

    def _remove_container(self, plan: Plan) -> None:
        if _running(plan.existing):
            self.engine.run(["stop", "--time", str(self.settings.stop_timeout), plan.container],
                            timeout=self.settings.engine_timeout + self.settings.stop_timeout)
        self.engine.run(["rm", "-f", plan.container], timeout=self.settings.engine_timeout)

    def _converge_state(self, plan: Plan) -> None:
        state = plan.item["state"]
        check = self.settings.check_mode
        if state == "absent":
            if plan.existing is not None:
                plan.actions.append("remove container")
                if not check:
                    self._remove_container(plan)
                self.changed = True
            if plan.item.get("purge"):
                self._purge_volumes(plan)
            plan.existing = None
            return
        was_running = _running(plan.existing)
        created = "create" in plan.actions or "recreate" in plan.actions
        # present: a recreated container comes back in the state it was in; a new one stays created.
        want_running = state in ("started", "restarted") or (state == "present" and created and plan.was_running)
        if state == "restarted" and was_running and not created:
            plan.actions.append("restart")
            if not check:
                self.engine.run(["stop", "--time", str(self.settings.stop_timeout), plan.container],
                                timeout=self.settings.engine_timeout + self.settings.stop_timeout)
                self._start(plan)
            self.changed = True
        elif want_running and (created or not was_running):
            plan.actions.append("start")
            if not check:
                self._start(plan)
            self.changed = True
        elif state == "stopped" and was_running:
            plan.actions.append("stop")
            if not check:
                self.engine.run(["stop", "--time", str(self.settings.stop_timeout), plan.container],
                                timeout=self.settings.engine_timeout + self.settings.stop_timeout)
                plan.existing["State"] = {"Running": False}
            self.changed = True

    def _start(self, plan: Plan) -> None:
        self.engine.run(["start", plan.container], timeout=self.settings.engine_timeout)
        plan.existing["State"] = {"Running": True}
        self.wait_ready(plan.container)

    def wait_ready(self, container: str) -> None:
        """Perry's waitForContainerReady (exec true), bounded by start_timeout."""
        def probe(remaining):
            try:
                res = self.engine.run(["exec", container, "true"], timeout=max(min(remaining, 5.0), 0.5),
                                      check=False, record=False)
            except EngineError as exc:
                return False, exc.msg
            return res.rc == 0, res.stderr.strip()

        waited = wait_until(probe, self.settings.start_timeout, interval=0.1, max_interval=0.5)
        self.engine.commands.append({"cmd": self.engine.describe(["exec", container, "true"]),
                                     "rc": 0 if waited.ok else None, "attempts": waited.attempts,
                                     "elapsed": round(waited.elapsed, 3)})
        if not waited.ok:
            logs = self.engine.run(["logs", "--tail", "20", container], timeout=self.settings.engine_timeout, check=False)
            raise WorkspaceError(
                "container %s did not accept exec within %.0f s (last error: %s). Its last log lines:\n%s"
                % (container, self.settings.start_timeout, waited.result, (logs.stdout + logs.stderr)[-2000:]))

    def _purge_volumes(self, plan: Plan) -> None:
        # Both names: a workspace may have been created under the other runtime earlier.
        candidates = [ws.container_name(plan.name), ws.container_name(plan.name) + "-docker"]
        have = set(self.engine.run(["volume", "ls", "-q"], timeout=self.settings.engine_timeout).stdout.split())
        for vol in candidates:
            if vol in have:
                plan.actions.append("remove volume %s" % vol)
                if not self.settings.check_mode:
                    self.engine.run(["volume", "rm", "-f", vol], timeout=self.settings.engine_timeout)
                self.changed = True

    def _result(self, plan: Plan) -> dict:
        spec = plan.spec
        out = {
            "name": plan.name,
            "container": plan.container if plan.existing is not None or (spec and plan.actions) else None,
            "container_id": (plan.existing or {}).get("Id"),
            "running": _running(plan.existing),
            "state": plan.item["state"],
            "changed": bool(plan.actions),
            "actions": plan.actions,
            "runtime": self.profile.name,
            "profile": self.profile.as_dict(),
            "worker": plan.worker,
            "files": plan.files,
        }
        if spec is not None:
            out.update({
                "image": spec.image,
                "image_id": spec.image_id,
                "ports": {"ssh": spec.ssh_port, "worker": spec.worker_port, "bind_address": spec.bind_address},
                "volumes": spec.volumes,
                "spec_hash": spec.spec_hash(),
            })
            before, after = ws.changed_keys(plan.before, spec.public())
            out["diff"] = {"before": before, "after": after} if plan.actions else {"before": {}, "after": {}}
        else:
            out["diff"] = {"before": {"exists": plan.before is not None}, "after": {"exists": False}} if plan.actions else {"before": {}, "after": {}}
        return out


def _would_be_new(plan: Plan, check_mode: bool) -> bool:
    """In check mode a container that would be (re)created has nothing inside yet."""
    return check_mode and ("create" in plan.actions or "recreate" in plan.actions)


def _labels(container: dict | None) -> dict:
    return ((container or {}).get("Config") or {}).get("Labels") or {}


def _running(container: dict | None) -> bool:
    return bool(((container or {}).get("State") or {}).get("Running"))


@contextmanager
def _private_files(spec: ws.WorkspaceSpec):
    """Env and label files in a 0700 directory, 0600 each, removed as soon as create returns."""
    tmpdir = tempfile.mkdtemp(prefix="perry-fleet-")
    try:
        paths = []
        for fname, pairs in (("env", spec.container_env()), ("labels", spec.labels())):
            path = os.path.join(tmpdir, fname)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(ws.kv_file_text(pairs))
            paths.append(path)
        yield paths[0], paths[1]
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
