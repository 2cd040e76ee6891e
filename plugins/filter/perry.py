# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that give the roles the collection's own answers instead of copies of them in Jinja."""

from __future__ import annotations

from ansible_collections.perry.fleet.plugins.module_utils.engine import cli_kind, command_env, command_prefix
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import get_profile


def runtime_profile(runtime: str) -> dict:
    """The runtime profile table's row for ``runtime`` (docker or podman)."""
    return get_profile(runtime).as_dict()


def engine_command(cli: str, url: str = "") -> list:
    """argv prefix that runs the engine CLI against ``url`` (podman: --url; docker: see engine_environment)."""
    return command_prefix(cli, url or None)


def engine_environment(cli: str, url: str = "") -> dict:
    """Environment the engine CLI needs for ``url`` (DOCKER_HOST for the docker CLI)."""
    return command_env(url or None, cli_kind(cli))


class FilterModule:
    def filters(self):
        return {
            "runtime_profile": runtime_profile,
            "engine_command": engine_command,
            "engine_environment": engine_environment,
        }
