# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Perry's state.json entries for the workspaces perry.fleet manages: the entry built from a container's inspect
data, which entries are ours, and the merge that writes ours and leaves every other byte of meaning alone.

Ownership lives outside state.json, because the Perry agent rewrites that file from its own object and would drop
a marker: the sidecar ``<config dir>/.perry-fleet-state.json`` (0600) records, per workspace name, the container id
perry.fleet wrote. An entry is ours only while its ``containerId`` is still the one recorded (an entry Perry
rewrote for a container of its own is Perry's again); an entry with a name we never wrote is never touched.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime, timezone

from ansible_collections.perry.fleet.plugins.module_utils import engine as eng
from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import perry_state_store as store
from ansible_collections.perry.fleet.plugins.module_utils import workspace_info
from ansible_collections.perry.fleet.plugins.module_utils.errors import PerryError, SpecError

SIDECAR_FILE = ".perry-fleet-state.json"
_TIME_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?")


def iso_time(value: str | None) -> str | None:
    """An engine time (RFC 3339, nanoseconds, any offset) as JavaScript's toISOString writes it, None if unreadable."""
    m = _TIME_RE.match(value or "")
    if not m:
        return None
    zone = m.group(3) or "Z"
    zone = "+00:00" if zone == "Z" else (zone if ":" in zone else zone[:3] + ":" + zone[3:])
    when = datetime.fromisoformat(m.group(1) + zone).astimezone(timezone.utc)
    millis = int((m.group(2) or "0")[:3].ljust(3, "0"))
    return when.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % millis


def entry_from_container(container: dict, repo: str | None = None) -> dict:
    """The WorkspaceInfo Perry would hold for this container (the keys perry.fleet manages)."""
    info = workspace_info.describe(container)
    if (eng.labels(container).get(layout.LABEL_MANAGED) or "").lower() != "true":
        raise SpecError("container %s is not a Perry workspace (no label %s=true): Perry would not manage it, so it "
                        "gets no state.json entry; nothing was written" % (info["container"], layout.LABEL_MANAGED))
    if not info["ports"]["ssh"]:
        raise SpecError("workspace %s publishes no SSH port, and Perry's state entry needs one: converge it with "
                        "perry_workspace first" % info["name"])
    entry = {"name": info["name"], "status": "running" if info["running"] else "stopped",
             "containerId": info["container_id"], "created": iso_time(container.get("Created")),
             "ports": {"ssh": info["ports"]["ssh"]}}
    if repo:
        entry["repo"] = repo
    return entry


def owned_ids(sidecar: dict) -> dict:
    """{name: containerId we wrote} from the sidecar (unknown shapes count as nothing owned)."""
    items = sidecar.get("workspaces") if isinstance(sidecar.get("workspaces"), dict) else {}
    return {n: (v or {}).get("containerId") for n, v in items.items() if isinstance(v, dict)}


def is_ours(name: str, entry: dict | None, owned: dict) -> bool:
    if name not in owned:
        return False
    return entry is None or not isinstance(entry, dict) or entry.get("containerId") == owned[name]


def merged(existing: dict | None, wanted: dict) -> dict:
    """Our keys over what the entry holds (Perry's lastUsed, tailscale, startup, other ports stay); ``created``
    stays the workspace's first one, a recreate does not reset it."""
    out = copy.deepcopy(existing) if isinstance(existing, dict) else {}
    ports = out.get("ports") if isinstance(out.get("ports"), dict) else {}
    for key, value in wanted.items():
        if key == "ports":
            out["ports"] = dict(ports, **value)
        elif key == "created" and out.get("created"):
            continue
        elif value is not None:
            out[key] = value
    if not out.get("created"):
        out["created"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return out


def plan(state: dict, sidecar: dict, wanted: dict, remove: list) -> dict:
    """New state and sidecar for ``wanted`` ({name: entry}) present and ``remove`` (names) absent.

    Returns {state, sidecar, written, removed, left_alone, before, after}; state and sidecar are new objects, the
    inputs are not changed. Only entries that are ours (see module doc) are written or removed."""
    new_state = copy.deepcopy(state)
    workspaces = new_state.get("workspaces")
    if workspaces is None:
        workspaces = new_state["workspaces"] = {}
    if not isinstance(workspaces, dict):
        raise SpecError("state.json's 'workspaces' is not an object: fix or move the file; nothing was written")
    owned = owned_ids(sidecar)
    new_owned = dict(owned)
    out = {"written": [], "removed": [], "left_alone": [], "before": {}, "after": {}}
    for name, entry in wanted.items():
        current = workspaces.get(name)
        if current is not None and not is_ours(name, current, owned):
            out["left_alone"].append({"name": name, "reason": "state.json already has an entry %s that perry.fleet "
                                      "did not write (Perry's own); left as it is" % name})
            new_owned.pop(name, None)
            continue
        new = merged(current, entry)
        new_owned[name] = new["containerId"]
        if new != current:
            workspaces[name] = new
            out["written"].append(name)
            out["before"][name], out["after"][name] = current, new
    for name in remove:
        current = workspaces.get(name)
        if current is None:
            new_owned.pop(name, None)
            continue
        if not is_ours(name, current, owned):
            out["left_alone"].append({"name": name, "reason": "the state.json entry %s was not written by "
                                      "perry.fleet (Perry's own); left as it is" % name})
            new_owned.pop(name, None)
            continue
        del workspaces[name]
        new_owned.pop(name, None)
        out["removed"].append(name)
        out["before"][name], out["after"][name] = current, None
    new_sidecar = dict(sidecar)
    new_sidecar["workspaces"] = {n: {"containerId": i} for n, i in sorted(new_owned.items())}
    out.update(state=new_state, sidecar=new_sidecar)
    return out


def _records(owned: dict) -> dict:
    return {n: {"containerId": i} for n, i in sorted(owned.items())}


def _read(cdir) -> tuple:
    state, state_keep = cdir.read_json(store.STATE_FILE, {"workspaces": {}})
    sidecar, sidecar_keep = cdir.read_json(SIDECAR_FILE, {})
    return state, state_keep, sidecar, sidecar_keep


def refuse_if_agent_runs(agents) -> None:
    if agents:
        raise PerryError(
            "a Perry agent runs on this host (%s): it keeps state.json in memory and would overwrite any change. "
            "Stop it (its service, or the `perry agent run` process), run again, then start it; nothing was "
            "written." % "; ".join("pid %d: %s" % (a["pid"], a["cmdline"]) for a in agents), agents=agents)


def converge(path: str, wanted: dict, remove: list, lock_timeout: float, check_mode: bool,
             find_agents=store.perry_agents) -> dict:
    """Plan without the lock; when something changes, refuse while a Perry agent runs, else (not in check mode)
    take Perry's lock, plan again from what is there now and write. Returns plan() plus changed, lock_taken_over."""
    with store.ConfigDir(path) as cdir:
        state, _keep, sidecar, _sidecar_keep = _read(cdir)
    out = plan(state, sidecar, wanted, remove)
    out["changed"] = bool(out["written"] or out["removed"]) or owned_ids(out["sidecar"]) != owned_ids(sidecar)
    out["lock_taken_over"] = False
    if not out["changed"]:
        return out
    refuse_if_agent_runs(find_agents())
    if check_mode:
        return out
    with store.ConfigDir(path, create=bool(wanted)) as cdir, store.StateLock(cdir, lock_timeout) as lock:
        state, state_keep, sidecar, sidecar_keep = _read(cdir)
        out = plan(state, sidecar, wanted, remove)
        out["changed"] = bool(out["written"] or out["removed"]) or owned_ids(out["sidecar"]) != owned_ids(sidecar)
        if out["written"] or out["removed"]:
            # The sidecar names old and new entries before state.json changes, so a crash in between never leaves
            # an entry of ours that the sidecar does not name (it would look like Perry's forever).
            union = dict(sidecar, workspaces=_records(dict(owned_ids(sidecar), **owned_ids(out["sidecar"]))))
            if owned_ids(union) != owned_ids(sidecar):
                lock.check()
                cdir.write_json(SIDECAR_FILE, union, sidecar_keep)
                sidecar = union
            lock.check()
            cdir.write_json(store.STATE_FILE, out["state"], state_keep)
        if owned_ids(out["sidecar"]) != owned_ids(sidecar) or out["sidecar"] != sidecar:
            lock.check()
            cdir.write_json(SIDECAR_FILE, out["sidecar"], sidecar_keep)
        out["lock_taken_over"] = lock.took_over
    return out
