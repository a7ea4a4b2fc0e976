"""The API replica runs at the head node's normal CPU priority, above the job drivers.

Ray starts its worker processes, actors included, at nice 15; the replica asks for 0 (as Ray's job supervisors
do), and the drivers lower themselves to 10 (``jobs.runner.DRIVER_NICENESS``), so a burst of small tasks running
in their drivers cannot take the cores from the requests that create them.
"""

from __future__ import annotations

import os

import pytest

from jobs.runner import DRIVER_NICENESS
from tests.conftest import Service

pytestmark = pytest.mark.ray


def test_the_api_replica_runs_at_nice_0_above_the_drivers(service: Service) -> None:
    from ray.util.state import list_actors

    replicas = [a for a in list_actors(filters=[("state", "=", "ALIVE")], limit=1000)
                if a.class_name.startswith("ServeReplica:rayproc:")]
    assert replicas, "no rayproc replica among the cluster's actors"
    for replica in replicas:
        assert os.getpriority(os.PRIO_PROCESS, replica.pid) == 0 < DRIVER_NICENESS
