# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Converging Perry workspaces: plan from one batched inspect, then apply only what differs.

Order of work: validate every item (workspace_spec: bad input creates nothing) -> one ``inspect`` of all
containers and images -> plan -> every refusal (volumes, purges, ports) -> apply. Creates and recreates, and the
start of those that should run, happen under the host port lock so that ports handed out here cannot be handed
out again by a concurrent run (of this or another engine) before the container binds them. The engine
operations themselves are lifecycle.py's; the in-container steps (worker, files) run in parallel afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.perry.fleet.plugins.module_utils import layout, worker_auth
from ansible_collections.perry.fleet.plugins.module_utils import workspace_spec as ws
from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine, container_state, is_local, labels, short_id
from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError, SpecError, WorkspaceError
from ansible_collections.perry.fleet.plugins.module_utils.lifecycle import Lifecycle, replaced_name
from ansible_collections.perry.fleet.plugins.module_utils.parallel import run_parallel
from ansible_collections.perry.fleet.plugins.module_utils.ports import (
    DEFAULT_LOCK_PATH, HostPortLock, PortAllocator, PortClaims)
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import get_profile
from ansible_collections.perry.fleet.plugins.module_utils.worker_sync import WorkerArtifact, WorkerSync
from ansible_collections.perry.fleet.plugins.module_utils.workspace_files import FilesSync, env_file, secrets_file


@dataclass
class Settings:
    runtime: str
    check_mode: bool = False
    pull: str = "missing"
    engine_timeout: float = 60.0
    start_timeout: float = 30.0
    stop_timeout: int = 10
    ssh_port_range: tuple = layout.SSH_PORT_RANGE
    worker_port_range: tuple = layout.WORKER_PORT_RANGE
    port_lock_path: str = DEFAULT_LOCK_PATH
    worker: WorkerArtifact | None = None
    parallel: int = 8

    def validate(self) -> None:
        self.ssh_port_range = ws.validate_range(self.ssh_port_range, "ssh_port_range")
        self.worker_port_range = ws.validate_range(self.worker_port_range, "worker_port_range")
        if self.start_timeout <= 0:
            raise SpecError("start_timeout must be greater than 0 seconds")
        if self.stop_timeout < 0:
            raise SpecError("stop_timeout must be 0 or more seconds")


@dataclass
class Plan:
    item: dict
    existing: dict | None
    spec: ws.WorkspaceSpec | None = None
    actions: list = field(default_factory=list)
    before: dict | None = None   # the spec label of the existing container
    was_running: bool = False
    initial_state: str = "missing"
    worker: dict | None = None
    files: dict | None = None
    volumes_found: dict = field(default_factory=dict)   # volume -> labels, of this workspace's that exist
    purge: list = field(default_factory=list)           # volumes state=absent purge=true removes
    notes: list = field(default_factory=list)           # what was deliberately left alone, and why
    leftover: dict | None = None   # our old container of a recreate that was interrupted (kill -9), renamed aside
    needs_create: bool = False
    forced: tuple = ()             # recreate reasons the spec hash does not show (limits the engine cannot update)
    update_args: list = field(default_factory=list)   # `update` arguments bringing the limits to the wanted ones

    @property
    def name(self) -> str:
        return self.item["name"]

    @property
    def container(self) -> str:
        return layout.container_name(self.name)

    @property
    def created(self) -> bool:
        return "create" in self.actions or "recreate" in self.actions


def validate(params: dict, settings: Settings) -> list:
    """The module's options as validated items (raises SpecError before anything is created)."""
    settings.validate()
    return ws.validate_items(ws.expand_items(params), settings.runtime, settings.ssh_port_range,
                             settings.worker_port_range)


class WorkspaceManager:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.profile = get_profile(settings.runtime)
        self.lifecycle = Lifecycle(engine, settings.engine_timeout, settings.start_timeout, settings.stop_timeout)
        self.changed = False

    # -- planning -------------------------------------------------------------------------------
    def plan(self, items: list) -> list:
        names = [layout.container_name(i["name"]) for i in items]
        images = sorted({i["image"] for i in items if i["state"] != "absent"})
        objects = self.engine.inspect(names + [replaced_name(n) for n in names] + images,
                                      timeout=self.settings.engine_timeout)
        images_by_ref = {ref: objects.get(ref) for ref in images}
        # always: pull every image (check mode does not; it plans with the image the engine has, if any).
        wanted = images if self.settings.pull == "always" else [r for r, obj in images_by_ref.items() if obj is None]
        if wanted:
            images_by_ref.update(self._pull(wanted, images_by_ref))
        plans = []
        for item in items:
            existing = objects.get(layout.container_name(item["name"]))
            leftover = objects.get(replaced_name(layout.container_name(item["name"])))
            if leftover is not None and layout.LABEL_SPEC_HASH not in labels(leftover):
                leftover = None  # not ours: never touched
            if existing is None and leftover is not None:
                existing = leftover  # the recreate died before its new container existed: this is the workspace
            if existing is not None and layout.LABEL_SPEC_HASH not in labels(existing) and not item.get("adopt"):
                raise WorkspaceError(
                    "container %s exists but was not created by perry.fleet (no %s label): remove it, or set "
                    "adopt=true to recreate it under management (volumes are kept)"
                    % (layout.container_name(item["name"]), layout.LABEL_SPEC_HASH))
            plan = Plan(item=item, existing=existing, was_running=container_state(existing) in ("running", "paused"),
                        initial_state=container_state(existing), leftover=leftover)
            if existing is not None:
                plan.before = ws.spec_from_labels(labels(existing))
            if item["state"] != "absent":
                plan.spec = self._desired_spec(item, images_by_ref.get(item["image"]), plan.before)
                plan.spec.check_engine_files()
                self._compare(plan)
            plans.append(plan)
        return plans

    def _pull(self, refs: list, have: dict) -> dict:
        """The images after pulling refs; a pull counts as a change only when it brought a different image."""
        if self.settings.pull == "never":
            raise WorkspaceError(
                "image(s) %s not found in the engine and pull=never: build them with the perry.fleet.image "
                "role (or set pull=missing)" % ", ".join(refs))
        if self.settings.check_mode:
            return {ref: have.get(ref) for ref in refs}
        found = {}
        for ref in refs:
            try:
                self.engine.pull(ref, timeout=self.settings.engine_timeout)
            except PerryError as exc:
                detail = getattr(exc, "stderr", "").strip()[-300:] or exc.msg
                raise WorkspaceError(
                    "image %s could not be pulled (pull=%s): %s. Build it with the perry.fleet.image role and use "
                    "pull=missing, or check the image name and registry." % (ref, self.settings.pull, detail)) from None
            found[ref] = self.engine.inspect([ref], timeout=self.settings.engine_timeout).get(ref)
            if (found[ref] or {}).get("Id") != (have.get(ref) or {}).get("Id"):
                self.changed = True
        return found

    def _desired_spec(self, item: dict, image: dict | None, before: dict | None) -> ws.WorkspaceSpec:
        before_ports = (before or {}).get("ports") or {}
        return ws.WorkspaceSpec(
            name=item["name"], profile=self.profile, image=item["image"],
            image_id=short_id(image.get("Id")) if image else "(pulled at apply)",
            env=item["env"], secret_env=item["secret_env"], docker_host=item.get("workspace_docker_host"),
            privileged=bool(item["privileged"]), memory=item.get("memory"),
            cpus=float(item["cpus"]) if item.get("cpus") is not None else None,
            pids_limit=int(item["pids_limit"]) if item.get("pids_limit") is not None else None,
            bind_address=item["bind_address"],
            # Stable across recreate: keep the ports the workspace already has unless told otherwise.
            ssh_port=item.get("ssh_port") or before_ports.get("ssh"),
            worker_port=(item.get("worker_port") or before_ports.get("worker")) if self.profile.publish_worker_port else None,
            user_labels=item.get("labels") or {}, extra_ports=item.get("ports") or [],
            mounts=item.get("mounts") or [], user_engine_socket=item.get("user_engine_socket"),
        )

    # -- applying -------------------------------------------------------------------------------
    def apply(self, plans: list) -> list:
        """Every refusal (volumes that are not ours, purges of volumes in use, ports taken) is found before the
        first change, in check mode too, so a refused run changes nothing and check mode fails like the run."""
        for plan in plans:
            if plan.item["state"] == "absent" and plan.item.get("purge"):
                plan.purge = self.lifecycle.purge_plan(plan)
        creating = [p for p in plans if p.spec is not None and p.needs_create]
        if creating:
            self.lifecycle.check_volumes(creating)
            self._check_user_engine_alone(plans)
        for plan in plans:
            self._finish_interrupted_recreate(plan)
        if creating and not self.settings.check_mode:
            # Held until the new containers that should run are started: only a started container binds its ports,
            # and another engine's run (which cannot see our created-only containers) would take them meanwhile.
            # Waiting for them to accept exec happens after the lock is released.
            # The creates run in parallel: every port was assigned above, so ours cannot race each other.
            with HostPortLock(self.settings.port_lock_path, timeout=self.settings.engine_timeout):
                self._assign_ports(creating)
                self._for_each(creating, self._create_and_start, "create")
            self._for_each([p for p in creating if "start" in p.actions],
                           lambda p: self.lifecycle.wait_ready(p.container), "start")
        elif creating:
            self._assign_ports(creating, allocate=False)
            for plan in creating:
                plan.actions += ["create volume %s" % v for v in plan.spec.volumes.values() if v not in plan.volumes_found]
                plan.actions.append("recreate" if plan.existing else "create")
                if plan.existing is None:
                    plan.existing = {"Name": plan.container, "Config": {"Labels": {}}}
                self.lifecycle.set_state(plan, running=False)
        for plan in plans:
            if plan.update_args and not plan.needs_create:
                self._do(plan, "update_resources", lambda p=plan: self.lifecycle.update(p, p.update_args))
            if self.settings.check_mode or not any(plan is c for c in creating):
                self._converge_state(plan)
        if self.settings.worker is not None:
            self._sync_workers(plans)
        self._sync_files(plans)
        return [self._result(p) for p in plans]

    def _check_user_engine_alone(self, plans: list) -> None:
        """A workspace given its user's own podman (user_engine_socket) can exec into every container of that
        podman: refuse any run that would leave it beside another workspace there (either one being created)."""
        listed = {p.name: p for p in plans}
        managed = {labels(c).get(layout.LABEL_NAME) or c.get("Name", "").lstrip("/"): c
                   for c in self.engine.list_containers(timeout=self.settings.engine_timeout,
                                                        label=layout.LABEL_SPEC_HASH)}
        holders, remaining = [], []
        for name in sorted(set(managed) | set(listed)):
            plan = listed.get(name)
            if plan is not None and plan.item["state"] == "absent":
                continue
            remaining.append(name)
            if plan is not None:
                has_socket = bool(plan.spec.user_engine_socket)
            else:
                has_socket = any(m.get("Destination") == layout.USER_ENGINE_DIR for m in managed[name].get("Mounts") or [])
            if has_socket:
                holders.append(name)
        if holders and len(remaining) > 1:
            raise WorkspaceError(
                "workspace %s gets the user's own podman (user_engine_socket), and that podman would also hold %s: "
                "the socket reaches every container of the user, other workspaces included. A workspace with the "
                "user's socket must be the only one of its host user: run the others as another host user, or give "
                "%s no engine. Nothing was created."
                % (holders[0], ", ".join(n for n in remaining if n != holders[0]), holders[0]))

    def _create_and_start(self, plan: Plan) -> None:
        self.lifecycle.create(plan)
        self.changed = True
        self._converge_state(plan, wait=False)

    def _for_each(self, plans: list, step, what: str) -> list:
        """step(plan) for every plan, in parallel: the results, or one error naming every failure (a single
        failure is raised as it is, so its message and kind reach the user unchanged)."""
        results = run_parallel(step, plans, limit=self.settings.parallel)
        failed = [(plan, res) for plan, res in zip(plans, results) if isinstance(res, BaseException)]
        if not failed:
            return results
        unexpected = [res for _plan, res in failed if not isinstance(res, PerryError)]
        if len(failed) == 1 or unexpected:
            raise (unexpected or [failed[0][1]])[0]
        raise WorkspaceError("%s failed for %d workspace(s): %s" % (
            what, len(failed), "; ".join("%s: %s" % (plan.name, res.msg) for plan, res in failed)))

    def _finish_interrupted_recreate(self, plan: Plan) -> None:
        """A recreate killed between renaming the old container aside and removing it: put the old one back when
        no new one exists (keeping its ports), else remove it."""
        if plan.leftover is None:
            return
        aside = replaced_name(plan.container)
        if plan.leftover is plan.existing:
            self._do(plan, "restore container %s" % aside, lambda: self.lifecycle.restore(plan))
        else:
            self._do(plan, "remove container %s" % aside, lambda: self.lifecycle.remove_container(aside, plan.leftover))

    def _compare(self, plan: Plan) -> None:
        """Recreate or not, from the one inspect: the spec hash, then the limits (HostConfig) of a runtime that
        updates them in place."""
        if plan.existing is None:
            plan.needs_create = True
            return
        plan.needs_create = not plan.spec.matches_hash(labels(plan.existing).get(layout.LABEL_SPEC_HASH), plan.before)
        if plan.needs_create or not self.profile.update_resources:
            return
        update = plan.spec.resources_update(plan.existing.get("HostConfig"))
        if update is None:
            plan.needs_create, plan.forced = True, ("resources",)
        else:
            plan.update_args = update
            if plan.before is not None:   # diffs show the limits the container has, not the ones it was created with
                plan.before = dict(plan.before, resources=ws.inspected_resources(plan.existing.get("HostConfig")))

    def _assign_ports(self, plans: list, allocate: bool = True) -> None:
        """Claim the ports given or kept (all of them before any is allocated), then allocate the rest; check mode
        claims only, so a taken port fails there as it would in the run."""
        claims = self._port_claims()
        allocator = PortAllocator(self.engine.list_containers(timeout=self.settings.engine_timeout),
                                  claimed=claims.others() if claims else None)
        for plan in plans:
            spec = plan.spec
            if spec.ssh_port:
                allocator.claim(spec.ssh_port, "ssh", plan.container)
            if spec.worker_port:
                allocator.claim(spec.worker_port, "worker", plan.container)
            for extra in spec.extra_ports:
                if extra["protocol"] == "tcp":   # the bind probe is tcp; udp ones are checked within the task only
                    allocator.claim(extra["host_port"], "published", plan.container)
        if not allocate:
            return
        for plan in plans:
            spec = plan.spec
            if not spec.ssh_port:
                spec.ssh_port = allocator.allocate(self.settings.ssh_port_range, "ssh")
            if self.profile.publish_worker_port and not spec.worker_port:
                spec.worker_port = allocator.allocate(self.settings.worker_port_range, "worker")
        # Still under the host port lock: the other engines see these ports before anyone can allocate again.
        note = claims.record(allocator.ours()) if claims else None
        if note:
            plans[0].notes.append(note)

    def _port_claims(self) -> PortClaims | None:
        """This engine's port claims (ports.PortClaims); None for an engine on another host (tcp://, ssh://), whose
        ports are not this host's."""
        if not is_local(self.engine):
            return None
        return PortClaims(self.settings.port_lock_path, self.engine.store_root(timeout=self.settings.engine_timeout))

    def _converge_state(self, plan: Plan, wait: bool = True) -> None:
        """The one table of state transitions: (wanted state, current state) -> actions."""
        state = plan.item["state"]
        if state == "absent":
            self._converge_absent(plan)
            return
        current = container_state(plan.existing)
        # present: a recreated container comes back in the state it was in; a new one stays created.
        want_running = state in ("started", "restarted") or (state == "present" and plan.created and plan.was_running)
        if state == "restarted" and current in ("running", "paused") and not plan.created:
            self._do(plan, "restart", lambda: (self.lifecycle.stop(plan), self.lifecycle.start(plan)), running=True)
        elif want_running and current == "paused" and not plan.created:
            self._do(plan, "unpause", lambda: self.lifecycle.unpause(plan), running=True)
        elif want_running and (plan.created or current != "running"):
            self._do(plan, "start", lambda: self.lifecycle.start(plan, wait=wait), running=True)
        elif state == "stopped" and current in ("running", "paused"):
            self._do(plan, "stop", lambda: self.lifecycle.stop(plan), running=False)

    def _converge_absent(self, plan: Plan) -> None:
        if plan.existing is not None:
            self._do(plan, "remove container", lambda: self.lifecycle.remove(plan))
        for vol in plan.purge:
            self._do(plan, "remove volume %s" % vol, lambda v=vol: self.lifecycle.remove_volume(v))
        plan.existing = None

    def _do(self, plan: Plan, action: str, apply, running: bool | None = None) -> None:
        """Apply one action; in check mode only record it and the state it leaves (so later steps predict)."""
        plan.actions.append(action)
        if not self.settings.check_mode:
            apply()
        elif running is not None:
            self.lifecycle.set_state(plan, running=running)
        self.changed = True

    # -- inside running workspaces --------------------------------------------------------------
    def _sync_files(self, plans: list) -> None:
        """Credentials and config files, and the secret_env file, in each running workspace's home: in place, so a
        rotated secret or an edited file never recreates the container (its running agents keep going)."""
        syncer = FilesSync(self.engine, self.settings.engine_timeout)
        key = worker_auth.host_key() if any(p.item.get("secret_env") for p in plans) else b""

        def wanted(plan):
            files = list(plan.item["files"])
            env, old = ws.shell_env(plan.item["env"]), ws.shell_env((plan.before or {}).get("env"))
            if env or old:
                # keys an older container still has in its engine config but the user dropped: unset in its shells
                files.append(env_file(env, unset=set(old) - set(plan.item["env"])))
            if plan.item.get("secret_env"):
                files.append(secrets_file(plan.name, plan.item["secret_env"], key))
            return sorted(files, key=lambda f: f.dest)

        def one(plan):
            files = wanted(plan)
            # The files live in the home volume, which a recreate keeps: only a workspace without any container
            # yet is sure to get them (a recreated one is read through the old container's mounts).
            if self.settings.check_mode and plan.initial_state == "missing":
                return {"count": len(files), "changed": True}
            return syncer.sync(plan.container, files, check_mode=self.settings.check_mode, inspected=plan.existing)

        for plan, result in self._each_running(plans, one, "placing files", lambda p: bool(wanted(p))):
            plan.files = result
            if result["changed"]:
                plan.actions.append("place %d file(s)" % result["count"])

    def _sync_workers(self, plans: list) -> None:
        """The worker in each running workspace (no exec when unchanged and readable on this host, else one)."""
        syncer = WorkerSync(self.engine, self.settings.worker, self.settings.engine_timeout)

        def one(plan):
            if self._would_be_new(plan):  # a (re)created container has no worker yet
                return {"kind": syncer.artifact.kind, "digest": syncer.artifact.digest, "changed": True, "action": "install"}
            try:
                return syncer.sync(plan.container, check_mode=self.settings.check_mode, inspected=plan.existing)
            except PerryError:
                if not self._not_running_yet(plan):
                    raise
                # Check mode, a stopped or paused container the run would start: no exec works in it, and its
                # manifest could not be read on this host (sync compares that first), so the worker would change.
                return {"kind": syncer.artifact.kind, "digest": syncer.artifact.digest, "changed": True, "action": "update"}

        for plan, result in self._each_running(plans, one, "worker sync"):
            plan.worker = result
            if result["changed"]:
                plan.actions.append("worker %s" % result["action"])

    def _would_be_new(self, plan: Plan) -> bool:
        """In check mode a container that would be (re)created has nothing inside yet."""
        return self.settings.check_mode and plan.created

    def _not_running_yet(self, plan: Plan) -> bool:
        """In check mode a container the run would start or unpause, which no exec can enter now."""
        return self.settings.check_mode and plan.initial_state != "running"

    def _each_running(self, plans: list, step, what: str, wanted=lambda plan: True) -> list:
        """step(plan) for every workspace that runs after the state step (whatever its wanted state: the docs
        promise files and worker in every running workspace), in parallel; [(plan, result)], or one error naming
        all failures. In check mode the state step recorded the state the run would leave."""
        targets = [p for p in plans if p.item["state"] != "absent" and container_state(p.existing) == "running"
                   and wanted(p)]
        done = list(zip(targets, self._for_each(targets, step, what)))
        self.changed = self.changed or any(result["changed"] for _plan, result in done)
        return done

    # -- result ---------------------------------------------------------------------------------
    def _result(self, plan: Plan) -> dict:
        spec = plan.spec
        out = {
            "name": plan.name,
            "container": plan.container if plan.existing is not None or (spec and plan.actions) else None,
            "container_id": (plan.existing or {}).get("Id"),
            "running": container_state(plan.existing) == "running",
            "state": plan.item["state"],
            "changed": bool(plan.actions),
            "actions": plan.actions,
            "runtime": self.profile.name,
            "profile": self.profile.as_dict(),
            "worker": plan.worker,
            "files": plan.files,
            "notes": plan.notes,
        }
        if spec is not None:
            out.update({
                "image": spec.image,
                "image_id": spec.image_id,
                "ports": dict({"ssh": spec.ssh_port, "worker": spec.worker_port, "bind_address": spec.bind_address},
                              **({"extra": spec.extra_ports} if spec.extra_ports else {})),
                "volumes": spec.volumes,
                "spec_hash": spec.spec_hash(),
            })
            # env as the container's config holds it: the rest is a file (a schema-1 label holds all of it)
            before, after = ws.changed_keys(spec.comparable(plan.before) if plan.before else None, spec.public())
            out["diff"] = {"before": before, "after": after} if plan.actions else {"before": {}, "after": {}}
            if "recreate" in plan.actions:
                out["recreate_reasons"] = ws.recreate_reasons(plan.before, spec, plan.forced)
        else:
            out["diff"] = {"before": {"exists": plan.before is not None}, "after": {"exists": False}} if plan.actions else {"before": {}, "after": {}}
        return out
