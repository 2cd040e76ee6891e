from __future__ import annotations

from ansible_collections.perry.fleet.plugins.filter.perry import FilterModule


def test_filters_answer_from_the_collections_own_tables():
    f = FilterModule().filters()
    assert f["runtime_profile"]("podman")["worker_format"] == "dist"
    assert f["runtime_profile"]("docker")["worker_format"] == "binary"
    assert f["engine_command"]("podman", "unix:///run/p.sock") == ["podman", "--url", "unix:///run/p.sock"]
    assert f["engine_command"]("docker", "") == ["docker"]
    assert f["engine_environment"]("/usr/bin/docker", "tcp://127.0.0.1:2375") == {"DOCKER_HOST": "tcp://127.0.0.1:2375"}
    assert f["engine_environment"]("podman", "unix:///x") == {}
