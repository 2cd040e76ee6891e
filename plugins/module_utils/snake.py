# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Result keys in snake_case, as Ansible users expect: the worker's JSON is camelCase (agentType, lastActivity,
sessionCount), and module results pass through it."""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """``lastActivity`` -> ``last_activity``, ``toolID`` -> ``tool_id``; a name already in snake_case is unchanged."""
    return _BOUNDARY.sub("_", name).lower() if isinstance(name, str) else name


def snake_keys(mapping: dict) -> dict:
    """The mapping's own keys in snake_case (values untouched: they are data, such as a tool's input)."""
    return {snake_case(k): v for k, v in mapping.items()}
