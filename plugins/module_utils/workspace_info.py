# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the engine says about Perry workspaces, read-only: which exist (by Perry's label or by name) and, for
each, its state, ports, image and the limits the engine enforces. Never the environment: secrets may live there on
older workspaces."""

from __future__ import annotations

from ansible_collections.perry.fleet.plugins.module_utils import engine as eng
from ansible_collections.perry.fleet.plugins.module_utils import layout


def find(engine, names: list | None = None, timeout: float | None = None) -> list:
    """Inspect data of the named workspaces' containers, or of every container labelled workspace.managed=true."""
    if names:
        found = engine.inspect([layout.container_name(n) for n in names], timeout=timeout)
        return [found[c] for c in (layout.container_name(n) for n in names) if c in found]
    return engine.list_containers(timeout=timeout, label="%s=true" % layout.LABEL_MANAGED)


def _positive(value):
    """A number from the inspect, None for 0, negative, missing or not a number (the engines' "no limit")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return value


def limits(container: dict) -> dict:
    """Memory (bytes), cpus and pids limit as the engine enforces them (HostConfig), None where unlimited.
    CPUs come from NanoCpus (``--cpus``), else from CpuQuota/CpuPeriod as some podman versions record them."""
    host = container.get("HostConfig") if isinstance(container.get("HostConfig"), dict) else {}
    nano, quota, period = (_positive(host.get(k)) for k in ("NanoCpus", "CpuQuota", "CpuPeriod"))
    cpus = nano / 1e9 if nano else (quota / period if quota and period else None)
    memory, pids = _positive(host.get("Memory")), _positive(host.get("PidsLimit"))
    return {"memory": int(memory) if memory else None, "cpus": round(cpus, 3) if cpus else None,
            "pids": int(pids) if pids else None}


def describe(container: dict) -> dict:
    """One workspace as perry_workspace_info returns it."""
    name = eng.container_name(container)
    labels = eng.labels(container)
    ports = {"ssh": None, "worker": None, "bind_address": None}
    for b in eng.port_bindings(container):
        if b.container_port == "%d/tcp" % layout.SSH_PORT and ports["ssh"] is None:
            ports.update(ssh=b.host_port, bind_address=b.host_ip or "0.0.0.0")
        elif b.container_port == "%d/tcp" % layout.WORKER_PORT and ports["worker"] is None:
            ports["worker"] = b.host_port
    state = container.get("State") if isinstance(container.get("State"), dict) else {}
    return {
        "name": labels.get(layout.LABEL_NAME) or (name[len(layout.PREFIX):] if name.startswith(layout.PREFIX) else name),
        "container": name,
        "container_id": container.get("Id"),
        "state": eng.container_state(container),
        "status": eng.state_detail(container),
        "running": eng.is_running(container),
        "managed_by_collection": layout.LABEL_SPEC_HASH in labels,
        "image": (container.get("Config") or {}).get("Image"),
        "image_id": eng.short_id(container.get("Image")),
        "ports": ports,
        "started_at": state.get("StartedAt"),
        "restart_count": container.get("RestartCount"),
        "limits": limits(container),
    }
