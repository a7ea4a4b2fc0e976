"""The API replica, Serve's proxy and Serve's controller run at the head node's normal CPU priority, above the
job drivers.

Ray starts its worker processes, actors included, at nice 15; the replica and Serve's controller (which passes its
runtime env on to the proxy) ask for 0, as Ray's job supervisors do, and the drivers start at 10
(``jobs.launcher.DRIVER_NICENESS``), so a burst of small tasks running in their drivers cannot take the cores from
the requests that create them.
"""

from __future__ import annotations

import os

import pytest

from jobs.launcher import DRIVER_NICENESS
from tests.conftest import Service

pytestmark = pytest.mark.ray


def test_the_request_path_runs_at_nice_0_above_the_drivers(service: Service) -> None:
    from ray.util.state import list_actors

    alive = list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
    for kind in ("ServeReplica:rayproc:", "ProxyActor", "ServeController"):
        actors = [a for a in alive if a.class_name.startswith(kind)]
        assert actors, f"no {kind} among the cluster's actors"
        for actor in actors:
            assert os.getpriority(os.PRIO_PROCESS, actor.pid) == 0 < DRIVER_NICENESS, kind
