"""The engine topologies integration tests run on, and a runner for modules and playbooks.

Every topology is a real engine on this machine (set up by scripts/setup-testbed):
  podman-rootful     root's podman
  podman-rootless    podman of the unprivileged test user (modules run through `become`)
  docker             dockerd (privileged Docker-in-Docker workspaces)
  docker-cli-podman  the docker CLI against a podman API socket (runtime=podman, as Perry's PR did)
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, ".collections")  # scripts/setup-testbed links this checkout there
ROOTLESS_USER = os.environ.get("PERRY_ROOTLESS_USER", "perry-rootless")
USER_SOCKET_TEST_USER = os.environ.get("PERRY_USER_SOCKET_TEST_USER", "perry-rootless2")  # scripts/lib.sh
# pytest-xdist runs several test processes at once: each serves the docker-cli-podman topology on its own socket
# (one process restarting the service on a shared path would cut the others off).
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
PODMAN_SOCKET = "/run/perry-fleet-test/%s/podman.sock" % XDIST_WORKER


def venv_bin(tool: str) -> str:
    out = subprocess.run(["bash", "-c", "source %s/scripts/lib.sh && echo $VENV" % REPO],
                         capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    return os.path.join(out, "bin", tool)


class EngineCLIError(subprocess.CalledProcessError):
    """A failed engine CLI call whose message carries the engine's own words (CalledProcessError's leaves them out)."""

    def __str__(self) -> str:
        return "%s stderr: %s" % (super().__str__(), (self.stderr or "").strip()[-2000:])


@dataclass
class Topology:
    name: str
    runtime: str
    engine_cli: str
    engine_url: str | None = None
    become_user: str | None = None
    extra: dict = field(default_factory=dict)

    def engine_args(self) -> dict:
        args = {"runtime": self.runtime, "engine_cli": self.engine_cli}
        if self.engine_url:
            args["engine_url"] = self.engine_url
        return args

    def cli(self, *args, timeout=120, check=True, input=None) -> subprocess.CompletedProcess:
        """Run the engine CLI directly (as the topology's user) for assertions and cleanup."""
        argv = [self.engine_cli] + list(args)
        env = dict(os.environ)
        if self.engine_url and self.engine_cli.endswith("docker"):
            env["DOCKER_HOST"] = self.engine_url
        if self.become_user:
            uid = int(subprocess.run(["id", "-u", self.become_user], capture_output=True, text=True, check=True,
                                     timeout=10).stdout)
            argv = ["runuser", "-u", self.become_user, "--", "env", "XDG_RUNTIME_DIR=/run/user/%d" % uid,
                    "HOME=/home/%s" % self.become_user] + argv
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=input, check=False)
        if check and res.returncode:
            raise EngineCLIError(res.returncode, argv, res.stdout, res.stderr)
        return res

    def volume_names(self) -> list[str]:
        """Every volume's name. podman 4.3's `volume ls` fails with "no such volume" when another process removes
        a volume while it lists (seen in the parallel suite, reproduced with three remove loops beside it): retry."""
        for dummy in range(5):
            res = self.cli("volume", "ls", "-q", check=False)
            if "no such volume" not in res.stderr:
                break
            time.sleep(0.2)
        if res.returncode:
            raise EngineCLIError(res.returncode, res.args, res.stdout, res.stderr)
        return res.stdout.split()

    def pause(self, name: str) -> None:
        """Pause a container, retrying twice: a pause failed once in a loaded parallel run (dockerd, cgroup v1
        freezer) and the stderr was not kept; a container that is not running fails all three with its state."""
        for dummy in range(3):
            res = self.cli("pause", name, check=False)
            if res.returncode == 0:
                return
            time.sleep(1)
        state = (self.inspect(name) or {}).get("State")
        raise EngineCLIError(res.returncode, res.args, res.stdout, "%s (state: %s)" % (res.stderr, state))

    def inspect(self, name: str) -> dict | None:
        """The container of that name (not the volume that shares it)."""
        res = self.cli("container", "inspect", name, check=False)
        data = json.loads(res.stdout or "[]") if res.returncode == 0 else []
        return data[0] if data else None

    def cleanup(self, prefix: str) -> None:
        """Remove every container, volume and network whose name starts with workspace-<prefix> or
        perry-engine-<prefix> (the workspace role's engines)."""
        patterns = ("workspace-" + prefix, "perry-engine-" + prefix)
        names = self.cli("ps", "-a", "--format", "{{.Names}}", check=False).stdout.split()
        doomed = [n for n in names if n.startswith(patterns)]
        if doomed:
            self.cli("rm", "-f", *doomed, check=False, timeout=300)
        try:
            vols = self.volume_names()
        except EngineCLIError:  # cleanup never fails a test; a test that needs the engine reports it itself
            vols = []
        doomed = [v for v in vols if v.startswith(patterns)]
        if doomed:
            self.cli("volume", "rm", "-f", *doomed, check=False, timeout=300)
        nets = self.cli("network", "ls", "--format", "{{.Name}}", check=False).stdout.split()
        doomed = [n for n in nets if n.startswith(patterns)]
        if doomed:
            self.cli("network", "rm", "-f", *doomed, check=False, timeout=300)


TOPOLOGIES = {
    "podman-rootful": Topology("podman-rootful", "podman", "podman"),
    "podman-rootless": Topology("podman-rootless", "podman", "podman", become_user=ROOTLESS_USER),
    "docker": Topology("docker", "docker", "/usr/bin/docker"),
    "docker-cli-podman": Topology("docker-cli-podman", "podman", "/usr/bin/docker", engine_url="unix://" + PODMAN_SOCKET),
}

# test_user_socket's rootless podman: a user of its own (alone in its podman, as user_socket requires), not a topology
# every test runs on.
USER_SOCKET_TOPOLOGY = Topology("podman-rootless", "podman", "podman", become_user=USER_SOCKET_TEST_USER)


def random_prefix() -> str:
    return "t%s-" % secrets.token_hex(3)


def run_playbook(tasks: list, topology: Topology | None = None, check: bool = False, diff: bool = False,
                 extra_vars: dict | None = None, timeout: float = 900, verbosity: int = 0,
                 raise_on_fail: bool = False) -> dict:
    """Run tasks in a one-play playbook on localhost; return {'tasks': [results...], 'rc', 'stdout'}."""
    play = {"hosts": "localhost", "gather_facts": False, "tasks": tasks}
    if topology is not None and topology.become_user:
        play.update({"become": True, "become_user": topology.become_user, "become_method": "su"})
    with tempfile.TemporaryDirectory(prefix="perry-pb-") as tmp:
        path = os.path.join(tmp, "play.yml")
        with open(path, "w") as fh:
            json.dump([play], fh)
        argv = [venv_bin("ansible-playbook"), "-i", "localhost,", "-c", "local", path]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if verbosity:
            argv.append("-" + "v" * verbosity)
        if extra_vars:
            argv += ["-e", json.dumps(extra_vars)]
        env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_COLLECTIONS_PATH=COLLECTIONS,
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOCALHOST_WARNING="false",
                   ANSIBLE_PIPELINING="True")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO, check=False)
    try:
        # With -v the callback's JSON document follows ansible's own verbose lines.
        text = proc.stdout
        doc = json.loads(text[text.index("{\n"):] if not text.startswith("{") and "{\n" in text else text)
        # each host result with its task's name (_task), for tests that look a task up by name
        results = [dict(t["hosts"]["localhost"], _task=t["task"]["name"]) for t in doc["plays"][0]["tasks"]]
    except (ValueError, KeyError, IndexError):
        raise AssertionError("ansible-playbook output unparseable (rc=%d):\n%s\n%s" % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    if raise_on_fail and proc.returncode != 0:
        raise AssertionError("playbook failed: %s" % json.dumps(results[-1], indent=1)[-4000:])
    return {"tasks": results, "rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def run_module(module: str, args: dict, topology: Topology, check: bool = False, diff: bool = False,
               timeout: float = 900, verbosity: int = 0) -> dict:
    """One module task on the topology; returns its result (failed results are returned, not raised)."""
    full = dict(topology.engine_args())
    full.update(args)
    out = run_playbook([{"name": module, module: full, "ignore_errors": True}], topology, check=check, diff=diff,
                       timeout=timeout, verbosity=verbosity)
    result = out["tasks"][0]
    result["_stdout"] = out["stdout"]
    return result


BASE_IMAGE = "localhost/perry-base:bookworm"
# Overridable so that two checkouts testing different images on one machine never retag each other's.
WORKSPACE_IMAGE = os.environ.get("PERRY_FLEET_TEST_IMAGE", "localhost/perry:latest")
# Which engine store a topology's images live in, and how the image role reaches it.
_BUILDERS = {
    "podman-rootful": {"perry_image_engine": "podman", "perry_image_runtime": "podman"},
    "podman-rootless": {"perry_image_engine": "podman", "perry_image_runtime": "podman"},
    "docker-cli-podman": {"perry_image_engine": "podman", "perry_image_runtime": "podman"},  # same store as rootful
    "docker": {"perry_image_engine": "docker", "perry_image_engine_cli": "/usr/bin/docker", "perry_image_runtime": "docker"},
}
_built: dict = {}
LOCK_DIR = "/run/perry-fleet-test/locks"
IMAGE_BUILD_WAIT = 1800   # an agents image built cold takes minutes; the suite's own bound is longer
# The image role's optional tools, all off: most tests skip them to keep builds short (site.yml installs them).
AGENTS_OFF = {"perry_image_%s_version" % a: "" for a in ("claude_code", "opencode", "codex", "pi", "gh")}


def build_workspace_image(topology, agents: bool = False) -> str:
    """Build (or find, by content hash) the workspace image for a topology with roles/image.

    ``agents``: with the role's default agents (Claude Code, OpenCode, Codex, pi, gh), tagged WORKSPACE_IMAGE + "-agents"."""
    store = topology.become_user or _BUILDERS[topology.name]["perry_image_engine"]
    image = WORKSPACE_IMAGE + ("-agents" if agents else "")
    if (store, image) in _built:
        return _built[(store, image)]
    # One build per store and tag at a time across test processes: the others wait, then find it by content hash.
    os.makedirs(LOCK_DIR, exist_ok=True)
    with open(os.path.join(LOCK_DIR, "image-%s-%s.lock" % (store, re.sub(r"[^a-z0-9]+", "-", image))), "w") as lock:
        wait_for_lock(lock, IMAGE_BUILD_WAIT)
        return _build_workspace_image(topology, store, image, agents)


def wait_for_lock(lock, seconds: float) -> None:
    """An exclusive flock on an open file, given up after ``seconds`` with the file named (never a wait forever)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError("waited %d s for %s: another test process still builds" % (seconds, lock.name))
            time.sleep(1)


def _build_workspace_image(topology, store: str, image: str, agents: bool) -> str:
    extra = dict(_BUILDERS[topology.name])
    extra.update({
        "perry_image_name": image,
        # A build context per image tag and store: checkouts building at once never overwrite each other's context.
        "perry_image_work_dir": "/var/tmp/perry-image-%s-%s" % (re.sub(r"[^a-z0-9]+", "-", image), store),
        "perry_image_base": BASE_IMAGE,
        "perry_image_ca_certificates": sorted(glob.glob("/usr/local/share/ca-certificates/*.crt")),
    })
    if not agents:
        extra.update(AGENTS_OFF)
    out = run_playbook([{"name": "image", "ansible.builtin.include_role": {"name": "perry.fleet.image"}}],
                       topology if topology.become_user else None, extra_vars=extra, timeout=3000)
    if out["rc"] != 0:
        raise RuntimeError("building the workspace image for %s failed:\n%s" % (topology.name, out["stdout"][-4000:]))
    _built[(store, image)] = image
    return image


def run_module_direct(module: str, args: dict, timeout: float = 120, check: bool = False) -> tuple:
    """Run a module's Python file directly (no ansible-playbook startup): (result, seconds).

    For timing guarantees ("returns within its timeout + 1 s") the playbook machinery's own
    second of startup would blur the measurement.
    """
    import time
    module_name = module.split(".")[-1]
    payload = {"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(payload, fh)
        path = fh.name
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    start = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, "-m", "ansible_collections.perry.fleet.plugins.modules." + module_name, path],
                              capture_output=True, text=True, timeout=timeout, env=env, check=False, cwd="/")
    finally:
        os.unlink(path)
    elapsed = time.monotonic() - start
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise AssertionError("module printed no JSON (rc=%d): %s %s" % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return result, elapsed


def start_podman_service(socket_path: str = PODMAN_SOCKET, timeout: float = 30, user: str | None = None) -> subprocess.Popen:
    """`podman system service` on socket_path (as ``user``'s rootless podman when given), answering the docker CLI,
    or RuntimeError.

    Tests that stop the service must use their own socket_path: the shared one serves the
    docker-cli-podman topology for the whole session."""
    import time
    prefix = []
    if user:
        uid = int(subprocess.run(["id", "-u", user], capture_output=True, text=True, check=True, timeout=10).stdout)
        prefix = ["runuser", "-u", user, "--", "env", "XDG_RUNTIME_DIR=/run/user/%d" % uid, "HOME=/home/%s" % user]
    subprocess.run(prefix + ["mkdir", "-p", os.path.dirname(socket_path)], check=True, timeout=10)
    if os.path.exists(socket_path):
        os.unlink(socket_path)
    proc = subprocess.Popen(prefix + ["podman", "system", "service", "--time=0", "unix://" + socket_path],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, cwd="/")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(socket_path):
            probe = subprocess.run(["/usr/bin/docker", "version", "--format", "{{.Server.Version}}"], check=False,
                                   env=dict(os.environ, DOCKER_HOST="unix://" + socket_path),
                                   capture_output=True, text=True, timeout=10)
            if probe.returncode == 0:
                return proc
        if proc.poll() is not None:
            raise RuntimeError("podman system service exited: %s" % proc.stderr.read().decode()[-2000:])
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("podman system service did not answer on %s within %.0f s" % (socket_path, timeout))
