"""Bad input for every module option and role variable where bad input means something: pure data.

``CASES`` is a list of ``Case(id, target, option, category, args, expect)``:
  target    perry_workspace | perry_worker_health | perry_sessions | perry_state | role:workspace | role:image
  option    the option (module) or variable (role) the case is about
  category  what kind of bad input (see CATEGORIES)
  args      the arguments that differ from a valid call (test_bad_input.py supplies the rest)
  expect    a fragment of the error message the run must fail with

Placeholders in args, filled in by test_bad_input.py: ``$P`` a per-case random workspace-name prefix (so
anything a case wrongly created is found and removed), ``$TAKEN_PORT`` a port a listener of the test holds,
``$DIST`` a valid (fake) worker dist directory. Keep the field names: benchmarks count CASES by target and
category.
"""

from __future__ import annotations

from collections import namedtuple

Case = namedtuple("Case", "id target option category args expect")

CATEGORIES = ("shell-metacharacters", "path-traversal", "too-long", "uppercase", "empty", "reserved",
              "unknown-runtime", "unknown-choice", "inverted-port-range", "exhausted-port-range", "port-taken",
              "out-of-range", "engine-url-garbage", "missing-file", "missing-cli", "wrong-type",
              "not-positive", "malformed", "conflict")

LONG = "x" * 64
META = "a;touch /tmp/perry-pwned"

_W, _H, _S, _RW, _RI = "perry_workspace", "perry_worker_health", "perry_sessions", "role:workspace", "role:image"


def _name_cases(target, key, wrap=lambda v: v):
    """The five bad workspace names, for any option that takes one."""
    t = target.replace("role:", "r").replace("perry_", "")
    return [
        Case("%s-%s-meta" % (t, key), target, key, "shell-metacharacters", wrap("$P" + META), "is invalid"),
        Case("%s-%s-traversal" % (t, key), target, key, "path-traversal", wrap("../../$Petc"), "is invalid"),
        Case("%s-%s-long" % (t, key), target, key, "too-long", wrap("$P" + LONG), "at most 63"),
        Case("%s-%s-upper" % (t, key), target, key, "uppercase", wrap("$PBad_Name"), "is invalid"),
        Case("%s-%s-empty" % (t, key), target, key, "empty", wrap(""), "is empty"),
    ]


def _engine_cases(target):
    t = target.replace("perry_", "")
    return [
        Case(t + "-runtime-unknown", target, "runtime", "unknown-runtime", {"runtime": "lxc"}, "value of runtime must be one of"),
        Case(t + "-engine_cli-missing", target, "engine_cli", "missing-cli", {"engine_cli": "/nonexistent/podman"}, "not found"),
        Case(t + "-engine_cli-meta", target, "engine_cli", "shell-metacharacters",
             {"engine_cli": "podman; touch /tmp/perry-pwned"}, "not found"),
        Case(t + "-engine_url-garbage", target, "engine_url", "engine-url-garbage", {"engine_url": "garbage"}, "not an engine URL"),
        Case(t + "-engine_url-meta", target, "engine_url", "shell-metacharacters",
             {"engine_url": "unix:///run/x.sock;touch /tmp/perry-pwned"}, "not an engine URL"),
        Case(t + "-engine_url-http", target, "engine_url", "engine-url-garbage",
             {"engine_url": "http://127.0.0.1:2375"}, "not an engine URL"),
        Case(t + "-engine_timeout-zero", target, "engine_timeout", "not-positive", {"engine_timeout": 0}, "greater than 0"),
        Case(t + "-engine_timeout-type", target, "engine_timeout", "wrong-type", {"engine_timeout": "soon"}, "engine_timeout"),
    ]


def _ws(**kw):
    return {"name": "$Pws", **kw}


CASES = []

# ----------------------------------------------------------------------------------------- perry_workspace
CASES += [c._replace(args={"name": c.args}) for c in _name_cases(_W, "name")]
CASES += [
    Case("workspace-name-reserved", _W, "name", "reserved", {"name": "@host"}, "reserved"),
    Case("workspace-name-type", _W, "name", "wrong-type", {"name": ["a", "b"]}, "is invalid"),
    Case("workspace-workspaces-name-meta", _W, "workspaces", "shell-metacharacters",
         {"workspaces": [{"name": "$P" + META}]}, "is invalid"),
    # ansible-core's own words for a string where a list of mappings belongs (it does not name the option)
    Case("workspace-workspaces-type", _W, "workspaces", "wrong-type", {"workspaces": "alice"}, "dictionary requested"),
    Case("workspace-workspaces-unknown-key", _W, "workspaces", "malformed",
         {"workspaces": [{"name": "$Pws", "colour": "red"}]}, "colour"),
    Case("workspace-workspaces-duplicate", _W, "workspaces", "conflict",
         {"workspaces": [{"name": "$Pws"}, {"name": "$Pws"}]}, "listed twice"),
    Case("workspace-name-and-workspaces", _W, "workspaces", "conflict",
         {"name": "$Pws", "workspaces": [{"name": "$Pws2"}]}, "mutually exclusive"),
    Case("workspace-state-unknown", _W, "state", "unknown-choice", _ws(state="running"), "value of state must be one of"),
    Case("workspace-workspaces-state-unknown", _W, "workspaces", "unknown-choice",
         {"workspaces": [{"name": "$Pws", "state": "gone"}]}, "must be one of"),
    Case("workspace-image-meta", _W, "image", "shell-metacharacters", _ws(image="localhost/perry;touch /tmp/perry-pwned"),
         "could not be pulled"),
    Case("workspace-image-upper", _W, "image", "uppercase", _ws(image="localhost/Perry:latest"), "could not be pulled"),
    Case("workspace-image-missing", _W, "image", "missing-file", _ws(image="localhost/perry-no-such:1", pull="never"),
         "perry.fleet.image"),
    Case("workspace-image-empty", _W, "image", "empty", _ws(image=""), "image is required"),
    Case("workspace-pull-unknown", _W, "pull", "unknown-choice", _ws(pull="sometimes"), "value of pull must be one of"),
    Case("workspace-env-key-meta", _W, "env", "shell-metacharacters", _ws(env={"A;B": "x"}), "not a valid environment variable name"),
    Case("workspace-env-value-newline", _W, "env", "shell-metacharacters", _ws(env={"A": "x\nEVIL=1"}), "newline"),
    Case("workspace-env-reserved", _W, "env", "reserved", _ws(env={"DOCKER_HOST": "tcp://x:1"}), "must not set DOCKER_HOST"),
    Case("workspace-env-type", _W, "env", "wrong-type", _ws(env=["A=1"]), "argument 'env' is of type list"),
    Case("workspace-secret_env-key-empty", _W, "secret_env", "empty", _ws(secret_env={"": "secret-1"}), "not a valid environment variable name"),
    Case("workspace-secret_env-value-newline", _W, "secret_env", "shell-metacharacters",
         _ws(secret_env={"TOKEN": "x\nEVIL=1"}), "newline"),
    Case("workspace-secret_env-both", _W, "secret_env", "conflict", _ws(env={"T": "1"}, secret_env={"T": "2"}),
         "both env and secret_env"),
    Case("workspace-docker_host-garbage", _W, "docker_host", "engine-url-garbage", _ws(docker_host="garbage"),
         "not an engine URL"),
    Case("workspace-docker_host-meta", _W, "docker_host", "shell-metacharacters",
         _ws(docker_host="tcp://x:2375 ;touch /tmp/perry-pwned"), "not an engine URL"),
    Case("workspace-docker_host-docker", _W, "docker_host", "conflict",
         _ws(runtime="docker", engine_cli="/usr/bin/docker", docker_host="tcp://x:2375"), "only with runtime=podman"),
    Case("workspace-privileged-podman", _W, "privileged", "conflict", _ws(privileged=True), "privileged=true is refused"),
    Case("workspace-privileged-type", _W, "privileged", "wrong-type", _ws(privileged="maybe"), "privileged"),
    Case("workspace-memory-meta", _W, "memory", "shell-metacharacters", _ws(memory="4g;touch /tmp/perry-pwned"),
         "memory"),
    Case("workspace-memory-garbage", _W, "memory", "malformed", _ws(memory="lots"), "memory 'lots' is invalid"),
    Case("workspace-cpus-negative", _W, "cpus", "not-positive", _ws(cpus=-1), "cpus must be greater than 0"),
    Case("workspace-cpus-type", _W, "cpus", "wrong-type", _ws(cpus="two"), "cpus"),
    Case("workspace-pids_limit-zero", _W, "pids_limit", "not-positive", _ws(pids_limit=0), "pids_limit must be greater than 0"),
    Case("workspace-pids_limit-type", _W, "pids_limit", "wrong-type", _ws(pids_limit="many"), "pids_limit"),
    Case("workspace-ssh_port-out", _W, "ssh_port", "out-of-range", _ws(ssh_port=80), "outside its range"),
    Case("workspace-ssh_port-type", _W, "ssh_port", "wrong-type", _ws(ssh_port="ssh"), "ssh_port"),
    Case("workspace-ssh_port-taken", _W, "ssh_port", "port-taken",
         _ws(ssh_port="$TAKEN_PORT", ssh_port_range=["$TAKEN_PORT", "$TAKEN_PORT"]), "in use"),
    Case("workspace-ssh_port_range-inverted", _W, "ssh_port_range", "inverted-port-range",
         _ws(ssh_port_range=[2400, 2200]), "not a valid port range"),
    Case("workspace-ssh_port_range-beyond", _W, "ssh_port_range", "out-of-range",
         _ws(ssh_port_range=[0, 70000]), "not a valid port range"),
    Case("workspace-ssh_port_range-short", _W, "ssh_port_range", "malformed", _ws(ssh_port_range=[2200]), "must be [start, end]"),
    Case("workspace-ssh_port_range-exhausted", _W, "ssh_port_range", "exhausted-port-range",
         _ws(ssh_port_range=["$TAKEN_PORT", "$TAKEN_PORT"]), "no free ssh port"),
    Case("workspace-worker_port-out", _W, "worker_port", "out-of-range", _ws(worker_port=22), "outside its range"),
    Case("workspace-worker_port-docker", _W, "worker_port", "conflict",
         _ws(runtime="docker", engine_cli="/usr/bin/docker", worker_port=7400), "only with runtime=podman"),
    Case("workspace-worker_port_range-inverted", _W, "worker_port_range", "inverted-port-range",
         _ws(worker_port_range=[7500, 7392]), "not a valid port range"),
    Case("workspace-worker_port_range-exhausted", _W, "worker_port_range", "exhausted-port-range",
         _ws(worker_port_range=["$TAKEN_PORT", "$TAKEN_PORT"]), "no free worker port"),
    Case("workspace-worker_port_range-type", _W, "worker_port_range", "wrong-type",
         _ws(worker_port_range=["low", "high"]), "worker_port_range"),
    Case("workspace-bind_address-meta", _W, "bind_address", "shell-metacharacters",
         _ws(bind_address="127.0.0.1;touch /tmp/perry-pwned"), "bind_address"),
    Case("workspace-bind_address-garbage", _W, "bind_address", "malformed", _ws(bind_address="999.1.1.1"), "bind_address"),
    Case("workspace-port_lock_path-missing", _W, "port_lock_path", "missing-file",
         _ws(port_lock_path="/nonexistent/dir/ports.lock"), "cannot open the port lock"),
    Case("workspace-purge-type", _W, "purge", "wrong-type", _ws(purge="maybe"), "purge"),
    Case("workspace-adopt-type", _W, "adopt", "wrong-type", _ws(adopt="maybe"), "adopt"),
    Case("workspace-worker_source-missing", _W, "worker_source", "missing-file", _ws(worker_source="/nonexistent/perry"),
         "does not exist on this host"),
    Case("workspace-worker_source-not-dist", _W, "worker_source", "missing-file", _ws(worker_source="/etc"),
         "without cli.js"),
    Case("workspace-files-dest-traversal", _W, "files", "path-traversal",
         _ws(files=[{"dest": "../../etc/passwd", "content": "data-1"}]), "outside the workspace home"),
    Case("workspace-files-dest-absolute", _W, "files", "path-traversal",
         _ws(files=[{"dest": "/etc/shadow", "content": "data-1"}]), "outside the workspace home"),
    Case("workspace-files-dest-empty", _W, "files", "empty", _ws(files=[{"dest": "", "content": "data-1"}]), "needs dest"),
    Case("workspace-files-src-missing", _W, "files", "missing-file",
         _ws(files=[{"dest": "~/.gitconfig", "src": "/nonexistent/gitconfig"}]), "is not a file or directory on this host"),
    Case("workspace-files-content-and-src", _W, "files", "conflict",
         _ws(files=[{"dest": "~/.gitconfig", "src": "/etc/hostname", "content": "data-1"}]), "exactly one of content or src"),
    Case("workspace-files-mode-garbage", _W, "files", "malformed",
         _ws(files=[{"dest": "~/.gitconfig", "content": "data-1", "mode": "rwx"}]), "not an octal mode"),
    Case("workspace-files-type", _W, "files", "wrong-type", _ws(files="~/.gitconfig"), "dictionary requested"),
    Case("workspace-start_timeout-negative", _W, "start_timeout", "not-positive", _ws(start_timeout=-1),
         "start_timeout must be greater than 0"),
    Case("workspace-stop_timeout-negative", _W, "stop_timeout", "not-positive", _ws(stop_timeout=-5),
         "stop_timeout must be 0 or more"),
]
CASES += [c._replace(args=dict(c.args, name="$Pws")) for c in _engine_cases(_W)]

# ------------------------------------------------------------------------- perry_worker_health, perry_sessions
for _target in (_H, _S):
    _t = _target.replace("perry_", "")
    CASES += [c._replace(args={"name": c.args}, expect="give the workspace" if c.category == "empty" else c.expect)
              for c in _name_cases(_target, "name")]
    CASES += [c._replace(args={"names": ["$Pok", c.args]}, option="names", id=c.id.replace("-name-", "-names-"))
              for c in _name_cases(_target, "name") if c.category in ("shell-metacharacters", "path-traversal")]
    CASES += [c._replace(args=dict(c.args, name="$Pws")) for c in _engine_cases(_target)]
    CASES += [
        Case(_t + "-transport-unknown", _target, "transport", "unknown-choice", {"name": "$Pws", "transport": "ssh"},
             "value of transport must be one of"),
        Case(_t + "-request_timeout-zero", _target, "request_timeout", "not-positive", {"name": "$Pws", "request_timeout": 0},
             "request_timeout must be greater than 0"),
        Case(_t + "-name-and-names", _target, "names", "conflict", {"name": "$Pws", "names": ["$Pws2"]}, "mutually exclusive"),
        Case(_t + "-names-type", _target, "names", "wrong-type", {"names": {"a": 1}}, "names"),
    ]
CASES += [
    Case("worker_health-timeout-zero", _H, "timeout", "not-positive", {"name": "$Pws", "timeout": 0}, "timeout must be greater than 0"),
    Case("worker_health-timeout-type", _H, "timeout", "wrong-type", {"name": "$Pws", "timeout": "soon"}, "timeout"),
    Case("worker_health-interval-negative", _H, "interval", "not-positive", {"name": "$Pws", "interval": -1},
         "interval must be greater than 0"),
    Case("worker_health-restart_on_mismatch-type", _H, "restart_on_mismatch", "wrong-type",
         {"name": "$Pws", "restart_on_mismatch": "maybe"}, "restart_on_mismatch"),
    Case("worker_health-fail_on_unhealthy-type", _H, "fail_on_unhealthy", "wrong-type",
         {"name": "$Pws", "fail_on_unhealthy": "maybe"}, "fail_on_unhealthy"),
    Case("worker_health-expected_version-empty", _H, "expected_version", "empty", {"name": "$Pws", "expected_version": ""},
         "expected_version"),
    Case("sessions-state-unknown", _S, "state", "unknown-choice", {"name": "$Pws", "state": "deleted"}, "value of state must be one of"),
    Case("sessions-state-absent-without-id", _S, "session_id", "empty", {"name": "$Pws", "state": "absent"}, "session_id"),
    Case("sessions-session_id-traversal", _S, "session_id", "path-traversal", {"name": "$Pws", "session_id": ".."},
         "session_id"),
    Case("sessions-session_id-empty", _S, "session_id", "empty", {"name": "$Pws", "session_id": ""}, "session_id"),
    Case("sessions-session_id-newline", _S, "session_id", "shell-metacharacters",
         {"name": "$Pws", "session_id": "abc\ndef"}, "session_id"),
    Case("sessions-messages-without-id", _S, "messages", "conflict", {"name": "$Pws", "messages": True}, "session_id"),
    Case("sessions-limit-zero", _S, "limit", "not-positive", {"name": "$Pws", "limit": 0}, "limit must be at least 1"),
    Case("sessions-offset-negative", _S, "offset", "out-of-range", {"name": "$Pws", "offset": -1}, "offset at least 0"),
    Case("sessions-limit-type", _S, "limit", "wrong-type", {"name": "$Pws", "limit": "all"}, "limit"),
    Case("sessions-agent_type-unknown", _S, "agent_type", "unknown-choice", {"name": "$Pws", "agent_type": ["gpt"]},
         "agent_type"),
    Case("sessions-since-garbage", _S, "since", "malformed", {"name": "$Pws", "since": "yesterday-ish"},
         "neither milliseconds since the epoch nor an ISO 8601 date"),
    Case("sessions-since-bool", _S, "since", "wrong-type", {"name": "$Pws", "since": True}, "not a boolean"),
    Case("sessions-query-garbage", _S, "query", "malformed", {"name": "$Pws", "query": "[?"}, "not a valid JMESPath"),
    Case("sessions-fail_on_error-type", _S, "fail_on_error", "wrong-type", {"name": "$Pws", "fail_on_error": "maybe"},
         "fail_on_error"),
]

# ----------------------------------------------------------------------------------------------- perry_state
_PS = "perry_state"
_PSW = [{"name": "$Pws"}]
CASES += [c._replace(args={"workspaces": [{"name": c.args}]}, option="workspaces.name",
                     id=c.id.replace("state-name", "state-workspaces-name")) for c in _name_cases(_PS, "name")]
CASES += [c._replace(args=dict(c.args, workspaces=_PSW)) for c in _engine_cases(_PS)]
CASES += [
    Case("state-workspaces-no-container", _PS, "workspaces.name", "missing-file", {"workspaces": [{"name": "$Pnone"}]},
         "no container workspace-"),
    Case("state-workspaces-type", _PS, "workspaces", "wrong-type", {"workspaces": "alice"}, "dictionary requested"),
    Case("state-state-unknown", _PS, "state", "unknown-choice", {"workspaces": _PSW, "state": "gone"},
         "value of state must be one of"),
    Case("state-lock_timeout-zero", _PS, "lock_timeout", "not-positive", {"workspaces": _PSW, "lock_timeout": 0},
         "lock_timeout must be greater than 0"),
    Case("state-config_dir-under-a-file", _PS, "config_dir", "malformed",
         {"workspaces": _PSW, "state": "absent", "config_dir": "$DIST/cli.js/perry"}, "not a directory"),
]

# ----------------------------------------------------------------------------------------------- role:workspace
_L = "perry_workspace_list"
CASES += [c._replace(args={_L: [{"name": c.args}]}, option=_L + ".name", id=c.id.replace("rworkspace-name", "rworkspace-list-name"))
          for c in _name_cases(_RW, "name")]
CASES += [
    Case("rworkspace-runtime-unknown", _RW, "perry_workspace_runtime", "unknown-runtime", {"perry_workspace_runtime": "lxc"},
         "perry_workspace_runtime"),
    Case("rworkspace-engine_cli-missing", _RW, "perry_workspace_engine_cli", "missing-cli",
         {"perry_workspace_engine_cli": "/nonexistent/podman"}, "not found"),
    Case("rworkspace-engine_url-garbage", _RW, "perry_workspace_engine_url", "engine-url-garbage",
         {"perry_workspace_engine_url": "garbage"}, "not an engine URL"),
    Case("rworkspace-engine_url-missing-socket", _RW, "perry_workspace_engine_url", "missing-file",
         {"perry_workspace_engine_url": "unix:///nonexistent/podman.sock"}, "not a socket on this host"),
    Case("rworkspace-image-meta", _RW, "perry_workspace_image", "shell-metacharacters",
         {"perry_workspace_image": "localhost/perry;touch /tmp/perry-pwned"}, "could not be pulled"),
    Case("rworkspace-list-type", _RW, _L, "wrong-type", {_L: "alice"}, _L),
    Case("rworkspace-list-name-missing", _RW, _L + ".name", "empty", {_L: [{"memory": "4g"}]}, "name"),
    Case("rworkspace-list-memory-garbage", _RW, _L + ".memory", "malformed", {_L: [{"name": "$Pws", "memory": "lots"}]},
         "memory 'lots' is invalid"),
    Case("rworkspace-list-cpus-negative", _RW, _L + ".cpus", "not-positive", {_L: [{"name": "$Pws", "cpus": -2}]},
         "cpus must be greater than 0"),
    Case("rworkspace-list-pids_limit-type", _RW, _L + ".pids_limit", "wrong-type",
         {_L: [{"name": "$Pws", "pids_limit": "many"}]}, "pids_limit"),
    Case("rworkspace-list-state-unknown", _RW, _L + ".state", "unknown-choice", {_L: [{"name": "$Pws", "state": "gone"}]},
         "state"),
    Case("rworkspace-list-repo_url-newline", _RW, _L + ".repo_url", "shell-metacharacters",
         {_L: [{"name": "$Pws", "repo_url": "https://example.org/r.git\nEVIL=1"}]}, "newline"),
    Case("rworkspace-post_start-src-missing", _RW, "perry_workspace_post_start", "missing-file",
         {"perry_workspace_post_start": [{"src": "/nonexistent/setup.sh"}]}, "is not a file on the controller"),
    Case("rworkspace-post_start-name-meta", _RW, "perry_workspace_post_start", "shell-metacharacters",
         {"perry_workspace_post_start": [{"name": "a;rm -rf ~", "content": "true"}]}, "script name"),
    Case("rworkspace-list-post_start-timeout", _RW, _L + ".post_start", "not-positive",
         {_L: [{"name": "$Pws", "post_start": [{"name": "a", "content": "true", "timeout": 0}]}]}, "between 1 and"),
    Case("rworkspace-list-env-key-meta", _RW, _L + ".env", "shell-metacharacters",
         {_L: [{"name": "$Pws", "env": {"A;B": "1"}}]}, "not a valid environment variable name"),
    Case("rworkspace-list-files-traversal", _RW, _L + ".files", "path-traversal",
         {_L: [{"name": "$Pws", "files": [{"dest": "../../etc/passwd", "content": "data-1"}]}]}, "outside the workspace home"),
    Case("rworkspace-env-type", _RW, "perry_workspace_env", "wrong-type", {"perry_workspace_env": ["A=1"]}, "perry_workspace_env"),
    Case("rworkspace-env-reserved", _RW, "perry_workspace_env", "reserved", {"perry_workspace_env": {"DOCKER_HOST": "tcp://x:1"}},
         "must not set DOCKER_HOST"),
    Case("rworkspace-secret_env-newline", _RW, "perry_workspace_secret_env", "shell-metacharacters",
         {"perry_workspace_secret_env": {"TOKEN": "x\nEVIL=1"}}, "newline"),
    Case("rworkspace-files-src-missing", _RW, "perry_workspace_files", "missing-file",
         {"perry_workspace_files": [{"dest": "~/.gitconfig", "src": "/nonexistent/gitconfig"}]}, "is not a file or directory on this host"),
    Case("rworkspace-files-traversal", _RW, "perry_workspace_files", "path-traversal",
         {"perry_workspace_files": [{"dest": "~/../../root/.bashrc", "content": "data-1"}]}, "outside the workspace home"),
    Case("rworkspace-docker_host-garbage", _RW, "perry_workspace_docker_host", "engine-url-garbage",
         {"perry_workspace_docker_host": "garbage"}, "not an engine URL"),
    Case("rworkspace-state-unknown", _RW, "perry_workspace_state", "unknown-choice", {"perry_workspace_state": "running"},
         "perry_workspace_state"),
    Case("rworkspace-purge-type", _RW, "perry_workspace_purge", "wrong-type", {"perry_workspace_purge": "maybe"},
         "perry_workspace_purge"),
    Case("rworkspace-perry_state-type", _RW, "perry_workspace_perry_state", "wrong-type",
         {"perry_workspace_perry_state": "maybe"}, "perry_workspace_perry_state"),
    Case("rworkspace-worker_source-missing", _RW, "perry_workspace_worker_source", "missing-file",
         {"perry_workspace_worker_source": "/nonexistent/perry"}, "does not exist on this host"),
    Case("rworkspace-health_timeout-zero", _RW, "perry_workspace_health_timeout", "not-positive",
         {"perry_workspace_health_timeout": 0}, "perry_workspace_health_timeout"),
    Case("rworkspace-health_timeout-type", _RW, "perry_workspace_health_timeout", "wrong-type",
         {"perry_workspace_health_timeout": "soon"}, "perry_workspace_health_timeout"),
    Case("rworkspace-engine_timeout-zero", _RW, "perry_workspace_engine_timeout", "not-positive",
         {"perry_workspace_engine_timeout": 0}, "greater than 0"),
]

# ---------------------------------------------------------------------------------------------------- role:image
CASES += [
    Case("rimage-engine-unknown", _RI, "perry_image_engine", "unknown-runtime", {"perry_image_engine": "lxc"}, "perry_image_engine"),
    Case("rimage-runtime-unknown", _RI, "perry_image_runtime", "unknown-runtime", {"perry_image_runtime": "containerd"},
         "perry_image_runtime"),
    Case("rimage-engine_cli-missing", _RI, "perry_image_engine_cli", "missing-cli", {"perry_image_engine_cli": "/nonexistent/podman"},
         "perry_image_engine_cli"),
    Case("rimage-engine_url-garbage", _RI, "perry_image_engine_url", "engine-url-garbage", {"perry_image_engine_url": "garbage"},
         "not an engine URL"),
    Case("rimage-name-meta", _RI, "perry_image_name", "shell-metacharacters",
         {"perry_image_name": "localhost/$Pimg;touch /tmp/perry-pwned"}, "perry_image_name"),
    Case("rimage-name-upper", _RI, "perry_image_name", "uppercase", {"perry_image_name": "localhost/$PIMG:latest"},
         "perry_image_name"),
    Case("rimage-name-traversal", _RI, "perry_image_name", "path-traversal", {"perry_image_name": "../../$Pimg"}, "perry_image_name"),
    Case("rimage-name-long", _RI, "perry_image_name", "too-long", {"perry_image_name": "localhost/$P" + "x" * 260},
         "perry_image_name"),
    Case("rimage-name-empty", _RI, "perry_image_name", "empty", {"perry_image_name": ""}, "perry_image_name"),
    Case("rimage-base-meta", _RI, "perry_image_base", "shell-metacharacters",
         {"perry_image_base": "localhost/perry-base:bookworm$(touch /tmp/perry-pwned)"}, "perry_image_base"),
    Case("rimage-bun_version-meta", _RI, "perry_image_bun_version", "shell-metacharacters",
         {"perry_image_bun_version": "1.4.4; touch /tmp/perry-pwned"}, "perry_image_bun_version"),
    Case("rimage-bun_version-empty", _RI, "perry_image_bun_version", "empty", {"perry_image_bun_version": ""},
         "perry_image_bun_version"),
    Case("rimage-claude_code_version-meta", _RI, "perry_image_claude_code_version", "shell-metacharacters",
         {"perry_image_claude_code_version": "2.1.0 evil-package"}, "perry_image_claude_code_version"),
    Case("rimage-codex_integrity-malformed", _RI, "perry_image_codex_integrity", "malformed",
         {"perry_image_codex_version": "0.171.0", "perry_image_codex_integrity": "sha1-deadbeef;touch /tmp/perry-pwned"},
         "perry_image_codex_integrity"),
    Case("rimage-opencode_version-meta", _RI, "perry_image_opencode_version", "shell-metacharacters",
         {"perry_image_opencode_version": "1.0.0;touch /tmp/perry-pwned"}, "perry_image_opencode_version"),
    Case("rimage-extra_packages-meta", _RI, "perry_image_extra_packages", "shell-metacharacters",
         {"perry_image_extra_packages": ["curl; touch /tmp/perry-pwned"]}, "perry_image_extra_packages"),
    Case("rimage-extra_packages-type", _RI, "perry_image_extra_packages", "wrong-type",
         {"perry_image_extra_packages": {"curl": 1}}, "perry_image_extra_packages"),
    Case("rimage-ca_certificates-missing", _RI, "perry_image_ca_certificates", "missing-file",
         {"perry_image_ca_certificates": ["/nonexistent/ca.crt"]}, "/nonexistent/ca.crt"),
    Case("rimage-work_dir-relative", _RI, "perry_image_work_dir", "path-traversal", {"perry_image_work_dir": "../../tmp"},
         "perry_image_work_dir"),
    Case("rimage-build_timeout-zero", _RI, "perry_image_build_timeout", "not-positive", {"perry_image_build_timeout": 0},
         "perry_image_build_timeout"),
    Case("rimage-build_timeout-type", _RI, "perry_image_build_timeout", "wrong-type", {"perry_image_build_timeout": "1h"},
         "perry_image_build_timeout"),
    Case("rimage-build_retries-negative", _RI, "perry_image_build_retries", "out-of-range", {"perry_image_build_retries": -1},
         "perry_image_build_retries"),
    Case("rimage-bootstrap_suite-meta", _RI, "perry_image_base_bootstrap_suite", "shell-metacharacters",
         {"perry_image_base_bootstrap": True, "perry_image_base_bootstrap_suite": "bookworm;touch /tmp/perry-pwned"},
         "perry_image_base_bootstrap_suite"),
    Case("rimage-bootstrap_mirror-garbage", _RI, "perry_image_base_bootstrap_mirror", "malformed",
         {"perry_image_base_bootstrap": True, "perry_image_base_bootstrap_mirror": "ftp:/nowhere"},
         "perry_image_base_bootstrap_mirror"),
    Case("rimage-bootstrap-type", _RI, "perry_image_base_bootstrap", "wrong-type", {"perry_image_base_bootstrap": "maybe"},
         "perry_image_base_bootstrap"),
    Case("rimage-force_build-type", _RI, "perry_image_force_build", "wrong-type", {"perry_image_force_build": "maybe"},
         "perry_image_force_build"),
    Case("rimage-build_extra_args-type", _RI, "perry_image_build_extra_args", "wrong-type",
         {"perry_image_build_extra_args": {"--pull": True}}, "perry_image_build_extra_args"),
    # --- issue 19 (worker side: since must be a moment; a huge one crashed perry_sessions with OverflowError) ---
    Case("sessions-since-inf", _S, "since", "out-of-range", {"name": "$Pws", "since": float("inf")}, "is not a moment"),
    Case("sessions-since-minus-inf", _S, "since", "out-of-range", {"name": "$Pws", "since": float("-inf")},
         "is not a moment"),
    Case("sessions-since-nan", _S, "since", "malformed", {"name": "$Pws", "since": float("nan")}, "is not a moment"),
    Case("sessions-since-huge", _S, "since", "out-of-range", {"name": "$Pws", "since": 10 ** 30}, "is out of range"),
    Case("sessions-since-huge-negative", _S, "since", "out-of-range", {"name": "$Pws", "since": -10 ** 30},
         "is out of range"),
    Case("sessions-since-huge-float", _S, "since", "out-of-range", {"name": "$Pws", "since": 1e300}, "is out of range"),
    Case("sessions-since-huge-digits", _S, "since", "too-long", {"name": "$Pws", "since": "9" * 400}, "is out of range"),
    Case("sessions-since-dot-inf", _S, "since", "malformed", {"name": "$Pws", "since": ".inf"},
         "neither milliseconds since the epoch nor an ISO 8601 date"),
]

# --- issue 19 (workspaces, volumes and ports) ---
CASES += [
    Case("workspace-workspaces-volume-collision", _W, "workspaces", "conflict",
         {"runtime": "docker", "engine_cli": "docker", "workspaces": [{"name": "$Px"}, {"name": "$Px-docker"}]},
         "would share volume"),
    Case("workspace-workspaces-same-ssh_port", _W, "ssh_port", "port-taken",
         {"workspaces": [{"name": "$Pa", "ssh_port": 2398}, {"name": "$Pb", "ssh_port": 2398}]}, "asked for by both"),
    Case("workspace-env-line-too-long", _W, "env", "too-long", _ws(env={"BIG": "x" * 70000}), "read at most 65535"),
    Case("workspace-labels-label-too-long", _W, "labels", "too-long",
         _ws(labels={"a%d" % i: "y" * 9000 for i in range(8)}), "label about"),
    Case("workspace-secret_env-line-too-long", _W, "secret_env", "too-long", _ws(secret_env={"BIG": "s" * 70000}),
         "takes at most 65535"),
]

_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), sorted(i for i in _ids if _ids.count(i) > 1)
assert all(c.category in CATEGORIES for c in CASES), [c.id for c in CASES if c.category not in CATEGORIES]
