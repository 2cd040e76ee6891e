"""Unit tests never touch the host's real worker key (worker_auth.py): each test gets its own."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def private_worker_key(tmp_path, monkeypatch):
    path = tmp_path / "worker-key" / "worker.key"
    monkeypatch.setenv("PERRY_FLEET_WORKER_KEY", str(path))
    return path
