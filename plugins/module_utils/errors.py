# -*- coding: utf-8 -*-
# Copyright: perry.fleet contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error family of the collection: every failure a module reports is a PerryError.

Each module has a single ``except PerryError`` that turns it into ``fail_json(**exc.as_fail_kwargs())``;
subclasses only say where the failure came from and may carry the command that ran.
"""

from __future__ import annotations


class PerryError(Exception):
    """A failure with a message that says what to do; ``extra`` goes into the module result."""

    def __init__(self, msg: str, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra

    def as_fail_kwargs(self) -> dict:
        out = {"msg": self.msg}
        out.update({k: v for k, v in self.extra.items() if v is not None})
        return out


class SpecError(PerryError, ValueError):
    """Bad input, found before anything is created."""


class EngineError(PerryError):
    """An engine command failed; carries what ran (redacted), rc, stderr and elapsed seconds."""

    def __init__(self, msg: str, cmd: str = "", rc: int | None = None, stderr: str = "",
                 elapsed: float | None = None):
        super().__init__(msg, cmd=cmd, rc=rc, stderr=stderr,
                         elapsed=round(elapsed, 3) if elapsed is not None else None)
        self.cmd = cmd
        self.rc = rc
        self.stderr = stderr
        self.elapsed = elapsed

    def as_fail_kwargs(self) -> dict:
        out = super().as_fail_kwargs()
        out.setdefault("cmd", self.cmd)
        out.setdefault("stderr", self.stderr)
        out["rc"] = self.rc
        return out


class EngineTimeout(EngineError):
    """An engine command did not finish in time and was killed."""


class WorkspaceError(PerryError):
    """Converging a workspace failed (ports, volumes, create, start, in-container steps)."""


class WorkerError(PerryError):
    """The worker could not be reached or gave an answer that is not what its API promises."""
