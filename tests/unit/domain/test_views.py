from mn_api.domain.views import job_details_view, system_summary_view

TOPOLOGY = {
    "nodes": [{"node_id": "a", "type": "map"}, {"node_id": "b"}],
    "edges": [
        {"from_node": "a", "to_node": "b", "message_type": "x"},
        {"from_node": "a", "to_node": "b", "message_type": "y"},
    ],
}


def test_agents_gain_what_clients_read_beside_the_cores_fields() -> None:
    details = {
        "job": {"job_id": "j"},
        "agents": [
            {"agent_id": "a", "running?": True, "paused?": False, "last_error": None},
            {"agent_id": "b", "running?": False, "paused?": True},
            {"agent_id": "c"},
        ],
    }
    a, b, c = job_details_view(details, TOPOLOGY)["agents"]
    assert a == {
        "agent_id": "a",
        "running?": True,
        "paused?": False,
        "last_error": None,
        "running": True,
        "paused": False,
        "type": "map",
        "metadata": {"paused": False, "outbound_edges": ["b"]},
    }
    assert (b["type"], b["paused"], b["metadata"]) == (
        "generic",
        True,
        {"paused": True, "outbound_edges": []},
    )
    assert "type" not in c and "running" not in c  # nothing is invented for an unknown agent


def test_what_a_core_sent_stays_as_it_sent_it() -> None:
    agent = {"agent_id": "a", "type": "stream", "running": False, "metadata": {"x": 1}}
    assert job_details_view({"agents": [dict(agent)]}, TOPOLOGY)["agents"] == [agent]
    assert job_details_view({}, None) == {}
    assert job_details_view("not a document", None) == "not a document"


def test_summary_nodes_gain_self() -> None:
    summary = {"nodes": [{"name": "n", "self?": True}, {"name": "m", "self?": False}]}
    assert [n["self"] for n in system_summary_view(summary)["nodes"]] == [True, False]
    assert system_summary_view({}) == {}
