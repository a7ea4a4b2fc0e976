"""Ray clusters for tests, on ports of their own so they never collide with another Ray on this machine."""

from __future__ import annotations

import socket


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(workers: int = 0, head_cpus: int | None = None, worker_cpus: int = 1):
    """A head node with its dashboard (Jobs API) plus ``workers`` worker nodes.

    Returns ``(cluster, dashboard_url, worker_nodes)``. Every node's dashboard agent
    gets a free port: Ray's default agent port (52365) is shared by every Ray
    instance on the host, and a second instance on it cannot accept jobs.
    """
    from ray.cluster_utils import Cluster

    dashboard_port = free_port()
    head_args = {"include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": dashboard_port,
                 "dashboard_agent_listen_port": free_port()}
    if head_cpus is not None:
        head_args["num_cpus"] = head_cpus
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    nodes = [cluster.add_node(num_cpus=worker_cpus, dashboard_agent_listen_port=free_port()) for _ in range(workers)]
    cluster.wait_for_nodes()
    return cluster, f"http://127.0.0.1:{dashboard_port}", nodes


#: Ray's default dashboard agent port: a second embedded Ray on one host collides on it.
AGENT_PORT = 52365


def agent_port_taken() -> bool:
    """Whether something listens on Ray's default agent port (a Ray instance this test would collide with)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # only a listener counts, not TIME_WAIT
        try:
            s.bind(("", AGENT_PORT))
        except OSError:
            return True
    return False
