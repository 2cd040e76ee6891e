from __future__ import annotations

import hashlib
import os
from types import SimpleNamespace

import pytest

from ansible_collections.perry.fleet.plugins.module_utils.container_files import (
    file_state_on_host, host_path, read_on_host, stat_on_host)


def engine(url=None, kind="docker"):
    return SimpleNamespace(url=url, kind=kind)


def container(tmp_path):
    upper, volume = tmp_path / "upper", tmp_path / "volume"
    upper.mkdir()
    volume.mkdir()
    return {"GraphDriver": {"Data": {"UpperDir": str(upper)}},
            "Mounts": [{"Type": "volume", "Source": str(volume), "Destination": "/home/workspace"}]}, upper, volume


def test_paths_map_to_the_longest_mount_else_the_writable_layer(tmp_path):
    c, upper, volume = container(tmp_path)
    assert host_path(c, "/home/workspace/.config/x") == (str(volume), ".config/x")
    assert host_path(c, "/home/workspacex/y") == (str(upper), "home/workspacex/y")
    assert host_path(c, "/usr/local/lib/perry/MANIFEST") == (str(upper), "usr/local/lib/perry/MANIFEST")
    assert host_path({"Mounts": []}, "/etc/x") is None and host_path(None, "/etc/x") is None


def test_reads_regular_files_in_the_layer_and_in_volumes(tmp_path):
    c, upper, volume = container(tmp_path)
    (upper / "etc").mkdir()
    (upper / "etc" / "m").write_text("binary abc\n")
    (volume / "f").write_text("digest\n")
    assert read_on_host(engine(), c, "/etc/m") == "binary abc\n"
    assert read_on_host(engine("unix:///run/podman/podman.sock", "podman"), c, "/home/workspace/f") == "digest\n"
    assert read_on_host(engine(), c, "/etc/missing") is None


def test_remote_engines_are_never_read_on_this_host(tmp_path):
    c, upper, _volume = container(tmp_path)
    (upper / "m").write_text("x")
    assert read_on_host(engine("tcp://10.0.0.5:2375"), c, "/m") is None
    assert read_on_host(engine("ssh://build-host", "podman"), c, "/m") is None
    assert read_on_host(engine(), c, "/m") == "x"


def test_an_inherited_docker_host_counts_as_the_engine_url(tmp_path, monkeypatch):
    c, upper, _volume = container(tmp_path)
    (upper / "m").write_text("x")
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.0.0.5:2375")
    assert read_on_host(engine(), c, "/m") is None
    assert read_on_host(engine(kind="podman"), c, "/m") == "x"  # the podman CLI reads CONTAINER_HOST, not DOCKER_HOST


@pytest.mark.parametrize("link_at", ["dir", "file"])
def test_symlinks_planted_by_the_container_are_not_followed(tmp_path, link_at):
    c, upper, _volume = container(tmp_path)
    secret = tmp_path / "host-secret"
    secret.write_text("host only\n")
    if link_at == "file":
        (upper / "etc").mkdir()
        os.symlink(str(secret), str(upper / "etc" / "m"))
    else:
        os.symlink(str(tmp_path), str(upper / "etc"))
        (tmp_path / "m").write_text("host only\n")
    assert read_on_host(engine(), c, "/etc/m") is None


def test_fifos_and_directories_are_not_read(tmp_path):
    c, upper, _volume = container(tmp_path)
    os.mkfifo(str(upper / "fifo"))
    (upper / "dir").mkdir()
    assert read_on_host(engine(), c, "/fifo") is None  # would block a plain open()
    assert read_on_host(engine(), c, "/dir") is None


def test_a_fifo_never_blocks_and_a_link_in_any_component_is_not_followed(tmp_path):
    c, _upper, volume = container(tmp_path)
    os.mkfifo(volume / "fifo")  # no writer: a blocking open would hang here
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "f").write_text("secret")
    os.symlink(tmp_path / "outside", volume / "linkdir")
    os.symlink(tmp_path / "outside" / "f", volume / "linkfile")
    for path in ("fifo", "linkdir/f", "linkfile"):
        assert read_on_host(engine(), c, "/home/workspace/" + path) is None
        assert stat_on_host(engine(), c, "/home/workspace/" + path) is None
        assert file_state_on_host(engine(), c, "/home/workspace/" + path, 6) is None


def test_file_state_hashes_only_at_the_expected_size(tmp_path):
    c, _upper, volume = container(tmp_path)
    (volume / "f").write_bytes(b"abc")
    (volume / "f").chmod(0o640)
    assert file_state_on_host(engine(), c, "/home/workspace/f", 3) == (0o640, hashlib.sha256(b"abc").hexdigest())
    assert file_state_on_host(engine(), c, "/home/workspace/f", 4) == ("size", None)  # never read at another size
    assert stat_on_host(engine(), c, "/home/workspace/f").st_size == 3
    assert file_state_on_host(engine(url="tcp://10.0.0.1:2375"), c, "/home/workspace/f", 3) is None  # not this host
