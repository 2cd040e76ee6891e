# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A podman workspace's own container engine, as the workspace role provisions it: the names of its container,
network and volumes, the mount and DOCKER_HOST its workspace gets (one owner of those names: layout.py)."""

from __future__ import annotations

import hashlib
import json

from ansible_collections.perry.fleet.plugins.module_utils import layout


def workspace_engine(name: str, image: str = "") -> dict:
    """{container, network, storage, socket, volumes, docker_host, mount, labels} of workspace ``name``'s engine; the
    ``perry.fleet.engine-spec`` label is a hash of what the engine container is made of (its image), so the role
    finds engines to change with one listing."""
    names = layout.engine_names(name)
    # bump "v" when the role's engine container changes shape (a new option), so existing engines are recreated
    spec = hashlib.sha256(json.dumps({"image": image, "v": 2}, sort_keys=True).encode()).hexdigest()[:16]
    return dict(names, volumes=[names["storage"], names["socket"]], docker_host=layout.ENGINE_DOCKER_HOST,
                mount={"source": names["socket"], "target": layout.ENGINE_SOCKET_DIR},
                labels={layout.LABEL_ENGINE_OF: name, "perry.fleet.engine-spec": spec})


class FilterModule:
    def filters(self):
        return {"workspace_engine": workspace_engine}
