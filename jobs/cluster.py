"""What the Ray cluster looks like, for administrators. Call from inside the cluster (a Serve replica)."""

from __future__ import annotations


def cluster_summary() -> dict:
    import ray

    nodes = []
    for node in ray.nodes():
        nodes.append({
            "node_id": node["NodeID"],
            "alive": bool(node["Alive"]),
            "address": node.get("NodeManagerAddress"),
            "is_head": "node:__internal_head__" in node.get("Resources", {}),
            "resources": {k: v for k, v in node.get("Resources", {}).items() if not k.startswith("node:")},
        })
    return {
        "nodes": nodes,
        "alive_nodes": sum(n["alive"] for n in nodes),
        "total_resources": {k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")},
        "available_resources": {k: v for k, v in ray.available_resources().items() if not k.startswith("node:")},
    }
