# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SSH from the developers' machines: the workspace's ~/.ssh/authorized_keys made from public key files on the
controller (Perry's ``ssh.global.authorize``), and the ready-to-paste login line. Filters run on the controller,
which is where those key files are."""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleFilterError

from ansible_collections.perry.fleet.plugins.filter.perry import ssh_command

AUTHORIZED_KEYS = "~/.ssh/authorized_keys"
MAX_KEY_FILE = 64 * 1024   # a public key file is a few hundred bytes; anything bigger is not one
# OpenSSH key types, optionally after authorized_keys options (from="...",no-pty ...).
_KEY_RE = re.compile(r"(?:^|\s)(ssh-ed25519|ssh-rsa|ssh-dss|ecdsa-sha2-nistp(?:256|384|521)|"
                     r"sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com)\s+[A-Za-z0-9+/]+={0,3}(\s|$)")


def public_key_problem(text: str) -> str | None:
    """None for the text of a public key file (one or more keys, comments allowed), else what is wrong with it."""
    if "PRIVATE KEY" in text:
        return "is a private key: give the public one (the .pub file next to it); the private key never leaves you"
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        return "is empty"
    for number, line in enumerate(lines, 1):
        if not _KEY_RE.search(line):
            return "line %d is not an OpenSSH public key (expected 'ssh-ed25519 AAAA... comment')" % number
    return None


def _read_key_file(path) -> str:
    full = os.path.expanduser(str(path))
    if not os.path.isfile(full):
        raise AnsibleFilterError("public key file %s to authorize is missing on the controller (or not a file): give "
                                 "the path of a .pub file there. Nothing was created." % path)
    if os.path.getsize(full) > MAX_KEY_FILE:
        raise AnsibleFilterError("public key file %s is larger than %d bytes, so it is not a public key file. "
                                 "Nothing was created." % (path, MAX_KEY_FILE))
    with open(full, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    problem = public_key_problem(text)
    if problem:
        raise AnsibleFilterError("public key file %s %s. Nothing was created." % (path, problem))
    return text


def authorized_keys_file(paths, files=None, workspace: str = "") -> list:
    """[the files entry for ~/.ssh/authorized_keys] holding every key of ``paths`` (in order, duplicates once), or
    [] when there are none. A ``files`` entry of the same destination would fight it: refused."""
    paths = [p for p in (paths or []) if str(p).strip()]
    if not paths:
        return []
    clash = [f for f in (files or []) if isinstance(f, dict)
             and str(f.get("dest", "")).replace("~/", "", 1).lstrip("/") == ".ssh/authorized_keys"]
    if clash:
        raise AnsibleFilterError("workspace %s has both SSH keys to authorize and a files entry for %s: use one of "
                                 "them. Nothing was created." % (workspace or "?", AUTHORIZED_KEYS))
    keys = []
    for path in paths:
        for line in _read_key_file(path).splitlines():
            line = line.strip()
            if line and not line.startswith("#") and line not in keys:
                keys.append(line)
    return [{"dest": AUTHORIZED_KEYS, "content": "\n".join(keys) + "\n", "mode": "0600"}]


def authorized_keys_by_workspace(workspaces, authorize=None, files=None) -> dict:
    """{workspace name: authorized_keys_file(...)} for a workspace role list: ``authorize`` (every workspace's key
    files) then each workspace's own ``ssh_authorize``; ``files`` is the role's shared list, which a workspace's
    own ``files`` replaces."""
    out = {}
    for w in workspaces or []:
        paths = list(authorize or []) + list(w.get("ssh_authorize") or [])
        out[w["name"]] = authorized_keys_file(paths, w["files"] if "files" in w else files, w["name"])
    return out


class FilterModule:
    def filters(self):
        return {
            "public_key_problem": public_key_problem,
            "authorized_keys_file": authorized_keys_file,
            "authorized_keys_by_workspace": authorized_keys_by_workspace,
            "ssh_command": ssh_command,
        }
