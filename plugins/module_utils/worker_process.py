# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The worker process inside a workspace: how it is recognised, started, stopped and how its log is read.

Everything here runs as the workspace user (the worker's own user: no root needed to signal or start it) and is
bounded by the caller's timeout. The image's entrypoint (roles/image/files/entrypoint.sh) supervises the worker
with the same PATTERN (a unit test keeps the two equal); images without that supervisor get the worker started here.
"""

from __future__ import annotations

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils.errors import EngineError

# The worker itself: "/usr/local/bin/perry worker serve" (binary, or Perry's `nohup perry worker serve`) and
# "bun /usr/local/lib/perry/current/cli.js worker serve" (JS dist behind the wrapper). "(^|/)" keeps wrapper shells
# ("sh -c '... perry worker serve'") out; the bracket keeps the pkill/pgrep command line from matching itself.
PATTERN = "(^|/)[p]erry( |/current/cli[.]js )worker serve"
SUPERVISOR = "/usr/local/bin/perry-entrypoint"
LOG_LINES = 20
LOG_TAIL_BYTES = 8192   # a worker may log one huge line: the tail is cut by bytes first, then by lines
# The log is the workspace user's file: read it only when it is a regular file (a FIFO would block, a link to a
# device never end); the host also reads at most LOG_TAIL_BYTES of the output.
LOG_TAIL_SCRIPT = '[ -f "$1" ] && [ ! -L "$1" ] && exec tail -c "$2" "$1"'

# Started detached from the exec as Perry does (nohup, log in /tmp). "$P worker serve" never matches
# PATTERN, so this shell is never taken for the worker.
START_SCRIPT = ('if [ -x {bin} ]; then P={bin}; else P=perry; fi; cd {home} 2>/dev/null || cd /; '
                'HOME={home} nohup "$P" worker serve >{log} 2>&1 </dev/null &').format(
                    bin=layout.WORKER_BIN, home=layout.HOME, log=layout.WORKER_LOG)
# Stop, then start unless the image's supervisor will (it restarts a killed worker within about 2 s).
RESTART_SCRIPT = "pkill -f '{pattern}'; [ -x {supervisor} ] || {{ {start} }}".format(
    pattern=PATTERN, supervisor=SUPERVISOR, start=START_SCRIPT)


def _run(engine, container: str, argv: list, timeout: float, max_output: int | None = None):
    if max_output is None:
        return engine.run(["exec", "-u", layout.USER, container] + argv, timeout=timeout, check=False)
    return engine.run(["exec", "-u", layout.USER, container] + argv, timeout=timeout, check=False,
                      max_output=max_output)


def stop(engine, container: str, timeout: float):
    """pkill the worker; rc 0 killed, 1 none was running."""
    return _run(engine, container, ["pkill", "-f", PATTERN], timeout)


def find(engine, container: str, timeout: float):
    """pgrep the worker; rc 0 when one runs."""
    return _run(engine, container, ["pgrep", "-f", PATTERN], timeout)


def start(engine, container: str, timeout: float):
    return _run(engine, container, ["sh", "-c", START_SCRIPT], timeout)


def restart(engine, container: str, timeout: float):
    """One exec: stop the worker, start the new one when no supervisor does."""
    return _run(engine, container, ["sh", "-c", RESTART_SCRIPT], timeout)


def log_tail(engine, container: str, timeout: float, lines: int = LOG_LINES) -> str | None:
    """The last lines of the worker's log (at most LOG_TAIL_BYTES), or None when they cannot be read in time."""
    try:
        res = _run(engine, container, ["/bin/sh", "-c", LOG_TAIL_SCRIPT, "sh", layout.WORKER_LOG, str(LOG_TAIL_BYTES)],
                   timeout, max_output=LOG_TAIL_BYTES)
    except EngineError:
        return None
    if res.rc != 0 and not getattr(res, "truncated", False):
        return None
    return "\n".join(res.stdout.rstrip("\n").split("\n")[-lines:])
