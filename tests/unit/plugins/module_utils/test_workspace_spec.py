from __future__ import annotations

import pytest

from ansible_collections.perry.fleet.plugins.module_utils import layout
from ansible_collections.perry.fleet.plugins.module_utils import workspace_files as files_mod
from ansible_collections.perry.fleet.plugins.module_utils import workspace_spec as ws
from ansible_collections.perry.fleet.plugins.module_utils.runtime_profile import PROFILES, get_profile


def spec(runtime="docker", **kw):
    base = dict(name="alice", profile=PROFILES[runtime], image="localhost/perry:latest", image_id="abc",
                privileged=PROFILES[runtime].privileged,
                ssh_port=2200, worker_port=7392 if runtime == "podman" else None)
    base.update(kw)
    return ws.WorkspaceSpec(**base)


@pytest.mark.parametrize("name", ["a", "alice", "a-b", "0", "a" * 63, "x1-y2"])
def test_valid_names(name):
    assert layout.validate_name(name) == name


@pytest.mark.parametrize("name,fragment", [
    ("", "empty"), ("   ", "empty"), (None, "empty"), ("@host", "reserved"), ("a" * 64, "at most 63"),
    ("Alice", "invalid"), ("-a", "invalid"), ("a-", "invalid"), ("a_b", "invalid"), ("a;rm -rf /", "invalid"),
    ("../etc", "invalid"), ("a b", "invalid"), ("$(id)", "invalid"),
])
def test_invalid_names_say_why(name, fragment):
    with pytest.raises(ws.SpecError, match=fragment):
        layout.validate_name(name)


def test_unknown_runtime_lists_choices():
    with pytest.raises(ValueError, match="docker, podman"):
        get_profile("lxc")


def test_docker_argv_has_privileged_hostname_and_dind_volume():
    args = spec("docker").create_args("/e", "/l")
    assert "--privileged" in args
    assert args[args.index("--hostname") + 1] == "alice"
    assert "workspace-alice:/home/workspace:rw" in args
    assert "workspace-alice-docker:/var/lib/docker:rw" in args
    assert "127.0.0.1:2200:22/tcp" in args
    assert not any(a.endswith(":7392/tcp") for a in args)
    assert args[args.index("--restart") + 1] == "unless-stopped"
    assert args[-1] == "localhost/perry:latest"


def test_podman_argv_skips_privileged_hostname_dind_and_publishes_worker_on_loopback():
    args = spec("podman", bind_address="0.0.0.0").create_args("/e", "/l")
    assert "--privileged" not in args and "--hostname" not in args
    assert not any("/var/lib/docker" in a for a in args)
    assert "0.0.0.0:2200:22/tcp" in args
    assert "127.0.0.1:7392:7392/tcp" in args  # worker never follows bind_address


def test_no_env_or_label_value_on_argv():
    s = spec("podman", env={"FOO": "visible-value"}, secret_env={"TOKEN": "s3cret"}, docker_host="tcp://x:2375")
    argv = " ".join(s.create_args("/tmp/env", "/tmp/labels"))
    assert "s3cret" not in argv and "visible-value" not in argv and "tcp://x:2375" not in argv
    assert "--env-file /tmp/env" in argv and "--label-file /tmp/labels" in argv


def test_container_env_forwards_docker_host_only_for_podman_and_carries_no_secret():
    s = spec("podman", env={"A": "1"}, secret_env={"TOKEN": "t", "KEY": "k"}, docker_host="tcp://pip:2375")
    env = s.container_env()
    assert env["DOCKER_HOST"] == "tcp://pip:2375"
    assert "TOKEN" not in env and "KEY" not in env and ws.SECRET_KEYS_ENV not in env
    assert "DOCKER_HOST" not in spec("docker", docker_host="tcp://pip:2375").container_env()


def test_public_spec_and_labels_hide_secret_values():
    s = spec("podman", secret_env={"TOKEN": "s3cret"})
    assert "s3cret" not in str(s.public())
    assert "s3cret" not in str(s.labels())
    assert "TOKEN" not in str(s.labels())


def test_hash_changes_with_image_id_and_ports_but_not_with_secrets():
    h = spec().spec_hash()
    assert h == spec().spec_hash()
    assert h != spec(image_id="def").spec_hash()
    assert h != spec(ssh_port=2201).spec_hash()
    # secrets are applied in place (a file in the workspace): rotating one recreates nothing
    assert h == spec(secret_env={"T": "1"}).spec_hash() == spec(secret_env={"T": "2", "U": "3"}).spec_hash()


def test_secrets_file_is_shell_quoted_0600_and_keyed_per_host():
    f = files_mod.secrets_file("alice", {"B": "it's $x", "A": ""}, b"k1" * 16)
    assert f.dest == layout.SECRETS_FILE and f.mode == "0600"
    text = f.content.decode()
    assert text.endswith("A=''\nB='it'\"'\"'s $x'\n")
    # the same secrets under another host key give another digest: not testable against guesses offline
    assert f.digest != files_mod.secrets_file("alice", {"B": "it's $x", "A": ""}, b"k2" * 16).digest


@pytest.mark.parametrize("env,fragment", [
    ({"1BAD": "x"}, "not a valid environment variable"),
    ({"A-B": "x"}, "not a valid environment variable"),
    ({"A": "line\nbreak"}, "newline"),
    ({"DOCKER_HOST": "tcp://x:1"}, "docker_host"),
    ("A=1", "mapping"),
])
def test_bad_env(env, fragment):
    with pytest.raises(ws.SpecError, match=fragment):
        ws.validate_env(env, "env")


def test_env_values_are_stringified():
    assert ws.validate_env({"A": 1, "B": True, "C": None}, "env") == {"A": "1", "B": "true", "C": ""}


def test_kv_file_is_literal_lines():
    assert ws.kv_file_text({"B": "x y", "A": 'q"=1'}) == 'A=q"=1\nB=x y\n'


@pytest.mark.parametrize("rng", [(2400, 2200), (0, 10), (1, 70000)])
def test_bad_ranges(rng):
    with pytest.raises(ws.SpecError, match="not a valid port range"):
        ws.validate_range(rng, "ssh_port_range")


def test_port_out_of_range():
    with pytest.raises(ws.SpecError, match="outside its range 2200-2400"):
        ws.validate_port(80, (2200, 2400), "ssh_port")


def test_changed_keys_only_reports_differences():
    before, after = ws.changed_keys({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4})
    assert before == {"b": 2, "c": None} and after == {"b": 3, "c": 4}


def test_hash_is_schema_versioned_and_ignores_unset_values():
    s = spec()
    assert s.spec_hash().startswith("v%d:" % ws.SPEC_SCHEMA)
    # A future option that defaults to unset must not change the hash of today's workspaces.
    with_new_unset_key = {"public": dict(s.public(), future_option=None)}
    assert ws._digest(ws._without_unset(with_new_unset_key)) == s.spec_hash().split(":")[1]


def test_hash_of_the_previous_schema_still_matches():
    s = spec(secret_env={"T": "1"})
    # perry.fleet 0.1.0 labels: bare sha256, unset values, secret keys and values included
    legacy = ws._digest({"public": dict(s.public(), env={}, secret_env_keys=["T"]), "secret_env": {"T": "1"}})
    assert s.matches_hash(legacy)
    assert not spec(secret_env={"T": "2"}).matches_hash(legacy)   # its secrets are in its env: rotating recreates
    assert s.matches_hash(s.spec_hash())
    assert not s.matches_hash(spec(image_id="def").spec_hash())
    assert not s.matches_hash(None)
    assert not s.matches_hash("v99:" + s.spec_hash().split(":")[1])


def test_memory_units_are_the_engines_1024_based_ones():
    assert ws.memory_bytes("4g") == 4 * 1024 ** 3 and ws.memory_bytes("512M") == 512 * 1024 ** 2
    assert ws.memory_bytes("100") == 100 and ws.memory_bytes("3k") == 3072
    assert ws.memory_text(4 * 1024 ** 3) == "4g" and ws.memory_text(1536 * 1024 ** 2) == "1536m"
    assert ws.memory_text(0) is None and ws.memory_text(1000) == "1000b"


def test_resources_update_compares_hostconfig_and_knows_what_docker_cannot_do():
    hc = {"Memory": 1024 ** 3, "MemorySwap": 2 * 1024 ** 3, "NanoCpus": 1500000000, "PidsLimit": 100}
    assert spec(memory="1g", cpus=1.5, pids_limit=100).resources_update(hc) == []
    assert spec(memory="2g", cpus=1.5, pids_limit=100).resources_update(hc) == [
        "--memory", str(2 * 1024 ** 3), "--memory-swap", str(4 * 1024 ** 3)]
    assert spec(memory="1g", cpus=2.0, pids_limit=None).resources_update(hc) == ["--cpus", "2", "--pids-limit", "-1"]
    assert spec(memory="1g", cpus=1.5, pids_limit=100).resources_update(dict(hc, PidsLimit=-1)) == ["--pids-limit", "100"]
    assert spec(memory=None, cpus=1.5, pids_limit=100).resources_update(hc) is None   # docker cannot unset memory
    assert spec(memory="1g", cpus=None, pids_limit=100).resources_update(hc) is None  # nor cpus
    assert spec().resources_update({"PidsLimit": 0}) == [] and spec().resources_update(None) == []
    # podman cannot update in place at all (see RuntimeProfile.update_resources)
    assert spec("podman", memory="2g").resources_update(hc) is None
    assert spec("podman", memory="1g", cpus=1.5, pids_limit=100).resources_update(hc) == []


def test_recreate_reasons_leave_out_what_is_applied_in_place():
    old = spec(memory="1g")
    label = dict(old.public(), env={"A": "1"})            # a schema-1 label still carries env
    assert ws.recreate_reasons(label, spec(memory="2g", image_id="def")) == ["image_id"]
    assert ws.recreate_reasons(label, spec(memory=None), forced=("resources",)) == ["resources"]
    podman = spec("podman", memory="1g")
    assert ws.recreate_reasons(podman.public(), spec("podman", memory="2g")) == ["resources"]


def test_env_is_a_shell_file_and_unsets_what_an_old_container_still_carries():
    f = files_mod.env_file({"B": "it's $x", "A": ""}, unset={"OLD": "1", "A": "0"})
    assert f.dest == layout.ENV_FILE and f.mode == "0644"
    assert f.content.decode().splitlines()[1:] == ["unset OLD", "A=''", "B='it'\"'\"'s $x'"]
    assert "A" not in spec(env={"A": "1"}).container_env() and spec(env={"A": "1"}).public()["env"] == {}
    assert spec(env={"A": "1"}).spec_hash() == spec().spec_hash()


def test_keys_the_entrypoint_reads_at_start_stay_in_the_container_and_recreate():
    key = {"SSH_PUBLIC_KEY": "ssh-ed25519 AAAA x"}
    s = spec(env=dict(key, A="1"))
    assert s.container_env()["SSH_PUBLIC_KEY"] == key["SSH_PUBLIC_KEY"] and "A" not in s.container_env()
    assert s.public()["env"] == key and s.spec_hash() != spec().spec_hash()
    other = spec(env={"SSH_PUBLIC_KEY": "ssh-ed25519 BBBB y", "A": "1"})
    assert ws.recreate_reasons(s.public(), other) == ["env"]
    # an old (schema 1) label with every env key: a changed startup key still does not match, a shell key does
    label = dict(s.public(), env=dict(key, A="1"))
    v1 = "v1:" + ws._digest(ws._without_unset({"public": label}))
    assert spec(env=dict(key, A="2")).matches_hash(v1, label)
    assert not other.matches_hash(v1, label)


def test_mounts_are_named_volumes_in_the_spec_and_the_argv():
    mounts = ws.validate_mounts([{"source": "perry-engine-alice-sock", "target": "/run/perry-engine/"},
                                 {"source": "tools", "target": "/opt/tools", "readonly": True}], "alice")
    assert mounts == [{"source": "tools", "target": "/opt/tools", "readonly": True},
                      {"source": "perry-engine-alice-sock", "target": "/run/perry-engine", "readonly": False}]
    s = spec("podman", mounts=mounts)
    args = s.create_args("/e", "/l")
    assert "perry-engine-alice-sock:/run/perry-engine:rw" in args and "tools:/opt/tools:ro" in args
    assert s.public()["mounts"] == mounts
    assert s.spec_hash() != spec("podman").spec_hash()
    assert "mounts" not in spec("podman").public()   # a workspace without mounts keeps its hash


@pytest.mark.parametrize("mounts, words", [
    ([{"source": "/var/run/docker.sock", "target": "/run/x"}], "not a volume name"),
    ([{"source": "workspace-bob", "target": "/mnt/bob"}], "another workspace"),
    ([{"source": "perry-engine-bob-sock", "target": "/run/perry-engine"}], "only its own engine"),
    ([{"source": "perry-engine-alice-storage", "target": "/mnt/x"}], "only its own engine"),
    ([{"source": "v", "target": "run/x"}], "absolute path"),
    ([{"source": "v", "target": "/run/x:ro"}], "absolute path"),
    ([{"source": "v", "target": "/home/workspace/x"}], "system directory"),
    ([{"source": "v", "target": "/etc/../usr/bin"}], "system directory"),
    ([{"source": "v", "target": "/"}], "system directory"),
    ([{"source": "v", "target": "/srv/a"}, {"source": "w", "target": "/srv/a/"}], "listed twice"),
    ([{"source": "v", "target": "/srv/a", "mode": "rw"}], "unknown key"),
    ({"source": "v"}, "must be a list"),
])
def test_bad_mounts_say_what_to_do(mounts, words):
    with pytest.raises(ws.SpecError, match=words):
        ws.validate_mounts(mounts, "alice")
