from __future__ import annotations

import stat
import time

import pytest

from ansible_collections.perry.fleet.plugins.module_utils.engine import Engine, EngineError, EngineTimeout, _match_names


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
