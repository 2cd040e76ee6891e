"""Every case of bad_inputs.CASES fails with a clear message and leaves nothing behind.

Module cases run the module's Python file directly (run_module_direct: no ansible-playbook start-up);
the role cases of each role run in ONE ansible-playbook (one block/rescue per case, the failure recorded
per case id), so the whole file stays well under a minute and a half. Engine: rootful podman (and
dockerd for the runtime=docker cases). Nothing here talks to a network address other than 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from bad_inputs import CASES
from topology import TOPOLOGIES, random_prefix, run_module_direct, run_playbook

BASE = "localhost/perry-base:bookworm"  # imported into every engine by scripts/setup-testbed
PWNED = "/tmp/perry-pwned"
MODULE_CASES = [c for c in CASES if not c.target.startswith("role:")]
ROLE_CASES = [c for c in CASES if c.target.startswith("role:")]
BASE_ARGS = {
    "perry_workspace": {"runtime": "podman", "engine_cli": "podman", "engine_timeout": 30},
    "perry_worker_health": {"runtime": "podman", "engine_cli": "podman", "timeout": 3},
    "perry_sessions": {"runtime": "podman", "engine_cli": "podman", "request_timeout": 3},
    "perry_state": {"runtime": "podman", "engine_cli": "podman", "engine_timeout": 30},
}


def fill(value, subs: dict):
    """Replace the placeholders of bad_inputs ($P, $TAKEN_PORT, $DIST) in nested args."""
    if isinstance(value, dict):
        return {fill(k, subs): fill(v, subs) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, subs) for v in value]
    if isinstance(value, str):
        if value == "$TAKEN_PORT":
            return subs["$TAKEN_PORT"]
        for key in ("$TAKEN_PORT", "$DIST", "$P"):
            value = value.replace(key, str(subs[key]))
    return value


def remove(prefix: str, runtimes=("podman",)) -> None:
    for runtime in runtimes:
        topo = TOPOLOGIES["docker" if runtime == "docker" else "podman-rootful"]
        topo.cleanup(prefix)
        images = [n for n in topo.cli("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout.split() if prefix in n]
        if images:
            topo.cli("rmi", "-f", *images, check=False, timeout=120)


def lock_is_free(path: str) -> bool:
    return subprocess.run(["flock", "-n", path, "true"], capture_output=True, timeout=10, check=False).returncode == 0


def assert_clear(msg, case):
    assert msg, "%s: failed without a message" % case.id
    assert "Traceback" not in msg and "MODULE FAILURE" not in msg, "%s: not a clear message: %s" % (case.id, msg[-1500:])
    assert case.expect in msg, "%s: %r not in %r" % (case.id, case.expect, msg[-1500:])


@pytest.fixture(scope="module")
def scratch():
    """A held port (listener on 127.0.0.1), a fake worker dist, a private port lock and TMPDIR, and a small
    image with a CMD (so a case that wrongly gets as far as create/start would really create and start)."""
    tmp = tempfile.mkdtemp(prefix="perry-bad-input-")
    dist = os.path.join(tmp, "dist")
    os.makedirs(dist)
    with open(os.path.join(dist, "cli.js"), "w") as fh:
        fh.write("// not a worker; never synced: every case fails before the sync\n")
    tmpdir = os.path.join(tmp, "tmpdir")
    os.makedirs(tmpdir)
    prefix = random_prefix()
    image = "localhost/%sbad-input:t" % prefix
    for name in ("podman-rootful", "docker"):
        res = TOPOLOGIES[name].cli("build", "-q", "-t", image, "-", input="FROM %s\nCMD [\"sleep\", \"infinity\"]\n" % BASE,
                                   check=False, timeout=300)
        assert res.returncode == 0, res.stderr
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield {"$TAKEN_PORT": sock.getsockname()[1], "$DIST": dist, "lock": os.path.join(tmp, "ports.lock"),
               "tmpdir": tmpdir, "root": tmp, "image": image}
    finally:
        sock.close()
        for name in ("podman-rootful", "docker"):
            TOPOLOGIES[name].cli("rmi", "-f", image, check=False, timeout=120)
        subprocess.run(["rm", "-rf", tmp], timeout=60, check=False)


@pytest.fixture(scope="module")
def module_results(scratch):
    """Every module case, 8 at a time: {case id: (result, seconds, prefix, runtimes)}, then ONE look at the
    engines' containers, volumes and images, the private TMPDIR and the private port lock."""
    old_tmpdir = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = scratch["tmpdir"]  # the modules' env/label/staging files land here, if any

    def one(case):
        prefix = random_prefix()
        args = dict(BASE_ARGS[case.target])
        if case.target == "perry_workspace":
            args.update(image=scratch["image"], port_lock_path=scratch["lock"])
        if case.target == "perry_state":
            args.update(config_dir=os.path.join(scratch["root"], "perry-config"))   # never created by a bad case
        args.update(fill(case.args, dict(scratch, **{"$P": prefix})))
        runtimes = ("docker",) if args.get("runtime") == "docker" else ("podman",)
        try:
            result, elapsed = run_module_direct("perry.fleet." + case.target, args, timeout=60)
        except (AssertionError, subprocess.TimeoutExpired) as exc:
            result, elapsed = {"failed": None, "msg": "no result: %s" % exc}, None
        return case.id, (result, elapsed, prefix, runtimes)

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = dict(pool.map(one, MODULE_CASES))
    finally:
        if old_tmpdir is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = old_tmpdir
    state = {"objects": engine_objects(), "tmp": sorted(os.listdir(scratch["tmpdir"])),
             "lock_free": not os.path.exists(scratch["lock"]) or lock_is_free(scratch["lock"]),
             "perry_config": os.path.exists(os.path.join(scratch["root"], "perry-config"))}
    yield results, state
    for result, _unused, prefix, runtimes in results.values():
        if [o for o in state["objects"] if prefix in o]:
            remove(prefix, runtimes)


def engine_objects(runtimes=("podman", "docker")) -> list:
    """'<runtime> <kind> <name>' for every container, volume and image of the engines."""
    found = []
    for runtime in runtimes:
        topo = TOPOLOGIES["docker" if runtime == "docker" else "podman-rootful"]
        for what, listed in (("container", topo.cli("ps", "-a", "--format", "{{.Names}}", timeout=60).stdout.split()),
                             ("volume", topo.volume_names()),
                             ("image", topo.cli("images", "--format", "{{.Repository}}", timeout=60).stdout.split())):
            found += ["%s %s %s" % (runtime, what, n) for n in listed]
    return found


@pytest.mark.parametrize("case", MODULE_CASES, ids=[c.id for c in MODULE_CASES])
def test_module_bad_input(case, module_results):
    results, state = module_results
    result, elapsed, prefix, _unused = results[case.id]
    assert result.get("failed"), "%s: did not fail: %s" % (case.id, json.dumps(result)[-1500:])
    assert_clear(result.get("msg"), case)
    assert elapsed < 20, "%s: took %.1f s to refuse bad input" % (case.id, elapsed)
    assert not [o for o in state["objects"] if prefix in o], "%s left %s" % (case.id, [o for o in state["objects"] if prefix in o])
    assert not state["tmp"], "temp files left behind: %s" % state["tmp"]
    assert state["lock_free"], "the port lock is still held"
    assert not state["perry_config"], "a perry_state case created Perry's config directory"
    assert not os.path.exists(PWNED), "a shell metacharacter was executed"


ROLE_BASE = {
    "role:workspace": lambda p, s: {
        "perry_workspace_runtime": "podman", "perry_workspace_image": s["image"], "perry_workspace_list": [{"name": p + "ws"}],
        "perry_workspace_worker_source": s["$DIST"], "perry_workspace_engine_timeout": 30,
        "perry_workspace_health_timeout": 5},
    "role:image": lambda p, s: {
        "perry_image_engine": "podman", "perry_image_engine_cli": "podman", "perry_image_runtime": "podman",
        "perry_image_name": "localhost/%simg:t" % p, "perry_image_base": BASE,
        "perry_image_work_dir": os.path.join(s["root"], "image-work"), "perry_image_build_timeout": 60,
        "perry_image_build_retries": 0, "perry_image_claude_code_version": "", "perry_image_opencode_version": "",
        "perry_image_codex_version": "", "perry_image_pi_version": "", "perry_image_gh_version": ""},
}


@pytest.fixture(scope="module")
def role_results(scratch):
    """All role cases, one playbook per role: {case id: {'failed', 'msg', 'task', 'prefix'}}."""
    out = {}
    for role in ("role:workspace", "role:image"):
        cases = [c for c in ROLE_CASES if c.target == role]
        prefixes = {c.id: random_prefix() for c in cases}
        results_file = os.path.join(scratch["root"], "%s.json" % role.split(":")[1])
        tasks = [{"name": "no results yet", "ansible.builtin.set_fact": {"bad_results": {}}}]
        for c in cases:
            subs = dict(scratch, **{"$P": prefixes[c.id]})
            role_vars = ROLE_BASE[role](prefixes[c.id], scratch)
            role_vars.update(fill(c.args, subs))
            key = json.dumps(c.id)
            tasks.append({"name": "case " + c.id, "block": [
                {"name": "role", "ansible.builtin.include_role": {"name": "perry.fleet." + role.split(":")[1]},
                 "vars": role_vars},
                {"name": "record success", "ansible.builtin.set_fact": {
                    "bad_results": "{{ bad_results | combine({%s: {'failed': false}}) }}" % key}},
            ], "rescue": [
                {"name": "record failure", "ansible.builtin.set_fact": {
                    "bad_results": "{{ bad_results | combine({%s: {'failed': true, 'msg': (ansible_failed_result.msg "
                                   "| default('') | string) ~ ' ' ~ (ansible_failed_result.argument_errors | default([]) "
                                   "| join(' ')), 'task': ansible_failed_task.name | default('')}}) }}" % key}},
            ]})
        tasks.append({"name": "write results", "ansible.builtin.copy": {
            "content": "{{ bad_results | to_nice_json }}", "dest": results_file, "mode": "0600"}})
        try:
            run_playbook(tasks, None, timeout=600)
            with open(results_file) as fh:
                recorded = json.load(fh)
        except (AssertionError, OSError, ValueError) as exc:
            recorded = {"_error": str(exc)[-3000:]}
        for c in cases:
            out[c.id] = dict(recorded.get(c.id) or {"failed": None, "msg": recorded.get("_error", "not recorded")},
                             prefix=prefixes[c.id])
    objects = engine_objects(("podman",))
    for c in ROLE_CASES:
        out[c.id]["left"] = [o for o in objects if out[c.id]["prefix"] in o]
    yield out
    for c in ROLE_CASES:
        if out[c.id]["left"]:
            remove(out[c.id]["prefix"])


@pytest.mark.parametrize("case", ROLE_CASES, ids=[c.id for c in ROLE_CASES])
def test_role_bad_input(case, role_results):
    got = role_results[case.id]
    assert got["failed"] is True, "%s: the role did not fail: %s" % (case.id, got)
    assert_clear(got["msg"], case)
    assert not got["left"], "%s left %s" % (case.id, got["left"])
    assert not os.path.exists(PWNED), "a shell metacharacter was executed"
