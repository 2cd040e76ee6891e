"""Integration tests for roles/image on the test bed's real engines (docker, rootful podman, rootless podman).

Run (as root, after scripts/setup-testbed):
    source scripts/lib.sh; $VENV/bin/pytest -v tests/integration/test_image_role.py
First run builds three images (minutes); later runs reuse them (the role skips the build by content hash).
Images are kept on purpose; every container made here is removed. Network: unix sockets and exec only.
"""
import json
import os
import pwd
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ROOTLESS_USER = os.environ.get("PERRY_ROOTLESS_USER", "perry-rootless")
BASE = "localhost/perry-base:bookworm"
CA_DIR = "/usr/local/share/ca-certificates"
# Agents (Claude Code, OpenCode) are built into the docker variant (the role default); the podman variants skip
# them to keep rootless builds fast unless PERRY_TEST_AGENTS=1.
WITH_AGENTS = os.environ.get("PERRY_TEST_AGENTS", "") == "1"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root and the test bed (scripts/setup-testbed)"),
]


def _venv_bin(name):
    own = os.path.join(os.path.dirname(sys.executable), name)  # the venv pytest runs from
    if os.path.exists(own):
        return own
    lib = subprocess.run(["bash", "-c", f"source {REPO}/scripts/lib.sh; echo $VENV"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return os.path.join(lib, "bin", name)


def _rootless_prefix():
    uid = pwd.getpwnam(ROOTLESS_USER).pw_uid
    return ["runuser", "-u", ROOTLESS_USER, "--", "env", f"XDG_RUNTIME_DIR=/run/user/{uid}", "podman"]


VARIANTS = {
    # id: (engine CLI argv, role vars)
    "docker": (["/usr/bin/docker"], {
        "perry_image_engine": "docker", "perry_image_engine_cli": "/usr/bin/docker",
        "perry_image_runtime": "docker", "perry_image_name": "localhost/perry:docker"}),
    "podman": (["podman"], {
        "perry_image_engine": "podman", "perry_image_engine_cli": "podman",
        "perry_image_runtime": "podman", "perry_image_name": "localhost/perry:podman"}),
    "podman-rootless": (None, {
        "perry_image_engine": "podman", "perry_image_engine_cli": "podman",
        "perry_image_runtime": "podman", "perry_image_name": "localhost/perry:podman",
        "perry_image_build_user": ROOTLESS_USER}),
}


def run(argv, timeout=120, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd="/tmp", check=False, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"{shlex.join(argv)} -> rc {p.returncode}\nstdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-3000:]}")
    return p


def run_role(variant, tmp_path, timeout=3600):
    extra = VARIANTS[variant][1]
    evars = dict(extra)
    evars.update({
        "perry_image_base": BASE,
        "perry_image_base_bootstrap": True,
        "perry_image_ca_certificates": sorted(
            os.path.join(CA_DIR, f) for f in os.listdir(CA_DIR) if f.endswith(".crt")),
    })
    if variant != "docker" and not WITH_AGENTS:
        evars.update({"perry_image_claude_code_version": "", "perry_image_opencode_version": "",
                      "perry_image_codex_version": "", "perry_image_pi_version": "", "perry_image_gh_version": ""})
    vf = tmp_path / f"vars-{variant}.json"
    vf.write_text(json.dumps(evars))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
    t0 = time.monotonic()
    p = subprocess.run([_venv_bin("ansible-playbook"), os.path.join(REPO, "playbooks", "image.yml"), "-e", f"@{vf}"],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO, check=False)
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, f"role failed for {variant}:\n{p.stdout[-6000:]}\n{p.stderr[-3000:]}"
    recap = [line for line in p.stdout.splitlines() if line.startswith("localhost")][-1]
    changed = int(recap.split("changed=")[1].split()[0])
    return {"elapsed": elapsed, "changed": changed, "stdout": p.stdout}


class Engine:
    def __init__(self, variant):
        self.variant = variant
        self.cli = VARIANTS[variant][0] or _rootless_prefix()
        self.image = VARIANTS[variant][1]["perry_image_name"]
        self.containers = []

    def __call__(self, *args, **kw):
        return run(self.cli + list(args), **kw)

    def start(self, *run_args):
        name = f"perry-test-{uuid.uuid4().hex[:10]}"
        self.containers.append(name)
        self("run", "-d", "--name", name, *run_args, self.image)
        return name

    def sh(self, name, script, check=True, timeout=60):
        return self("exec", name, "sh", "-c", script, check=check, timeout=timeout)

    def wait_ready(self, name, timeout=90):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = self("exec", name, "cat", "/run/perry-entrypoint.ready", check=False)
            if p.returncode == 0:
                return p.stdout.strip()
            time.sleep(0.5)
        logs = self("logs", name, check=False)
        raise AssertionError(f"{name} not ready after {timeout} s\n{logs.stdout[-3000:]}{logs.stderr[-3000:]}")

    def cleanup(self):
        for name in self.containers:
            self("rm", "-f", "-v", name, check=False, timeout=120)


# Session-scoped builds: built once per run (the role skips them when up to date).
_BUILDS = {}


@pytest.fixture(scope="session")
def built(tmp_path_factory):
    def get(variant):
        if variant not in _BUILDS:
            _BUILDS[variant] = run_role(variant, tmp_path_factory.mktemp("vars"))
        return _BUILDS[variant]
    return get


@pytest.fixture
def engine_for(built):
    made = []

    def get(variant):
        built(variant)
        e = Engine(variant)
        made.append(e)
        return e
    yield get
    for e in made:
        e.cleanup()


# ------------------------------------------------------------------------------------------------ builds
@pytest.mark.serial  # a duration is timed: alone, after the parallel run (scripts/test)
@pytest.mark.parametrize("variant", ["docker", "podman", "podman-rootless"])
def test_second_run_is_unchanged_and_fast(variant, built, tmp_path):
    first = built(variant)
    print(f"{variant}: first run {first['elapsed']:.0f} s, changed={first['changed']}")
    again = run_role(variant, tmp_path)
    print(f"{variant}: second run {again['elapsed']:.1f} s, changed={again['changed']}")
    assert again["changed"] == 0, again["stdout"][-4000:]
    # ~10-20 s on an idle test bed (per-task overhead); rootless vfs podman blocks on the storage lock while other
    # rootless podman commands run, hence the margin.
    assert again["elapsed"] < 60, f"second run took {again['elapsed']:.1f} s"
    assert "up to date, not rebuilt" in again["stdout"]


@pytest.mark.parametrize("variant", ["docker", "podman", "podman-rootless"])
def test_image_contents(variant, engine_for):
    e = engine_for(variant)
    runtime = VARIANTS[variant][1]["perry_image_runtime"]
    label = e("image", "inspect", "--format", '{{index .Config.Labels "perry.fleet.content-hash"}}', e.image)
    assert len(label.stdout.strip()) == 64
    script = (
        "set -e; ls /etc/ssh/ssh_host_* 2>/dev/null && exit 7; "
        "for c in curl sudo sshd ps git bun node npm docker tini; do command -v $c; done; bun --version; "
        "getent passwd workspace; getent shadow workspace | cut -d: -f2; cat /etc/perry-runtime; "
        "sudo -u workspace sudo -n true && echo sudo-ok; "
        "command -v dockerd || echo no-dockerd"
    )
    p = e("run", "--rm", "--entrypoint", "sh", e.image, "-c", script)
    out = p.stdout
    assert "1.4.4" in out
    assert "workspace:x:1000:1000::/home/workspace:/bin/bash" in out
    assert "\n*\n" in out, "workspace must have no usable password"
    assert "sudo-ok" in out
    assert runtime in out
    if runtime == "docker":
        assert "/usr/sbin/dockerd" in out
    else:
        assert "no-dockerd" in out


# ------------------------------------------------------------------------------------------------ docker (DinD)
def test_docker_variant_runs_dind(engine_for):
    e = engine_for("docker")
    name = e.start("--privileged", "-v", "/var/lib/docker")
    assert e.wait_ready(name) == "engine=dind"
    v = e("exec", name, "docker", "version", "--format", "{{.Server.Version}}")
    assert v.stdout.strip(), v
    log = e.sh(name, "cat /var/log/perry-entrypoint.log").stdout
    assert "dockerd ready" in log
    t0 = time.monotonic()
    e("stop", name, timeout=60)
    assert time.monotonic() - t0 < 6, "stop must not wait for the 10 s grace period"


def test_docker_variant_unprivileged_stays_up(engine_for):
    e = engine_for("docker")
    name = e.start("--env", "PERRY_DOCKERD_WAIT=5")
    assert e.wait_ready(name) == "engine=failed"
    log = e.sh(name, "cat /var/log/perry-entrypoint.log").stdout
    assert "dockerd FAILED" in log and "stays up" in log
    time.sleep(1)
    state = e("inspect", "--format", "{{.State.Running}} {{.RestartCount}}", name).stdout.split()
    assert state == ["true", "0"]


def test_sshd_is_key_only(engine_for):
    e = engine_for("docker")
    name = e.start("--env", "DOCKER_HOST=unix:///nonexistent.sock", "-p", "127.0.0.1::22")
    e.wait_ready(name)
    # A real login attempt on the published loopback port: the server offers publickey and nothing else.
    port = int(e("port", name, "22/tcp").stdout.strip().splitlines()[0].rsplit(":", 1)[1])
    deadline = time.monotonic() + 30
    while True:
        p = run(["ssh", "-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5",
                 "-o", "IdentitiesOnly=yes", "-o", "IdentityFile=/dev/null", "-p", str(port), "workspace@127.0.0.1", "true"],
                timeout=30, check=False)
        if "Permission denied" in p.stderr or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert p.returncode == 255 and "Permission denied (publickey)." in p.stderr, p.stderr
    conf = e("exec", name, "/usr/sbin/sshd", "-T").stdout.lower()
    for line in ("passwordauthentication no", "kbdinteractiveauthentication no", "permitrootlogin no",
                 "pubkeyauthentication yes", "permitemptypasswords no"):
        assert line in conf.splitlines(), line
    # host keys generated at first start, not shipped in the image
    assert e.sh(name, "ls /etc/ssh/ssh_host_ed25519_key").returncode == 0
    assert "sshd: generated host keys" in e.sh(name, "cat /var/log/perry-entrypoint.log").stdout
    assert e.sh(name, "pgrep -x sshd").stdout.strip()


@pytest.mark.serial  # a deadline is timed: alone, after the parallel run (scripts/test)
def test_worker_supervisor_restarts_killed_worker(engine_for):
    e = engine_for("docker")
    name = e.start("--env", "DOCKER_HOST=unix:///nonexistent.sock")
    e.wait_ready(name)
    # A fake worker: a shell script that sleeps (its cmdline keeps "perry worker serve" for pkill -f).
    e.sh(name, "printf '#!/bin/sh\\nsleep 100000 &\\nwait\\n' >/usr/local/bin/perry && chmod 755 /usr/local/bin/perry")

    def worker_pid(old=None, timeout=8):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = e.sh(name, "pid=$(cat /run/perry-worker.pid) && kill -0 $pid && echo $pid "
                           "$(ps -o user= -p $pid) $(pgrep -fc '^/bin/sh /usr/local/bin/perr[y] worker serve')", check=False)
            if p.returncode == 0 and p.stdout.split() and p.stdout.split()[0] != old:
                return p.stdout.split()
            time.sleep(0.2)
        raise AssertionError(f"worker not (re)started: {e.sh(name, 'cat /var/log/perry-entrypoint.log').stdout}")

    pid, user, count = worker_pid()
    assert user == "workspace" and count == "1"
    t0 = time.monotonic()
    e("exec", name, "pkill", "-f", "perry worker serve")
    pid2, user2, count2 = worker_pid(old=pid)
    restart = time.monotonic() - t0
    assert restart < 3.5, f"restart took {restart:.1f} s"
    assert user2 == "workspace" and count2 == "1"
    time.sleep(2.5)  # still exactly one copy, same pid
    assert worker_pid()[0] == pid2 and worker_pid()[2] == "1"
    assert "restarting" in e.sh(name, "cat /var/log/perry-entrypoint.log").stdout


@pytest.mark.parametrize("variant", ["docker", "podman-rootless"])
def test_secret_env_goes_to_0600_file_only(variant, engine_for):
    e = engine_for(variant)
    name = e.start("--env", "DOCKER_HOST=unix:///nonexistent.sock", "--env", "PLAIN_SETTING=visible value",
                   "--env", "API_TOKEN=s3cr'et-xyz", "--env", "OTHER_KEY=k2-abc",
                   "--env", "PERRY_SECRET_ENV_KEYS=API_TOKEN, OTHER_KEY")
    e.wait_ready(name)
    environment = e("exec", name, "cat", "/etc/environment").stdout
    assert 'PLAIN_SETTING="visible value"' in environment
    assert "DOCKER_HOST=unix:///nonexistent.sock" in environment
    assert "s3cr" not in environment and "k2-abc" not in environment and "API_TOKEN" not in environment
    st = e("exec", name, "stat", "-c", "%a %U", "/home/workspace/.config/perry/secrets.env").stdout.split()
    assert st == ["600", "workspace"]
    # a PAM login (su -, like sshd) of the workspace user sees both; processes the entrypoint starts do not
    out = e("exec", name, "su", "-", "workspace", "-c", 'echo "$API_TOKEN|$OTHER_KEY|$PLAIN_SETTING"').stdout
    assert out.strip() == "s3cr'et-xyz|k2-abc|visible value"
    sshd_env = e.sh(name, "tr '\\0' '\\n' </proc/$(cat /run/sshd.pid)/environ").stdout
    assert "API_TOKEN" not in sshd_env


# ------------------------------------------------------------------------------------------------ podman variants
@pytest.mark.parametrize("variant", ["podman", "podman-rootless"])
def test_podman_variant_uses_external_engine(variant, engine_for, tmp_path):
    e = engine_for(variant)
    args = ["--env", "DOCKER_HOST=unix:///run/ext/podman.sock"]
    service = None
    if variant == "podman":
        # A real external engine: rootful podman's Docker-compatible API on a unix socket mounted in.
        sockdir = f"/run/perry-test-{uuid.uuid4().hex[:8]}"
        os.makedirs(sockdir)
        service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sockdir}/podman.sock"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _attempt in range(50):
            if os.path.exists(f"{sockdir}/podman.sock"):
                break
            time.sleep(0.1)
        args += ["-v", f"{sockdir}:/run/ext"]
    try:
        name = e.start(*args)
        assert e.wait_ready(name) == "engine=external"
        assert e.sh(name, "pgrep -x dockerd", check=False).returncode == 1, "no dockerd with DOCKER_HOST"
        assert "docker version" in e.sh(name, "docker --version").stdout.lower()
        log = e.sh(name, "cat /var/log/perry-entrypoint.log").stdout
        assert "external engine at DOCKER_HOST" in log
        if service:
            v = e("exec", name, "docker", "version", "--format", "{{.Server.Version}}", timeout=60)
            assert v.stdout.strip(), v
        t0 = time.monotonic()
        e("stop", name, timeout=60)
        assert time.monotonic() - t0 < 6, "stop must not wait for the 10 s grace period"
    finally:
        if service:
            service.terminate()
            service.wait(timeout=10)
            shutil.rmtree(sockdir, ignore_errors=True)
