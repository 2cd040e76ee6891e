from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.perry.fleet.plugins.filter.ssh import authorized_keys_file, public_key_problem

ED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDyWf8mCMv8H2m1k3x6zq0Qy0E9S1Vb0m4m8kGJ8m2aT alice@laptop"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 bob"


@pytest.mark.parametrize("text,problem", [
    (ED + "\n", None),
    ("# my keys\n" + ED + "\n" + RSA + "\n", None),
    ('from="10.0.0.0/8",no-pty ' + ED, None),
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn...\n-----END OPENSSH PRIVATE KEY-----\n", "private key"),
    (ED + "\nhello world\n", "line 2 is not an OpenSSH public key"),
])
def test_public_key_problem(text, problem):
    found = public_key_problem(text)
    assert (found is None) if problem is None else (problem in found)


def test_authorized_keys_file_joins_keys_in_order_once(tmp_path):
    a, b = tmp_path / "a.pub", tmp_path / "b.pub"
    a.write_text(ED + "\n")
    b.write_text(RSA + "\n" + ED + "\n")
    [entry] = authorized_keys_file([str(a), str(b)], [{"dest": "~/.gitconfig", "content": "x"}], "dev")
    assert entry == {"dest": "~/.ssh/authorized_keys", "content": ED + "\n" + RSA + "\n", "mode": "0600"}
    assert authorized_keys_file([], None, "dev") == []


@pytest.mark.parametrize("setup,message", [
    (lambda d: str(d / "missing.pub"), "is missing on the controller"),
    (lambda d: (d / "id").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n") and str(d / "id"), "is a private key"),
    (lambda d: (d / "big.pub").write_text("x" * 70000) and str(d / "big.pub"), "larger than"),
])
def test_bad_key_files_are_refused_with_what_to_do(tmp_path, setup, message):
    with pytest.raises(AnsibleFilterError, match=message):
        authorized_keys_file([setup(tmp_path)], [], "dev")


def test_a_files_entry_for_authorized_keys_clashes(tmp_path):
    key = tmp_path / "a.pub"
    key.write_text(ED)
    with pytest.raises(AnsibleFilterError, match="use one of them"):
        authorized_keys_file([str(key)], [{"dest": "~/.ssh/authorized_keys", "content": ED}], "dev")


def test_keys_by_workspace_shared_then_own_and_own_files_replace_shared(tmp_path):
    from ansible_collections.perry.fleet.plugins.filter.ssh import authorized_keys_by_workspace
    a, b = tmp_path / "a.pub", tmp_path / "b.pub"
    a.write_text(ED)
    b.write_text(RSA)
    shared_files = [{"dest": "~/.ssh/authorized_keys", "content": ED}]
    out = authorized_keys_by_workspace([{"name": "x", "ssh_authorize": [str(b)], "files": []}, {"name": "y"}],
                                       [], shared_files)
    assert out["x"][0]["content"] == RSA + "\n" and out["y"] == []
    with pytest.raises(AnsibleFilterError, match="workspace y has both"):
        authorized_keys_by_workspace([{"name": "y"}], [str(a)], shared_files)
