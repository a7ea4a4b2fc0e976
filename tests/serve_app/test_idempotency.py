"""The idempotency table on its own: claims, repeats, conflicts, failures, expiry and concurrent repeats."""

from __future__ import annotations

import threading

import pytest

from jobs.db import IntegrityError
from rayproc_contract.errors import Conflict, InvalidRequest, RayUnavailable
from serve_app.idempotency import Answer, IdempotencyKeys, fingerprint

DAY_MS = 86_400_000


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


class Creates:
    """A create that counts its calls and answers a new id each time."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls = 0
        self.gate = gate
        self._lock = threading.Lock()

    def __call__(self) -> Answer:
        with self._lock:
            self.calls += 1
            number = self.calls
        if self.gate is not None:
            self.gate.wait(5)
        return Answer(200, {"task_id": f"t{number}"})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def keys(database: str, clock: Clock) -> IdempotencyKeys:
    """On SQLite and on PostgreSQL (``database`` is parametrised)."""
    return IdempotencyKeys(database, clock=clock, wait_seconds=2, poll_seconds=0.01)


def test_the_fingerprint_ignores_key_order_and_counts_bytes_by_content() -> None:
    assert fingerprint("e", body={"a": 1, "b": [1, {"x": 2, "y": 3}]}) == \
        fingerprint("e", body={"b": [1, {"y": 3, "x": 2}], "a": 1})
    assert fingerprint("e", body={"a": 1}) != fingerprint("e", body={"a": 2})
    assert fingerprint("e", body={"a": 1}) != fingerprint("other", body={"a": 1})
    assert fingerprint("e", file=b"abc") == fingerprint("e", file=b"abc") != fingerprint("e", file=b"abd")


def test_without_a_key_every_request_creates(keys: IdempotencyKeys) -> None:
    create = Creates()
    assert [keys.run("p1", None, "f", create).body for _ in range(2)] == [{"task_id": "t1"}, {"task_id": "t2"}]
    assert keys.count() == 0


def test_a_repeat_gets_the_first_answer_and_creates_nothing(keys: IdempotencyKeys) -> None:
    create = Creates()
    first = keys.run("p1", "k-1", "f", create)
    again = keys.run("p1", "k-1", "f", create)
    assert create.calls == 1
    assert (first.status_code, first.body, first.replayed) == (200, {"task_id": "t1"}, False)
    assert (again.status_code, again.body, again.replayed) == (200, {"task_id": "t1"}, True)
    assert again.response().headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.response().headers


def test_the_same_key_for_another_request_is_a_conflict_naming_the_key(keys: IdempotencyKeys) -> None:
    create = Creates()
    keys.run("p1", "k-1", "f", create)
    with pytest.raises(Conflict, match="'k-1'.*different request"):
        keys.run("p1", "k-1", "another body", create)
    assert create.calls == 1


def test_projects_keep_their_keys_apart(keys: IdempotencyKeys) -> None:
    create = Creates()
    assert keys.run("p1", "same", "f", create).body == {"task_id": "t1"}
    assert keys.run("p2", "same", "other", create).body == {"task_id": "t2"}
    assert keys.run("p2", "same", "other", create).body == {"task_id": "t2"}
    assert (keys.count("p1"), keys.count("p2")) == (1, 1)


def test_a_failed_create_does_not_pin_the_key(keys: IdempotencyKeys) -> None:
    def unavailable() -> Answer:
        raise RayUnavailable("the Ray cluster is not reachable")

    with pytest.raises(RayUnavailable):
        keys.run("p1", "k-1", "f", unavailable)
    assert keys.count() == 0
    assert keys.run("p1", "k-1", "f", Creates()).body == {"task_id": "t1"}


def test_an_answer_that_is_not_a_success_is_not_kept(keys: IdempotencyKeys) -> None:
    assert keys.run("p1", "k-1", "f", lambda: Answer(400, {"error_code": "x"})).status_code == 400
    assert keys.count() == 0


def test_keys_expire_after_their_time_and_are_pruned(database: str, clock: Clock) -> None:
    keys = IdempotencyKeys(database, ttl_seconds=DAY_MS / 1000, clock=clock)
    create = Creates()
    keys.run("p1", "old", "f", create)
    keys.run("p1", "kept", "f", create)
    clock.now += DAY_MS - 1
    assert keys.run("p1", "old", "f", create).replayed  # still kept just before the day is over
    clock.now += 60_001  # past the day, and past the minute between two prunes
    fresh = keys.run("p1", "old", "another body", create)  # expired: free again, for any request
    assert (fresh.replayed, fresh.body, create.calls) == (False, {"task_id": "t3"}, 3)
    assert keys.count() == 1  # "kept" was pruned with it; "old" holds the new answer


def test_a_claim_whose_holder_never_answered_is_taken_over_after_the_lease(keys: IdempotencyKeys,
                                                                           clock: Clock) -> None:
    assert keys._claim("p1", "k-1", "f", "dead-holder") is None  # a create that never came back
    with pytest.raises(Conflict, match="still in progress"):
        IdempotencyKeys(keys.target, clock=clock, wait_seconds=0.05, poll_seconds=0.01).run("p1", "k-1", "f", Creates())
    clock.now += int(keys.lease_ms) + 1
    assert keys.run("p1", "k-1", "f", Creates()).body == {"task_id": "t1"}


def test_concurrent_repeats_create_once_and_all_get_the_one_answer(keys: IdempotencyKeys) -> None:
    gate = threading.Event()
    create = Creates(gate)
    answers: list[Answer] = []
    threads = [threading.Thread(target=lambda: answers.append(keys.run("p1", "k-1", "f", create)))
               for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join(10)
    assert create.calls == 1
    assert len(answers) == 8 and {a.body["task_id"] for a in answers} == {"t1"}
    assert sum(not a.replayed for a in answers) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "naïve", "a/b"],
                         ids=["empty", "too-long", "space", "non-ascii", "slash"])
def test_a_malformed_key_is_refused_before_anything_runs(keys: IdempotencyKeys, key: str) -> None:
    create = Creates()
    with pytest.raises(InvalidRequest, match="Idempotency-Key header"):
        keys.run("p1", key, "f", create)
    assert create.calls == 0


@pytest.mark.parametrize("key", ["a", "x" * 255, "0b1e0c52-7f3a-4c7e-9b53-1a2b3c4d5e6f", "job:step.2_a"],
                         ids=["one", "longest", "uuid", "punctuated"])
def test_well_formed_keys_are_accepted(keys: IdempotencyKeys, key: str) -> None:
    assert keys.run("p1", key, "f", Creates()).body == {"task_id": "t1"}


# ----- one write transaction: the key taken in the create's own transaction (processor tasks) -----------


class TaskCreates:
    """A processor-task create as the route makes it: the key is taken in the task insert's transaction.
    ``barrier``: every create waits there after its key read found nothing, so concurrent ones race to commit."""

    def __init__(self, store, barrier: threading.Barrier | None = None) -> None:
        self.store = store
        self.barrier = barrier
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, claim) -> Answer:
        with self._lock:
            self.calls += 1
            task_id = f"t{self.calls}"
        if self.barrier is not None:
            self.barrier.wait(10)
        answer = Answer(200, {"task_id": task_id})
        self.store.insert_task(_task_row(task_id), within=None if claim is None else
                               (lambda conn: claim.take(conn, answer)))
        return answer


def _task_row(task_id: str) -> dict:
    return {"task_id": task_id, "project_id": "p1", "workspace_id": "0", "name": task_id, "description": "",
            "task_type": "sys_data_analyse", "source_type": "OBS", "source": "/x", "version_id": None,
            "version_name": None, "data_source": None, "inputs": [], "template": {}, "work_path": {},
            "input_root": "/x", "output_dir": f"/y/{task_id}", "execution": {}, "current_run": f"{task_id}-r1"}


@pytest.fixture
def store(database: str):
    from jobs.store import Store

    return Store(database)


def _task_ids(store) -> list[str]:
    """The tasks the store holds, of those the creates here can make (t1 ... t9)."""
    return [f"t{n}" for n in range(1, 10) if store.get_task(f"t{n}") is not None]


def test_one_transaction_a_repeat_gets_the_first_task_and_another_body_a_conflict(keys: IdempotencyKeys,
                                                                                 store) -> None:
    create = TaskCreates(store)
    first = keys.run_once("p1", "k-1", "f", create)
    again = keys.run_once("p1", "k-1", "f", create)
    assert (first.status_code, first.body, first.replayed) == (200, {"task_id": "t1"}, False)
    assert (again.status_code, again.body, again.replayed) == (200, {"task_id": "t1"}, True)
    with pytest.raises(Conflict, match="'k-1'.*different request"):
        keys.run_once("p1", "k-1", "another body", create)
    assert create.calls == 1 and _task_ids(store) == ["t1"] and keys.count("p1") == 1
    assert keys.run_once("p1", None, "f", create).body == {"task_id": "t2"}  # no key: every request creates
    assert _task_ids(store) == ["t1", "t2"] and keys.count() == 1


def test_one_transaction_concurrent_duplicates_make_exactly_one_task(keys: IdempotencyKeys, store) -> None:
    threads_n = 6
    create = TaskCreates(store, threading.Barrier(threads_n))
    answers: list[Answer] = []
    threads = [threading.Thread(target=lambda: answers.append(keys.run_once("p1", "k-1", "f", create)))
               for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    # All six read the key as free and inserted a task of their own: one committed, five rolled back whole.
    assert create.calls == threads_n
    assert len(answers) == threads_n and sum(not a.replayed for a in answers) == 1
    (winner,) = {a.body["task_id"] for a in answers}
    assert _task_ids(store) == [winner] and keys.count() == 1
    assert store.runs_for([winner])[winner][0]["queued"] == 1  # the winner's run is queued, status 0
    assert store.get_task(winner).status == 0


def test_one_transaction_a_create_that_fails_after_taking_the_key_leaves_nothing(keys: IdempotencyKeys,
                                                                                  store) -> None:
    store.insert_task(_task_row("t1"))

    def duplicate_id(claim) -> Answer:  # takes the key, then the insert fails: the key goes with it
        answer = Answer(200, {"task_id": "t1"})
        store.insert_task(_task_row("t1"), within=lambda conn: claim.take(conn, answer))
        return answer

    with pytest.raises(IntegrityError):
        keys.run_once("p1", "k-1", "f", duplicate_id)
    assert keys.count() == 0 and _task_ids(store) == ["t1"]
    # The key is free: a new create under it goes through (its task is t2, as the store now holds t1).
    retried = TaskCreates(store)
    retried.calls = 1
    assert keys.run_once("p1", "k-1", "f", retried).body == {"task_id": "t2"}
    assert _task_ids(store) == ["t1", "t2"] and keys.count() == 1


def test_one_transaction_a_key_expires_after_its_time(database: str, clock: Clock, store) -> None:
    keys = IdempotencyKeys(database, ttl_seconds=DAY_MS / 1000, clock=clock)
    create = TaskCreates(store)
    keys.run_once("p1", "old", "f", create)
    clock.now += DAY_MS - 1
    assert keys.run_once("p1", "old", "f", create).replayed  # kept for the whole day
    clock.now += 2
    fresh = keys.run_once("p1", "old", "another body", create)  # expired: free again, for any request
    assert (fresh.replayed, fresh.body) == (False, {"task_id": "t2"})
    assert _task_ids(store) == ["t1", "t2"] and keys.count() == 1
