from __future__ import annotations

import pytest

from ansible_collections.perry.fleet.plugins.module_utils.snake import snake_case, snake_keys


@pytest.mark.parametrize("name,want", [
    ("lastActivity", "last_activity"), ("agentType", "agent_type"), ("sessionCount", "session_count"),
    ("workerAgentType", "worker_agent_type"), ("toolID", "tool_id"), ("filePath", "file_path"),
    ("already_snake", "already_snake"), ("id", "id"), ("mtime", "mtime"), ("HTTPStatus", "http_status"),
])
def test_snake_case(name, want):
    assert snake_case(name) == want


def test_snake_keys_leaves_values_alone():
    assert snake_keys({"toolInput": {"filePath": "x"}}) == {"tool_input": {"filePath": "x"}}
