# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Coding agents' versions changed in place, in a running workspace (no image rebuild, no recreate).

The image installs each agent under /usr/local (npm global) with its command in /usr/local/bin. A wanted version
that differs is installed by root inside the container into its own directory, AGENTS_ROOT/<agent>/<version> (the
container's layer: root-owned, so the workspace user can plant nothing the root side would follow), checked
against its pinned npm integrity, run once with ``--version``, and only then switched to by renaming a new link
over /usr/local/bin/<command> (atomic: a shell sees the old or the new agent, never none). Older version
directories stay while a process still runs from them, so an agent at work keeps its files until it exits; the
image's own install is never removed. A failed install leaves the old version in place and reports the
installer's last words. A recreated container starts from its image again; the next run installs again.

Two execs per workspace at most: one reads the current versions (also in check mode), one installs and switches
(the whole script under ``timeout`` inside the container too, so a stalled registry cannot outlive the task).
"""

from __future__ import annotations

import re

from ansible_collections.perry.fleet.plugins.module_utils.engine import exec_argv
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError, EngineTimeout, SpecError, WorkspaceError

# agent key (as the image role's perry_image_<key>_version) -> (npm package, command)
AGENTS = {
    "claude_code": ("@anthropic-ai/claude-code", "claude"),
    "opencode": ("opencode-ai", "opencode"),
    "codex": ("@openai/codex", "codex"),
    "pi": ("@mariozechner/pi-coding-agent", "pi"),
}
AGENTS_ROOT = "/opt/perry/agents"
BIN_DIR = "/usr/local/bin"
IMAGE_MODULES = "/usr/local/lib/node_modules"
VERSION_RE = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.-]+)?$")
INTEGRITY_RE = re.compile(r"^sha512-[A-Za-z0-9+/]{86}==$")
REGISTRY_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[^\s;&|`$'\"\\]*)?$")
MAX_READ = 64 * 1024
MAX_LOG = 256 * 1024


def validate(agents) -> dict:
    """{agent: {version, integrity}} with only the agents to manage (an entry without a version is left alone)."""
    if not isinstance(agents, dict):
        raise SpecError("agents must be a dict such as {pi: {version: 0.73.1, integrity: sha512-...}}")
    out = {}
    for key, want in agents.items():
        if key not in AGENTS:
            raise SpecError("agents: unknown agent %r; known: %s" % (key, ", ".join(sorted(AGENTS))))
        if not isinstance(want, dict) or set(want) - {"version", "integrity"}:
            raise SpecError("agents.%s must be a dict with keys version and integrity" % key)
        version, integrity = str(want.get("version") or ""), str(want.get("integrity") or "")
        if not version:
            continue
        if not VERSION_RE.match(version):
            raise SpecError("agents.%s.version %r is not a version such as 1.2.3" % (key, version))
        if not INTEGRITY_RE.match(integrity):
            raise SpecError("agents.%s.integrity must be the registry's sha512 integrity of %s@%s (sha512-<86 base64 "
                            "characters>==, from: npm view %s@%s dist.integrity)"
                            % (key, AGENTS[key][0], version, AGENTS[key][0], version))
        out[key] = {"version": version, "integrity": integrity}
    return out


def validate_registry(url: str) -> str:
    if url and not REGISTRY_RE.match(url):
        raise SpecError("registry %r is not an http(s) URL such as https://registry.npmjs.org/" % url)
    return url


# Prints one line per agent: "<agent> <current version or none> <image version or none>". Root, read-only, no
# link followed out of the root-owned trees (readlink only reads the link itself).
READ_SCRIPT = r"""
set -u
while [ $# -gt 0 ]; do
  agent=$1 pkg=$2 bin=$3; shift 3
  image=none
  if [ -f "%(modules)s/$pkg/package.json" ] && [ ! -L "%(modules)s/$pkg" ]; then
    image=$(head -c %(cap)d "%(modules)s/$pkg/package.json" | jq -r '.version // "none"' 2>/dev/null || echo none)
  fi
  current=none
  target=$(readlink "%(bin)s/$bin" 2>/dev/null || true)
  case "$target" in
    %(root)s/$agent/*/bin/$bin) v=${target#%(root)s/$agent/}; current=${v%%%%/*} ;;
    "") ;;
    *) current=$image ;;
  esac
  echo "$agent $current $image"
done
""" % {"modules": IMAGE_MODULES, "bin": BIN_DIR, "root": AGENTS_ROOT, "cap": MAX_READ}


# Installs (when missing) and switches to each listed version, in order; stops at the first failure, which leaves
# that agent's link as it was. "$agent $version image" switches back to the image's own install.
INSTALL_SCRIPT = r"""
set -eu
umask 022
# setsid made this shell a session leader: on the outer timeout's TERM every process it started goes (perry-npm-fetch
# runs npm under its own timeout, in another process group). Long steps run through `run` (background + wait),
# because a shell defers a trap until a foreground command ends.
trap 'pkill -KILL -s $$; exit 124' TERM
run() { "$@" & wait $!; }
registry=$1; shift
mkdir -p %(root)s
exec 9>%(root)s/.lock
flock -w 60 9 || { echo "another perry.fleet install holds %(root)s/.lock for over 60 s" >&2; exit 1; }
PATH=/usr/local/sbin:/usr/local/bin:$PATH   # npm, node and perry-npm-fetch (root-owned directories)
# Whether a process runs from version directory $1 or through the agent's command $2 (a node agent started as
# /usr/local/bin/<command> shows only that path, not which version it loaded: then every old version stays).
in_use() {
  for p in /proc/[0-9]*; do
    c=$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null) || continue
    case "$c" in *"$1"*|*"$2"*) return 0 ;; esac
    e=$(readlink "$p/exe" 2>/dev/null) || true
    case "$e" in "$1"*) return 0 ;; esac
  done
  return 1
}
switch() {  # link path, target: a new link renamed over the old one
  ln -sfn "$2" "$1.perry-new" && mv -fT "$1.perry-new" "$1"
}
while [ $# -gt 0 ]; do
  agent=$1 pkg=$2 bin=$3 version=$4 integrity=$5; shift 5
  dir=%(root)s/$agent
  mkdir -p "$dir"
  rm -rf "$dir"/.partial.*   # left by an install that was killed (we hold the lock)
  previous=$(readlink "%(bin)s/$bin" 2>/dev/null || true)
  if [ "$integrity" = image ]; then
    rel=$(head -c %(cap)d "%(modules)s/$pkg/package.json" | jq -r --arg b "$bin" '.bin | if type == "string" then . else .[$b] end')
    switch "%(bin)s/$bin" "%(modules)s/$pkg/$rel"
  else
    if [ ! -e "$dir/$version/.perry-complete" ]; then
      tmp=$(mktemp -d "$dir/.partial.XXXXXX")
      trap 'rm -rf "$tmp"' EXIT
      export npm_config_cache="$tmp/cache" npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
      export npm_config_fetch_retries=1 npm_config_fetch_timeout=60000
      if [ -n "$registry" ]; then export npm_config_registry="$registry"; fi
      echo "perry.fleet: installing $pkg@$version into $dir/$version" >&2
      run perry-npm-fetch "$pkg@$version" "$integrity" "$tmp/dl" > "$tmp/tgz"
      run npm install --global --prefix "$tmp/prefix" --engine-strict "$(cat "$tmp/tgz")" >&2
      run timeout -k 5 60 "$tmp/prefix/bin/$bin" --version > "$tmp/version" 2>&1 || {
        echo "$bin --version failed: $(head -c 2000 "$tmp/version")" >&2; exit 1; }
      out=$(head -c 2000 "$tmp/version")
      case "$out" in *"$version"*) ;; *) echo "$bin --version says '$out', not $version" >&2; exit 1 ;; esac
      rm -rf "$dir/$version"
      mv -T "$tmp/prefix" "$dir/$version"
      touch "$dir/$version/.perry-complete"
      rm -rf "$tmp"; trap - EXIT
    fi
    switch "%(bin)s/$bin" "$dir/$version/bin/$bin"
  fi
  # Keep the version now in use and the one just left; older ones go once no process runs from them.
  for old in "$dir"/*/; do
    old=${old%%/}
    case "$previous" in "$old"/*) continue ;; esac
    [ "$old" = "$dir/$version" ] && continue
    [ -d "$old" ] || continue
    in_use "$old/" "%(bin)s/$bin" || rm -rf "$old"
  done
  echo "switched $agent $version"
done
""" % {"modules": IMAGE_MODULES, "bin": BIN_DIR, "root": AGENTS_ROOT, "cap": MAX_READ}


def read_argv(agents) -> list:
    args = []
    for key in agents:
        args += [key, AGENTS[key][0], AGENTS[key][1]]
    return ["/bin/sh", "-c", READ_SCRIPT, "sh"] + args


def parse_read(stdout: str) -> dict:
    """{agent: (current, image)} with None for "none"."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in AGENTS:
            out[parts[0]] = tuple(None if p == "none" else p for p in parts[1:])
    return out


def plan(wanted: dict, read: dict) -> list:
    """[(agent, version, integrity or "image")] for the agents whose current version differs."""
    steps = []
    for key, want in wanted.items():
        current, image = read.get(key, (None, None))
        if current == want["version"]:
            continue
        steps.append((key, want["version"], "image" if image == want["version"] else want["integrity"]))
    return steps


def install_argv(timeout: float, registry: str, steps) -> list:
    args = [registry or ""]
    for key, version, integrity in steps:
        args += [key, AGENTS[key][0], AGENTS[key][1], version, integrity]
    # timeout inside the container as well: killing the host-side exec client does not stop the process in there.
    return ["timeout", "-k", "5", "%d" % max(1, int(timeout)), "setsid", "/bin/sh", "-c", INSTALL_SCRIPT, "sh"] + args


def converge(engine, container: str, wanted: dict, timeout: float, registry: str = "", check_mode: bool = False) -> dict:
    """Bring one workspace's agents to ``wanted``: {"changed", "agents": {agent: {"before", "after", "image"}}}."""
    if not wanted:
        return {"changed": False, "agents": {}}
    try:
        res = engine.run(exec_argv(container, read_argv(wanted), "root"), timeout=min(timeout, 60), max_output=MAX_READ)
    except EngineError as exc:
        raise WorkspaceError("reading the agents' versions in %s failed: %s"
                             % (container, exc.stderr.strip()[-1000:] or exc.msg)) from None
    read = parse_read(res.stdout)
    steps = plan(wanted, read)
    report = {k: {"before": read.get(k, (None, None))[0], "after": w["version"], "image": read.get(k, (None, None))[1]}
              for k, w in wanted.items()}
    if steps and not check_mode:
        try:
            engine.run(exec_argv(container, install_argv(timeout, registry, steps), "root"), timeout=timeout + 15,
                       max_output=MAX_LOG)
        except EngineError as exc:
            words = (exc.stderr or "").strip()
            if isinstance(exc, EngineTimeout) or (exc.rc in (124, 137) and (exc.elapsed or 0) >= timeout - 1):
                words = "no end within timeout=%g s (a stalled registry? raise timeout or set registry): %s" % (timeout, words[-1000:])
            raise WorkspaceError("installing %s in %s failed, the old version stays in use: %s"
                                 % (", ".join("%s %s" % (k, v) for k, v, _integrity in steps), container,
                                    words[-1500:] or exc.msg)) from None
    return {"changed": bool(steps), "agents": report}
