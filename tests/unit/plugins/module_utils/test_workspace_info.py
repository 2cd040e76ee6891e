from __future__ import annotations

from ansible_collections.perry.fleet.plugins.module_utils import workspace_info


def test_describe_reads_state_ports_and_image_but_never_env():
    c = {"Id": "abc", "Name": "/workspace-alice", "Image": "sha256:123",
         "State": {"Running": True, "Paused": True, "Status": "paused", "StartedAt": "2026-12-01T10:00:00Z"},
         "Config": {"Image": "localhost/perry:latest", "Env": ["TOKEN=s3cret"],
                    "Labels": {"workspace.name": "alice", "perry.fleet.spec-hash": "x"}},
         "HostConfig": {"PortBindings": {"22/tcp": [{"HostIp": "127.0.0.1", "HostPort": "2201"}],
                                         "7392/tcp": [{"HostIp": "127.0.0.1", "HostPort": "7400"}]}},
         "RestartCount": 2}
    w = workspace_info.describe(c)
    assert w["name"] == "alice" and w["state"] == "paused" and not w["running"] and w["managed_by_collection"]
    assert w["ports"] == {"ssh": 2201, "worker": 7400, "bind_address": "127.0.0.1"}
    assert w["image_id"] == "123" and w["restart_count"] == 2
    assert "s3cret" not in repr(w)


def test_describe_names_a_perry_made_container_without_our_labels():
    w = workspace_info.describe({"Name": "/workspace-bob", "State": {"Running": False, "Status": "exited"}})
    assert w["name"] == "bob" and w["state"] == "stopped" and w["status"] == "exited" and not w["managed_by_collection"]


def test_limits_come_from_the_same_inspect_unlimited_is_none():
    c = {"Name": "/workspace-a", "HostConfig": {"Memory": 268435456, "NanoCpus": 1500000000, "PidsLimit": 64}}
    assert workspace_info.describe(c)["limits"] == {"memory": 268435456, "cpus": 1.5, "pids": 64}
    for host in ({"Memory": 0, "NanoCpus": 0, "PidsLimit": -1}, {"PidsLimit": None}, {}, None):
        assert workspace_info.describe({"Name": "/workspace-a", "HostConfig": host})["limits"] == {
            "memory": None, "cpus": None, "pids": None}
    # podman versions that record --cpus as a CFS quota
    quota = {"Name": "/workspace-a", "HostConfig": {"NanoCpus": 0, "CpuQuota": 150000, "CpuPeriod": 100000}}
    assert workspace_info.limits(quota)["cpus"] == 1.5
