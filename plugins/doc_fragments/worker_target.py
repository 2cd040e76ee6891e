# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Which workspaces a worker-facing module talks to, and how it reaches their workers.
    DOCUMENTATION = r'''
options:
  name:
    description:
      - Workspace name (the container is C(workspace-<name>)). Mutually exclusive with O(names).
    type: str
  names:
    description:
      - Several workspaces of this host, handled in parallel in one task. Mutually exclusive with O(name).
    type: list
    elements: str
  transport:
    description:
      - How the host reaches the worker (port 7392). V(exec) runs C(curl) as user C(workspace) inside the
        container, bounded by C(--max-time) and a host-side kill. V(http) sends the request straight to the
        container IP, only when that IP is on a bridge this host is directly attached to and the engine is a rootful
        one on this host. V(published) uses C(127.0.0.1:<host port>) where the workspace publishes 7392 (the podman
        profile does). V(auto) follows the runtime profile, V(http) for docker and for podman V(published) when the
        engine is on this host (its CLI default or a C(unix://) socket) and the workspace publishes 7392, otherwise
        V(exec). A remote or nested engine (C(tcp://), C(ssh://)) is always reached over V(exec).
      - When V(auto) chose V(published) and the worker answers C(401) to this host's token (or the host key cannot
        be read), the request is sent once more over V(exec) with the container's own token file and the workspace
        stays on V(exec) for the task; RV(workspaces[].fallback) says why. An explicit V(published) reports the 401.
      - V(http) and V(published) fall back to V(exec) when they cannot be used safely; the fallback and its reason
        are returned in RV(workspaces[].fallback).
      - Every request carries the workspace's worker token, C(HMAC-SHA256(host key, name)); the worker answers
        C(401) without it, so no workspace can read another's sessions. The host key is a 0600 file of the user
        running the module, created on first use (C(/var/lib/perry-fleet/worker.key) for root,
        C($XDG_STATE_HOME/perry-fleet/worker.key) or C(~/.local/state/perry-fleet/worker.key) otherwise;
        environment variable C(PERRY_FLEET_WORKER_KEY) overrides it); M(perry.fleet.perry_workspace) gives the
        container its token at create. V(exec) sends the container's own token file
        (C(curl -H @/etc/perry/worker.auth)), so the token never appears on the host's command line.
      - Every answer is read whole within the request timeout and at most 4 MiB (64 KiB for C(/health)); a bigger
        or stalled one is an error that says so, never a partial result.
    type: str
    choices: [auto, exec, http, published]
    default: auto
'''
