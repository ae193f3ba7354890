from mn_api.domain.graph import GraphBuilder


def _message(source: str, target: str, kind: str, at: str) -> dict:
    return {
        "timestamp": at,
        "type": "agent_message_received",
        "agent_id": target,
        "payload": {"from": source, "to": target, "type": kind},
    }


def test_graph_merges_agents_topology_and_events() -> None:
    builder = GraphBuilder("job-1")
    builder.add_job(
        {
            "job": {"graph_id": "g", "status": "running"},
            "agents": [
                {
                    "agent_id": "a",
                    "agent_type": "router",
                    "status": "running",
                    "processed_messages": 2,
                    "mailbox_depth": 1,
                    "assigned_node": "n1",
                    "metadata": {"outbound_edges": ["b", "c"]},
                },
            ],
        }
    )
    builder.add_topology(
        {
            "nodes": [{"node_id": "b", "agent_type": "executor", "type": "llm"}],
            "edges": [
                {"from_node": "a", "to_node": "b", "message_type": "task"},
                {"from_node": "b", "to_node": "d", "message_type": "done"},
            ],
        }
    )
    builder.add_event(_message("a", "b", "task", "2026-01-01T00:00:00.001Z"))
    builder.add_event(_message("a", "b", "task", "2026-01-01T00:00:00.003Z"))
    builder.add_event(_message("x", "b", "note", "2026-01-01T00:00:00.002Z"))
    builder.add_event({"type": "job_running", "agent_id": None})
    envelope_event = {
        "type": "agent_message_received",
        "agent_id": "d",
        "timestamp": "2026-01-01T00:00:00.004Z",
        "payload": {"message": {"envelope": {"from": "b", "to": "d", "type": "done"}}},
    }
    builder.add_event(envelope_event)
    graph = builder.build()

    assert graph["graph_id"] == "g" and graph["status"] == "running"
    assert [n["id"] for n in graph["nodes"]] == ["a", "b", "c", "d", "x"]
    a = graph["nodes"][0]
    assert (a["agent_type"], a["processed_messages"], a["mailbox_depth"], a["assigned_node"]) == (
        "router",
        2,
        1,
        "n1",
    )
    assert graph["nodes"][1]["type"] == "llm"
    edges = {e["id"]: e for e in graph["edges"]}
    assert list(edges) == sorted(edges)
    task = edges["a->b:task"]
    assert (task["count"], task["source_event"], task["last_seen_at"]) == (
        2,
        "manifest+events",
        "2026-01-01T00:00:00.003Z",
    )
    assert edges["x->b:note"]["source_event"] == "events"
    assert edges["b->d:done"]["source_event"] == "manifest+events"
    # a->b already has an edge, so only a->c comes from the agent's metadata.
    assert edges["a->c:*"]["source_event"] == "agent_metadata"
    assert "a->b:*" not in edges
    assert graph["stats"] == {
        "agent_count": 5,
        "edge_count": 4,
        "message_count": 4,
        "event_count": 5,
    }


def test_initial_inputs_without_a_sender_add_no_edge() -> None:
    builder = GraphBuilder("j")
    builder.add_event(
        {
            "type": "agent_message_received",
            "agent_id": "r",
            "payload": {"from": None, "to": "r", "type": "initial_input"},
        }
    )
    graph = builder.build()
    assert graph["edges"] == [] and [n["id"] for n in graph["nodes"]] == ["r"]
