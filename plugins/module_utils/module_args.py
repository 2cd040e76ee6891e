# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options modules share, and turning them into objects: the engine (doc_fragments/engine.py) and the worker
target (doc_fragments/worker_target.py); the result of a module that handles each named workspace in parallel."""

from __future__ import annotations

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import transport
from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine
from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError
from ansible_collections.perry.fleet.plugins.module_utils.parallel import run_parallel


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


def exit_per_workspace(module, engine, names: list, one, empty: dict) -> None:
    """Run ``one(name)`` for every workspace in parallel and exit the module: changed if any changed, a failure
    naming each workspace that failed (the others' results are still returned), ``empty`` for each when
    ``one`` is None (nothing to manage). A result's ``diff`` ({before, after}) goes into the task's diff;
    ``commands`` are the engine commands that ran."""
    results = []
    for name, res in zip(names, run_parallel(one, names) if one else [empty] * len(names)):
        if isinstance(res, Exception):
            results.append(dict(empty, name=name, error=str(res)))
        else:
            results.append(dict(res, name=name))
    failed = [r["name"] for r in results if r.get("error")]
    out = dict(changed=any(r["changed"] for r in results), workspaces=results, failed_names=failed,
               commands=engine.commands)
    diffs = {r["name"]: r.pop("diff") for r in results if "diff" in r}
    if diffs:  # one diff for the task, keyed by workspace
        out["diff"] = {"before": {n: d["before"] for n, d in diffs.items()}, "after": {n: d["after"] for n, d in diffs.items()}}
    if failed:
        module.fail_json(msg="; ".join("%s: %s" % (r["name"], r["error"]) for r in results if r.get("error")), **out)
    module.exit_json(**out)
