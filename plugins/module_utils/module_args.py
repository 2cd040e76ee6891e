# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options modules share: the engine (doc_fragments/engine.py) and the worker target (doc_fragments/worker_target.py)."""

from __future__ import annotations

from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine
from ansible_collections.perry.fleet.plugins.module_utils.transport import TRANSPORTS


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
        transport=dict(type="str", default="auto", choices=list(TRANSPORTS)),
    )


WORKER_TARGET_RULES = dict(mutually_exclusive=[("name", "names")], required_one_of=[("name", "names")])


def make_engine(params: dict, secrets=()) -> Engine:
    """Raises ValueError with advice when the CLI is missing or the URL is malformed."""
    if params["engine_timeout"] <= 0:
        raise ValueError("engine_timeout must be greater than 0 seconds")
    return Engine(cli=params.get("engine_cli") or params["runtime"], url=params.get("engine_url"),
                  default_timeout=params["engine_timeout"], secrets=list(secrets))
