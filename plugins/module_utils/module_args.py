# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options modules share, and turning them into objects: the engine (doc_fragments/engine.py) and the worker
target (doc_fragments/worker_target.py)."""

from __future__ import annotations

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import transport
from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError


def engine_argument_spec() -> dict:
    return dict(
        runtime=dict(type="str", default="docker", choices=["docker", "podman"]),
        engine_cli=dict(type="str"),
        engine_url=dict(type="str"),
        engine_timeout=dict(type="float", default=60),
    )


def worker_target_argument_spec() -> dict:
    """name | names and transport, for modules that talk to workers; pass WORKER_TARGET_RULES to AnsibleModule."""
    return dict(
        name=dict(type="str"),
        names=dict(type="list", elements="str"),
        transport=dict(type="str", default="auto", choices=list(transport.TRANSPORTS)),
    )


WORKER_TARGET_RULES = dict(mutually_exclusive=[("name", "names")], required_one_of=[("name", "names")])


def make_engine(params: dict, secrets=()) -> Engine:
    """Raises SpecError with advice when the CLI is missing or the URL is malformed."""
    if params["engine_timeout"] <= 0:
        raise SpecError("engine_timeout must be greater than 0 seconds")
    return Engine(cli=params.get("engine_cli") or params["runtime"], url=params.get("engine_url"),
                  default_timeout=params["engine_timeout"], secrets=list(secrets))


def workspace_names(params: dict) -> list:
    """Validated, de-duplicated workspace names from the name/names options."""
    out = ([params["name"]] if params.get("name") else []) + list(params.get("names") or [])
    if not out:
        raise SpecError("give the workspace in name or names")
    return list(dict.fromkeys(layout.validate_name(n) for n in out))


def make_targets(engine, params: dict, timeout: float | None = None) -> list:
    """A transport.Target per named workspace, from one batched inspect."""
    return transport.resolve_targets(engine, workspace_names(params), params["transport"], params["runtime"],
                                     timeout=timeout)
