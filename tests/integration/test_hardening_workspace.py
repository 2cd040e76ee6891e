"""Issue 19, workspaces, volumes and ports: only what is ours (real engines, images built by roles/image).

Each test failed before its fix (noted per test). Modules run directly (run_module_direct: root topologies), with
random name prefixes that the fixtures remove; nothing here talks to an address other than 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from topology import COLLECTIONS, TOPOLOGIES, build_workspace_image, run_module_direct

MODULE = "perry.fleet.perry_workspace"
BASE = "localhost/perry-base:bookworm"
ROOT_TOPOLOGIES = ["podman-rootful", "docker"]


def run(topology, args: dict, check: bool = False, timeout: float = 300) -> dict:
    full = dict(topology.engine_args(), engine_timeout=120)
    full.update(args)
    return run_module_direct(MODULE, full, timeout=timeout, check=check)[0]


def ok(result: dict) -> dict:
    assert not result.get("failed"), json.dumps({k: result.get(k) for k in ("msg", "stderr", "cmd")}, indent=1)
    return result


def failed(result: dict, fragment: str) -> str:
    assert result.get("failed"), "did not fail: %s" % json.dumps(result)[-1500:]
    assert fragment in result["msg"], result["msg"]
    return result["msg"]


def names(topology, what: str, prefix: str) -> list:
    found = topology.cli("ps", "-a", "--format", "{{.Names}}").stdout.split() if what == "containers" \
        else topology.volume_names()
    return sorted(n for n in found if prefix in n)


def home_file(topology, container: str, path: str = "/home/workspace/precious") -> str:
    return topology.cli("exec", container, "cat", path, check=False).stdout.strip()


# ---------------------------------------------------------------------------------------------- defect 1
@pytest.mark.parametrize("topology_name", ROOT_TOPOLOGIES)
def test_purge_of_a_never_created_x_leaves_x_docker_and_its_home(topology_name, prefix_any):
    """Before: podman's `volume rm -f workspace-x-docker` removed the running x-docker with its home; docker
    refused the in-use volume and the purge failed. Now the volume's labels say it is x-docker's home: kept."""
    topo = TOPOLOGIES[topology_name]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    x, xd = prefix + "x", prefix + "x-docker"
    ok(run(topo, {"name": xd, "image": image}))
    topo.cli("exec", "workspace-" + xd, "sh", "-c", "echo mine > /home/workspace/precious")
    r = ok(run(topo, {"name": x, "state": "absent", "purge": True}))
    w = r["workspaces"][0]
    assert not r["changed"] and w["actions"] == [], w
    assert any("workspace-%s" % xd in n and "home volume of workspace %s" % xd in n for n in w["notes"]), w["notes"]
    assert topo.inspect("workspace-" + xd)["State"]["Running"]
    assert home_file(topo, "workspace-" + xd) == "mine"


def test_docker_x_never_mounts_the_home_of_x_docker(prefix_any):
    """Before: docker workspace x got x-docker's home volume as its /var/lib/docker (two tenants, one store)."""
    topo = TOPOLOGIES["docker"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    x, xd = prefix + "x", prefix + "x-docker"
    ok(run(topo, {"name": xd, "image": image}))
    before = names(topo, "volumes", prefix)
    failed(run(topo, {"name": x, "image": image}), "its labels say it is the home volume of workspace %s" % xd)
    assert topo.inspect("workspace-" + x) is None
    assert names(topo, "volumes", prefix) == before  # not even x's home volume was created
    # The same pair in one task is refused before any engine call.
    failed(run(topo, {"workspaces": [{"name": prefix + "y"}, {"name": prefix + "y-docker"}], "image": image}),
           "would share volume workspace-%sy-docker" % prefix)


# ---------------------------------------------------------------------------------------------- defect 3
def test_purge_refuses_while_a_foreign_container_uses_the_volume(prefix_any):
    """Before: `podman volume rm -f` silently removed the running foreign container. Now: refused, with its
    name, and nothing is removed (the workspace's container neither)."""
    topo = TOPOLOGIES["podman-rootful"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    name, foreign = prefix + "shared", "workspace-%sforeign" % prefix
    ok(run(topo, {"name": name, "image": image, "state": "present"}))
    topo.cli("run", "-d", "--name", foreign, "-v", "workspace-%s:/data" % name, BASE, "sleep", "infinity")
    msg = failed(run(topo, {"name": name, "state": "absent", "purge": True}), "purge of workspace %s refused" % name)
    assert foreign in msg
    assert topo.inspect(foreign)["State"]["Running"]
    assert topo.inspect("workspace-" + name) is not None
    assert "workspace-" + name in names(topo, "volumes", prefix)
    # Check mode predicts the refusal.
    failed(run(topo, {"name": name, "state": "absent", "purge": True}, check=True), "refused")


# ----------------------------------------------------------------------- risk: unlabelled pre-existing volume
def test_an_unlabelled_volume_is_mounted_and_purged_only_with_adopt(prefix_any):
    """Before: someone's unlabelled `workspace-z` was mounted as the new home (and later purged). Now: refused
    unless adopt=true; once adopted (our container mounts it) purge removes it; never-adopted ones are kept."""
    topo = TOPOLOGIES["podman-rootful"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    z, keep = prefix + "z", prefix + "keep"
    for vol in ("workspace-" + z, "workspace-" + keep):
        topo.cli("volume", "create", vol)
        topo.cli("run", "--rm", "-v", vol + ":/d", BASE, "sh", "-c", "echo theirs > /d/precious")
    failed(run(topo, {"name": z, "image": image}), "without perry.fleet's labels")
    failed(run(topo, {"name": z, "image": image}, check=True), "without perry.fleet's labels")
    assert topo.inspect("workspace-" + z) is None
    ok(run(topo, {"name": z, "image": image, "adopt": True}))
    assert home_file(topo, "workspace-" + z) == "theirs"
    # A later run without adopt (a recreate) still uses it: our container mounts it.
    r = ok(run(topo, {"name": z, "image": image, "labels": {"after": "1"}}))
    assert "recreate" in r["workspaces"][0]["actions"] and home_file(topo, "workspace-" + z) == "theirs"
    r = ok(run(topo, {"name": keep, "state": "absent", "purge": True}))
    assert "no perry.fleet labels" in r["workspaces"][0]["notes"][0]
    assert "workspace-" + keep in names(topo, "volumes", prefix)
    r = ok(run(topo, {"name": z, "state": "absent", "purge": True}))
    assert "remove volume workspace-" + z in r["workspaces"][0]["actions"]
    assert "workspace-" + z not in names(topo, "volumes", prefix)


# --------------------------------------------------------------------------------------------- defect 12
def test_a_failed_recreate_keeps_the_old_container_and_its_ports(prefix_any):
    """Before: the old container was removed first, so a failed create lost it and the rerun took other ports.
    Induced failure: docker refuses memory=1b at create."""
    topo = TOPOLOGIES["docker"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    name = prefix + "keep"
    first = ok(run(topo, {"name": name, "image": image}))["workspaces"][0]
    old_id = topo.inspect("workspace-" + name)["Id"]
    failed(run(topo, {"name": name, "image": image, "memory": "1b"}), "Minimum memory limit")
    c = topo.inspect("workspace-" + name)
    assert c is not None and c["Id"] == old_id and c["State"]["Running"]
    assert names(topo, "containers", prefix) == ["workspace-" + name]  # no renamed leftover
    again = ok(run(topo, {"name": name, "image": image}))
    assert not again["changed"] and again["workspaces"][0]["ports"] == first["ports"]


def test_a_recreate_killed_after_renaming_the_old_container_aside_is_finished(prefix_any):
    """kill -9 between `rename` and `create`: the next run renames the old container back (same id, same ports)."""
    topo = TOPOLOGIES["podman-rootful"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    name = prefix + "aside"
    first = ok(run(topo, {"name": name, "image": image}))["workspaces"][0]
    old_id = topo.inspect("workspace-" + name)["Id"]
    topo.cli("rename", "workspace-" + name, "workspace-%s.perry-fleet-replaced" % name)
    again = ok(run(topo, {"name": name, "image": image}))["workspaces"][0]
    assert again["actions"] == ["restore container workspace-%s.perry-fleet-replaced" % name], again["actions"]
    assert again["ports"] == first["ports"] and topo.inspect("workspace-" + name)["Id"] == old_id
    assert names(topo, "containers", prefix) == ["workspace-" + name]


def test_kill_9_during_create_leaves_no_secret_file(tmp_path, prefix_any):
    """Before: the 0600 env file with the secrets stayed in $TMPDIR/perry-fleet-*/env after kill -9. Now the env
    and label files are memfds given to the CLI as /dev/fd/N: there is no file to leave."""
    topo = TOPOLOGIES["podman-rootful"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    secret = "s3cret-" + prefix
    tmpdir, bindir = tmp_path / "tmp", tmp_path / "bin"
    tmpdir.mkdir()
    bindir.mkdir()
    marker = tmp_path / "in-create"
    cli = bindir / "podman"  # a podman that stalls in `create`, after reading its env file like the real one
    cli.write_text("#!/bin/sh\nif [ \"$1\" = create ]; then\n  while [ $# -gt 0 ]; do [ \"$1\" = --env-file ] && "
                   "cat \"$2\" > /dev/null; shift; done\n  echo $$ > %s; exec sleep 60\nfi\nexec podman \"$@\"\n" % marker)
    cli.chmod(0o755)
    payload = tmp_path / "args.json"
    payload.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "name": prefix + "k9", "image": image, "runtime": "podman", "engine_cli": str(cli),
        "secret_env": {"PERRY_TEST_TOKEN": secret}}}))
    env = dict(os.environ, PYTHONPATH=COLLECTIONS, TMPDIR=str(tmpdir))
    proc = subprocess.Popen([sys.executable, "-m", "ansible_collections.perry.fleet.plugins.modules.perry_workspace",
                             str(payload)], env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), "the module never reached create"
        proc.kill()
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        if marker.exists() and marker.read_text().strip():
            try:
                os.kill(int(marker.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
    left = [os.path.join(d, f) for d, _unused, fs in os.walk(tmpdir) for f in fs] + \
           [os.path.join(d, s) for d, ss, _unused in os.walk(tmpdir) for s in ss]
    assert not left, "left in TMPDIR after kill -9: %s" % left


def test_an_env_line_over_64k_is_refused_before_anything_is_created(prefix_any):
    """Before: create failed (bufio.Scanner: token too long) after the home volume had been created."""
    topo = TOPOLOGIES["podman-rootful"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    failed(run(topo, {"name": prefix + "big", "image": image, "secret_env": {"BIG": "x" * 70000}}),
           "perry.fleet takes at most 65535")
    failed(run(topo, {"name": prefix + "big", "image": image, "env": {"BIG": "x" * 70000}}),
           "read at most 65535")
    failed(run(topo, {"name": prefix + "big", "image": image,
                      "labels": {"a%d" % i: "y" * 9000 for i in range(8)}}), "label about")
    assert names(topo, "volumes", prefix) == [] and names(topo, "containers", prefix) == []
    # 60000 bytes fit: created (the measured limit is 65535 per line).
    ok(run(topo, {"name": prefix + "fits", "image": image, "state": "present", "secret_env": {"BIG": "x" * 60000}}))


def test_present_on_a_running_workspace_places_files(prefix_any):
    """The docs promise files (and the worker) in every running workspace; before, state=present skipped them."""
    topo = TOPOLOGIES["podman-rootful"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    name = prefix + "pres"
    ok(run(topo, {"name": name, "image": image}))
    files = [{"dest": "~/.gitconfig", "content": "[user]\n\tname = present\n"}]
    r = ok(run(topo, {"name": name, "image": image, "state": "present", "files": files}))
    assert r["workspaces"][0]["actions"] == ["place 1 file(s)"], r["workspaces"][0]
    assert "name = present" in home_file(topo, "workspace-" + name, "/home/workspace/.gitconfig")
    # A stopped workspace with state=present is left stopped and untouched.
    topo.cli("stop", "-t", "1", "workspace-" + name)
    r = ok(run(topo, {"name": name, "image": image, "state": "present", "files": files + [
        {"dest": "~/.other", "content": "other file of " + prefix}]}))
    assert r["workspaces"][0]["actions"] == [] and not r["workspaces"][0]["running"]


# ---------------------------------------------------------------------------------------------- defect 10
def test_one_explicit_port_for_two_workspaces_is_refused_before_anything_is_created(prefix_any):
    """Before: both containers were created on SSH port P; the second could not start."""
    topo = TOPOLOGIES["podman-rootful"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    port = 2399
    failed(run(topo, {"workspaces": [{"name": prefix + "a", "ssh_port": port}, {"name": prefix + "b", "ssh_port": port}],
                      "image": image}), "port %d is asked for by both" % port)
    assert names(topo, "volumes", prefix) == [] and names(topo, "containers", prefix) == []


@pytest.mark.parametrize("topology_name", ROOT_TOPOLOGIES)
def test_a_sticky_port_taken_meanwhile_says_what_to_do(topology_name, prefix_any):
    """Risk decided: a port this engine cannot see as taken (here a listener on 127.0.0.1; in the field another
    engine's container) makes the start fail on every rerun, because ports are sticky. The error says so and what
    to do, instead of the engine's bare "address already in use"."""
    import socket
    topo = TOPOLOGIES[topology_name]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    name = prefix + "sticky"
    port = ok(run(topo, {"name": name, "image": image, "state": "present"}))["workspaces"][0]["ports"]["ssh"]
    holder = socket.socket()
    holder.bind(("127.0.0.1", port))
    holder.listen(1)
    try:
        msg = failed(run(topo, {"name": name, "image": image}), "cannot start: one of its host ports ssh %d" % port)
        assert "set ssh_port/worker_port to a free port" in msg
    finally:
        holder.close()
    ok(run(topo, {"name": name, "image": image}))


def test_a_stopped_workspaces_ports_are_not_handed_out_by_another_engine(prefix_any, tmp_path):
    """Before: rootful podman's workspace that was not running held its ports where dockerd's runs could not see them
    (no listener, not a docker container): a docker workspace got the same ports, and the podman one could no longer
    start. Now every engine's ports are claimed beside the port lock (ports.PortClaims) and the others skip them."""
    podman, docker = TOPOLOGIES["podman-rootful"], TOPOLOGIES["docker"]
    ranges = {"ssh_port_range": [2380, 2399], "worker_port_range": [7480, 7500],
              "port_lock_path": str(tmp_path / "ports.lock")}   # a claims directory of this test's own
    name_p, name_d = prefix_any(podman) + "claim", prefix_any(docker) + "claim"
    made = ok(run(podman, dict(ranges, name=name_p, image=build_workspace_image(podman), state="present")))
    held = made["workspaces"][0]["ports"]
    assert podman.inspect("workspace-" + name_p)["State"]["Running"] is False   # created: it binds nothing yet
    other = ok(run(docker, dict(ranges, name=name_d, image=build_workspace_image(docker))))["workspaces"][0]
    assert other["ports"]["ssh"] != held["ssh"], (held, other["ports"])
    claims = {f.name: json.loads(f.read_text()) for f in (tmp_path / "ports.claims").glob("*.json")}
    assert len(claims) == 2, claims   # one file per engine
    [podman_claims] = [c["ports"] for c in claims.values() if c["engine"] == "/var/lib/containers/storage"]
    assert {held["ssh"], held["worker"]} <= set(podman_claims), (held, claims)
    started = ok(run(podman, dict(ranges, name=name_p, image=build_workspace_image(podman))))["workspaces"][0]
    assert started["running"] and started["ports"] == held, started


# ----------------------------------------------------------------------------------------------- defect 8
@pytest.mark.parametrize("topology_name", ROOT_TOPOLOGIES)
def test_check_mode_predicts_the_actions_of_a_mixed_fleet(topology_name, worker_artifacts, prefix_any):
    """missing, stopped, running, paused and drifted workspaces with worker_source and files, some with a stale
    worker: check mode's actions equal the real run's, one to one. Before: check mode failed on a stopped (or
    paused) workspace whose worker needs an update (its probe exec'd into a container that does not run), and
    left out the volumes a create makes and the files a recreate keeps."""
    topo = TOPOLOGIES[topology_name]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    source = os.path.dirname(worker_artifacts["dist"])
    files = [{"dest": "~/.gitconfig", "content": "[user]\n\tname = fleet\n"}]
    kinds = ("missing", "stopped", "running", "paused", "drifted", "newfile", "stale-stopped", "stale-paused")
    fleet = {k: prefix + k for k in kinds}
    ok(run(topo, {"workspaces": [{"name": n} for k, n in fleet.items() if k != "missing"], "image": image,
                  "worker_source": source, "files": files}))
    for kind in ("stale-stopped", "stale-paused"):  # an older worker: its manifest line differs
        topo.cli("exec", "-u", "root", "workspace-" + fleet[kind], "sh", "-c",
                 "echo 'dist 0000' > /usr/local/lib/perry/MANIFEST")
    for kind in ("stopped", "stale-stopped"):
        topo.cli("stop", "-t", "1", "workspace-" + fleet[kind])
    for kind in ("paused", "stale-paused"):
        topo.pause("workspace-" + fleet[kind])
    wanted = [{"name": n} for n in fleet.values()]
    wanted[kinds.index("drifted")]["labels"] = {"drift": "1"}   # (env is applied in place: no recreate)
    # (no_log content is masked everywhere in results: a short content would mask parts of names)
    wanted[kinds.index("newfile")]["files"] = files + [{"dest": "~/.extra", "content": "extra file of " + prefix}]
    args = {"workspaces": wanted, "image": image, "worker_source": source, "files": files}
    predicted = ok(run(topo, args, check=True))
    done = ok(run(topo, args))
    got = {w["name"]: w["actions"] for w in done["workspaces"]}
    assert {w["name"]: w["actions"] for w in predicted["workspaces"]} == got
    assert got[fleet["running"]] == [] and got[fleet["stopped"]] == ["start"] and got[fleet["paused"]] == ["unpause"]
    assert got[fleet["stale-stopped"]] == ["start", "worker update"], got
    assert got[fleet["stale-paused"]] == ["unpause", "worker update"], got
    assert "recreate" in got[fleet["drifted"]] and "worker install" in got[fleet["drifted"]]
    assert got[fleet["newfile"]] == ["place 2 file(s)"], got
    assert predicted["changed"] == done["changed"]
    again = ok(run(topo, args, check=True))
    assert not again["changed"], again["workspaces"]


# ------------------------------------------------------------------ risk: one unhealthy workspace, whole host
def test_one_unhealthy_workspace_still_gets_the_host_report_then_fails_the_role(prefix_any):
    """Before: perry_worker_health failed the role at once, so the host had no report for its healthy workspaces.
    Now the report covers every workspace and the role fails at its end, naming the unhealthy one."""
    from topology import run_playbook
    topo = TOPOLOGIES["podman-rootful"]
    image = build_workspace_image(topo)
    prefix = prefix_any(topo)
    good, bad = prefix + "good", prefix + "bad"
    role_vars = {"perry_workspace_runtime": "podman", "perry_workspace_image": image,
                 "perry_workspace_list": [{"name": good}, {"name": bad}], "perry_workspace_health_timeout": 20}
    tasks = [{"name": "role", "ansible.builtin.include_role": {"name": "perry.fleet.workspace"}, "vars": role_vars}]
    first = run_playbook(tasks, extra_vars=None, timeout=900)
    assert first["rc"] == 0, first["stdout"][-3000:]
    # Freeze the worker of one: its files are intact (the sync, which restores a changed worker, leaves it), the
    # process is alive (the image's supervisor leaves it), and it answers nothing.
    topo.cli("exec", "-u", "root", "workspace-" + bad, "pkill", "-STOP", "-f", "(^|/)[p]erry( |/current/cli[.]js )worker serve")
    out = run_playbook(tasks, timeout=900)
    assert out["rc"] != 0
    report = [t for t in out["tasks"] if "perry_workspace_report" in (t.get("ansible_facts") or {})]
    assert report, "no report was produced"
    rows = {r["name"]: r for r in report[0]["ansible_facts"]["perry_workspace_report"]}
    assert rows[good]["healthy"] and not rows[bad]["healthy"], rows
    assert rows[good]["session_count"] is not None
    last = out["tasks"][-1]
    assert last.get("failed") and bad in last["msg"] and good not in last["msg"].split(":", 1)[1], last.get("msg")
