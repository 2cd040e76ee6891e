from __future__ import annotations

import stat
import time

import pytest

from ansible_collections.perry.fleet.plugins.module_utils.engine import (
    Engine, EngineError, EngineTimeout, _match_names, exec_argv)


def fake_cli(tmp_path, body, name="docker"):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_timeout_kills_the_whole_process_group(tmp_path):
    marker = tmp_path / "child-alive"
    cli = fake_cli(tmp_path, "(sleep 5; touch %s) & sleep 30\n" % marker)
    eng = Engine(cli=cli)
    start = time.monotonic()
    with pytest.raises(EngineTimeout, match="timed out after"):
        eng.run(["ps"], timeout=0.5)
    assert time.monotonic() - start < 2
    time.sleep(5.5)
    assert not marker.exists(), "the engine's child survived the kill"
    assert eng.commands[-1]["rc"] is None


def test_failure_carries_command_rc_and_stderr(tmp_path):
    eng = Engine(cli=fake_cli(tmp_path, "echo boom >&2; exit 3\n"))
    with pytest.raises(EngineError) as info:
        eng.run(["volume", "ls"])
    assert info.value.rc == 3 and "boom" in info.value.stderr and "volume ls" in info.value.cmd


def test_secrets_are_redacted_from_commands_and_stderr(tmp_path):
    eng = Engine(cli=fake_cli(tmp_path, 'echo "bad $2" >&2; exit 1\n'), secrets=["hunter2"])
    with pytest.raises(EngineError) as info:
        eng.run(["x", "hunter2"])
    assert "hunter2" not in info.value.cmd and "hunter2" not in info.value.stderr
    assert "hunter2" not in str(eng.commands)


def test_docker_cli_gets_docker_host_podman_gets_url(tmp_path):
    docker = Engine(cli=fake_cli(tmp_path, 'echo "$DOCKER_HOST $*"\n'), url="tcp://127.0.0.1:2375")
    assert docker.run(["info"]).stdout.strip() == "tcp://127.0.0.1:2375 info"
    podman = Engine(cli=fake_cli(tmp_path, 'echo "[$DOCKER_HOST] $*"\n', name="podman"), url="unix:///run/p.sock")
    assert podman.run(["info"]).stdout.strip() == "[] --url unix:///run/p.sock info"


@pytest.mark.parametrize("url", ["http://x", "garbage", "tcp://", "unix://relative", "tcp://h:2375 --x"])
def test_bad_engine_urls_are_refused_with_advice(url):
    with pytest.raises(ValueError, match="unix:///path"):
        Engine(cli="sh", url=url)


def test_missing_cli_is_refused_with_advice():
    with pytest.raises(ValueError, match="not found on PATH"):
        Engine(cli="no-such-engine-cli")


def test_inspect_tolerates_missing_objects_but_not_engine_errors(tmp_path):
    ok = Engine(cli=fake_cli(tmp_path, 'echo \'[{"Name":"/workspace-a","State":{},"Config":{}}]\'; '
                                       'echo "Error: No such object: workspace-b" >&2; exit 1\n'))
    assert list(ok.inspect(["workspace-a", "workspace-b"])) == ["workspace-a"]
    down = Engine(cli=fake_cli(tmp_path, 'echo "[]"; for n in "$@"; do echo "Cannot connect to the Docker daemon" >&2; done; exit 1\n',
                               name="d2"))
    with pytest.raises(EngineError, match="Cannot connect") as info:
        down.inspect(["workspace-a", "workspace-b", "perry:latest"])
    assert info.value.msg.count("Cannot connect") == 1  # the docker CLI says it once per name; we say it once


def test_image_names_match_tags_with_registry_prefixes():
    image = {"Id": "sha256:abc", "RepoTags": ["localhost/perry:latest"]}
    found = _match_names(["perry:latest", "perry", "localhost/perry:latest", "abc"], [image])
    assert set(found) == {"perry:latest", "perry", "localhost/perry:latest", "abc"}


def test_a_volume_named_like_the_container_is_never_taken_for_it():
    volume = {"Name": "workspace-a", "Mountpoint": "/var/lib/x", "Driver": "local"}
    assert _match_names(["workspace-a"], [volume]) == {}


def test_container_state_reads_paused_as_its_own_state():
    from ansible_collections.perry.fleet.plugins.module_utils.engine import container_state, is_running
    assert container_state(None) == "missing"
    assert container_state({"State": {"Running": True, "Status": "running"}}) == "running"
    assert container_state({"State": {"Running": True, "Paused": True, "Status": "paused"}}) == "paused"  # docker
    assert container_state({"State": {"Running": False, "Status": "paused"}}) == "paused"
    assert container_state({"State": {"Running": False, "Status": "exited"}}) == "stopped"
    assert container_state({"State": "running"}) == "running"
    assert not is_running({"State": {"Running": True, "Paused": True}})


def test_port_bindings_from_both_places_without_duplicates():
    from ansible_collections.perry.fleet.plugins.module_utils.engine import PortBinding, port_bindings
    c = {"NetworkSettings": {"Ports": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2201"}], "7392/tcp": None}},
         "HostConfig": {"PortBindings": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2201"}],
                                         "7392/tcp": [{"HostIp": "127.0.0.1", "HostPort": "7400"}]}}}
    assert port_bindings(c) == [PortBinding("22/tcp", "127.0.0.1", 2201), PortBinding("7392/tcp", "127.0.0.1", 7400)]
    assert port_bindings(None) == []


def test_one_engine_url_check_for_both_options():
    from ansible_collections.perry.fleet.plugins.module_utils.engine import validate_engine_url
    from ansible_collections.perry.fleet.plugins.module_utils.errors import SpecError
    assert validate_engine_url("tcp://podman-in-podman:2375", "docker_host")
    for bad in ("tcp://nohost", "http://x:1", "unix://relative", "", None):
        with pytest.raises(SpecError, match="is not an engine URL"):
            validate_engine_url(bad, "docker_host")


def test_command_prefix_and_env_per_cli():
    from ansible_collections.perry.fleet.plugins.module_utils.engine import command_env, command_prefix
    assert command_prefix("/usr/bin/podman-remote", "unix:///s") == ["/usr/bin/podman-remote", "--url", "unix:///s"]
    assert command_prefix("docker", "unix:///s") == ["docker"]
    assert command_env("unix:///s", "docker") == {"DOCKER_HOST": "unix:///s"}
    assert command_env("unix:///s", "podman") == {} and command_env(None, "docker") == {}


def test_every_exec_names_its_user_and_replaces_the_image_path():
    argv = exec_argv("c", ["/bin/true"], "root")
    assert argv == ["exec", "-u", "root", "-w", "/", "--env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "c", "/bin/true"]
    assert exec_argv("c", ["/bin/sh", "-s"], "workspace", interactive=True)[:2] == ["exec", "-i"]
    with pytest.raises(ValueError):
        exec_argv("c", ["/bin/true"], "")  # never the image's default user
