"""An in-memory engine for unit tests: same interface as engine.Engine, no processes."""

from __future__ import annotations

import itertools
import json

from ansible_collections.perry.fleet.plugins.module_utils.engine import EngineError, Result, _match_names


class EngineVerbs:
    """engine.Engine's convenience verbs, on top of a fake's run()."""

    def pull(self, ref, timeout=None):
        return self.run(["pull", ref], timeout=timeout)

    def copy_into(self, src, container, dest, timeout=None):
        return self.run(["cp", src, "%s:%s" % (container, dest)], timeout=timeout)


class FakeEngine(EngineVerbs):
    kind = "docker"
    url = None

    def __init__(self, images=("localhost/perry:latest",)):
        self.images = {ref: {"Id": "sha256:%064d" % i, "RepoTags": [ref]} for i, ref in enumerate(images, 1)}
        self.containers = {}
        self.volumes = set()
        self.volume_labels = {}   # volume -> labels given at create
        self.commands = []
        self.files_seen = {}
        self.stdin_seen = []   # what reached in-container execs on stdin (file contents travel there, never argv)
        self._ids = itertools.count(1)

    def describe(self, args):
        return "fake " + " ".join(args)

    def inspect(self, names, timeout=None):
        self.commands.append({"cmd": self.describe(["inspect"] + list(names))})
        return _match_names(list(names), list(self.containers.values()) + list(self.images.values()))

    def store_root(self, timeout=None):
        return "/fake/storage"   # one engine for every fake: its port claims are its own, never another engine's

    def list_containers(self, timeout=None, label=None):
        self.commands.append({"cmd": "fake ps"})
        return list(self.containers.values())

    def run(self, args, timeout=None, check=True, stdin=None, record=True, max_output=None, pass_fds=()):
        if record:
            self.commands.append({"cmd": self.describe(args)})
        if stdin is not None:
            self.stdin_seen.append(stdin)
        verb = args[0]
        if verb == "create":
            return Result(0, self._create(args) + "\n", "", 0.0)
        if verb == "start":
            self.containers[args[1]]["State"]["Running"] = True
        elif verb == "stop":
            self.containers[args[-1]]["State"].update(Running=False, Paused=False)
        elif verb == "pause":
            self.containers[args[-1]]["State"]["Paused"] = True
        elif verb == "unpause":
            self.containers[args[-1]]["State"]["Paused"] = False
        elif verb == "rm":
            self.containers.pop(args[-1], None)
        elif verb == "rename":
            container = self.containers.pop(args[1])
            container["Name"] = "/" + args[2]
            self.containers[args[2]] = container
        elif verb == "ps" and "--filter" in args:
            vol = args[args.index("--filter") + 1].split("=", 1)[1]
            users = [n for n, c in self.containers.items() if any(m.get("Name") == vol for m in c.get("Mounts", []))]
            return Result(0, "\n".join(users), "", 0.0)
        elif verb == "exec":
            container = args[args.index("--env") + 2] if "--env" in args else args[1]  # after exec_argv's options
            state = self.containers[container]["State"]
            return Result(0 if state["Running"] and not state.get("Paused") else 1, "", "", 0.0)
        elif verb == "volume" and args[1] == "ls":
            return Result(0, "\n".join(sorted(self.volumes)), "", 0.0)
        elif verb == "volume" and args[1] == "inspect":
            found = [{"Name": v, "Labels": self.volume_labels.get(v) or None} for v in args[2:] if v in self.volumes]
            missing = [v for v in args[2:] if v not in self.volumes]
            return Result(1 if missing else 0, json.dumps(found),
                          "".join("Error: no such volume %s\n" % v for v in missing), 0.0)
        elif verb == "volume" and args[1] == "create":
            self.volumes.add(args[-1])
            self.volume_labels[args[-1]] = dict(a.split("=", 1) for a, flag in zip(args[1:], args) if flag == "--label")
        elif verb == "volume" and args[1] == "rm":
            self.volumes.discard(args[-1])
            self.volume_labels.pop(args[-1], None)
        elif verb == "update":   # docker's: the limits in HostConfig; 0 leaves a value as it is
            hc = self.containers[args[-1]]["HostConfig"]
            hc.update({k: v for k, v in _limits(args).items() if v or k == "PidsLimit"})
        elif verb == "pull":
            raise EngineError("pull failed", cmd=self.describe(args), rc=1, stderr="no registry")
        return Result(0, "", "", 0.0)

    def _create(self, args):
        name = args[args.index("--name") + 1]
        if name in self.containers:
            raise EngineError("name in use", rc=125)
        files = {}
        for flag in ("--env-file", "--label-file"):
            with open(args[args.index(flag) + 1]) as fh:
                files[flag] = dict(line.rstrip("\n").split("=", 1) for line in fh)
        self.files_seen[name] = files
        bindings = {}
        for i, a in enumerate(args):
            if a == "-p":
                host_ip, host_port, cport = args[i + 1].split(":")
                bindings[cport] = [{"HostIp": host_ip, "HostPort": host_port}]
        mounts = [{"Name": a.split(":")[0], "Destination": a.split(":")[1]}
                  for a, flag in zip(args[1:], args) if flag == "-v"]
        cid = "%064d" % next(self._ids)
        image = self.images[args[-1]]
        self.containers[name] = {
            "Id": cid, "Name": "/" + name, "Image": image["Id"], "State": {"Running": False},
            "Config": {"Labels": files["--label-file"], "Env": ["%s=%s" % kv for kv in files["--env-file"].items()]},
            "HostConfig": dict({"PortBindings": bindings, "Privileged": "--privileged" in args}, **_limits(args)),
            "NetworkSettings": {"Ports": {}}, "Mounts": mounts,
        }
        return cid


def _limits(args) -> dict:
    """HostConfig's Memory/MemorySwap/NanoCpus/PidsLimit as docker sets them from create or update flags."""
    from ansible_collections.perry.fleet.plugins.module_utils.workspace_spec import memory_bytes
    flags = dict(zip(args, args[1:]))
    out = {}
    if "--memory" in flags:
        out["Memory"] = memory_bytes(flags["--memory"])
        out["MemorySwap"] = memory_bytes(flags["--memory-swap"]) if "--memory-swap" in flags else 2 * out["Memory"]
    if "--cpus" in flags:
        out["NanoCpus"] = int(round(float(flags["--cpus"]) * 1e9))
    if "--pids-limit" in flags:
        out["PidsLimit"] = max(int(flags["--pids-limit"]), 0)
    return out
