"""The task database's conditional transitions, on both backends: whoever loses a race changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.status import TaskStatus
from jobs.store import Store
from rayproc_contract.query import ListQuery


@pytest.fixture
def store(database: str) -> Store:
    """The store on SQLite and on PostgreSQL (``database`` is parametrised)."""
    return Store(database)


def _insert(store: Store, task_id: str = "t1", run_id: str = "r1", **kw) -> None:
    store.insert_task(_row(task_id, run_id, **kw))


def _row(task_id: str, run_id: str, **kw) -> dict:
    return {
        "task_id": task_id, "project_id": kw.get("project_id", "p"), "workspace_id": "0", "name": kw.get("name", task_id),
        "description": "", "task_type": "sys_data_analyse", "source_type": "OBS", "source": "/x",
        "version_id": kw.get("version_id"), "version_name": None, "data_source": None, "inputs": [],
        "template": {}, "work_path": {}, "input_root": "/x", "output_dir": "/y", "execution": {},
        "current_run": run_id,
    }


def test_the_file_is_a_real_sqlite_database(tmp_path: Path) -> None:
    store = Store(tmp_path / "db" / "rayproc.db")
    _insert(store)
    assert Path(store.path).read_bytes()[:16] == b"SQLite format 3\x00"
    assert Store(store.path).get_task("t1").name == "t1"  # a second connection sees it


def test_claim_after_stop_of_a_pending_run_fails(store: Store) -> None:
    _insert(store)
    assert store.stop_if_not_started("t1")
    assert not store.claim_run("t1", "r1")
    assert store.get_task("t1").status == TaskStatus.STOPPED


def test_stop_if_not_started_loses_to_a_claim(store: Store) -> None:
    _insert(store)
    assert store.claim_run("t1", "r1")
    assert not store.stop_if_not_started("t1")
    assert store.request_stop("t1")
    assert store.record_progress("t1", "r1", total=2, processed=1, failed=0, computed_in_run=1) is True


def test_a_superseded_run_cannot_finish_the_task(store: Store) -> None:
    _insert(store)
    store.claim_run("t1", "r1")
    store.finish_run("t1", "r1", TaskStatus.STOPPED)
    assert store.begin_new_run("t1", "r2", (TaskStatus.STOPPED,))
    assert not store.finish_run("t1", "r1", TaskStatus.COMPLETED, result={"x": 1})
    assert not store.claim_run("t1", "r1")
    assert store.claim_run("t1", "r2")
    assert store.finish_run("t1", "r2", TaskStatus.COMPLETED, result={"x": 2})
    rec = store.get_task("t1", with_runs=True)
    assert rec.status == TaskStatus.COMPLETED and rec.result == {"x": 2}
    assert [r["run_id"] for r in rec.runs] == ["r1", "r2"]
    assert [r["outcome"] for r in rec.runs] == ["stopped", "completed"]


def test_finishing_twice_keeps_the_first_outcome(store: Store) -> None:
    _insert(store)
    store.claim_run("t1", "r1")
    assert store.finish_run("t1", "r1", TaskStatus.COMPLETED, result={})
    assert not store.finish_run("t1", "r1", TaskStatus.FAILED, error_msg="late")
    assert store.get_task("t1").status == TaskStatus.COMPLETED


def test_resume_only_from_allowed_states_and_delete_only_when_finished_or_queued(store: Store) -> None:
    _insert(store)
    assert not store.begin_new_run("t1", "r2", (TaskStatus.STOPPED, TaskStatus.FAILED))
    store.mark_submitted("r1")  # handed to Ray: no longer a queued task that may simply go
    assert not store.delete_task("t1")
    store.claim_run("t1", "r1")
    store.finish_run("t1", "r1", TaskStatus.FAILED, error_type="x", error_msg="y")
    assert store.delete_task("t1")
    assert store.get_task("t1") is None


def test_progress_and_duration(store: Store) -> None:
    _insert(store)
    store.claim_run("t1", "r1")
    store.record_progress("t1", "r1", total=10, processed=3, failed=1, computed_in_run=4)
    rec = store.get_task("t1")
    assert rec.completion_percentage() == 40.0
    assert rec.run_start_ms is not None and rec.duration_seconds(now=rec.run_start_ms + 5_400) == 5


def test_project_scoping_and_versions(store: Store) -> None:
    _insert(store, "a", "ra", version_id="V1")
    _insert(store, "b", "rb", version_id="V1")
    _insert(store, "c", "rc", project_id="other", version_id="V1")
    assert store.get_task("c", "p") is None
    count, rows = store.list_tasks("p", ListQuery(order="asc"))
    assert count == 2 and [r.task_id for r in rows] == ["a", "b"]
    assert [(r.version_count, r.is_current) for r in rows] == [(2, False), (2, True)]


def test_an_unreachable_postgresql_is_storage_unavailable_without_its_password(monkeypatch) -> None:
    from jobs import db
    from tests.support.cluster import free_port

    monkeypatch.setattr(db, "POOL_TIMEOUT_SECONDS", 1.0)
    url = f"postgresql://rayproc:never-shown-pw@127.0.0.1:{free_port()}/rayproc"  # nothing listens there
    try:
        with pytest.raises(db.StorageUnavailable) as caught:
            Store(url)
        assert "never-shown-pw" not in str(caught.value) and "cannot be reached" in str(caught.value)
        assert "never-shown-pw" not in db.redact(url) and db.redact(url).startswith("postgresql://rayproc:***@")
    finally:
        db.close_pool(url)


# ----- the kept counts (task_counts, series_counts: triggers in jobs/migrations/versions/0002) -----------------


def _truth(store: Store, project_id: str = "p") -> dict[tuple[int | None, bool], int]:
    """The list's count by (status or None, query_current), counted over the rows themselves."""
    with store._snapshot() as conn:
        out = {}
        for status in (None, *range(5)):
            for current in (False, True):
                sql = "SELECT COUNT(*) FROM tasks WHERE project_id = ? AND workspace_id = '0'"
                args: list = [project_id]
                if status is not None:
                    sql += " AND status = ?"
                    args.append(status)
                if current:
                    sql += " AND is_current = 1"
                out[(status, current)] = conn.execute(sql, args).fetchone()[0]
        return out


def _listed(store: Store, project_id: str = "p") -> dict[tuple[int | None, bool], int]:
    return {(status, current): store.list_tasks(project_id, ListQuery(status=status, query_current=current))[0]
            for status in (None, *range(5)) for current in (False, True)}


def _counts_rows(store: Store) -> list[tuple]:
    with store._connect() as conn:
        return [tuple(r) for r in conn.execute("SELECT * FROM task_counts ORDER BY 1, 2, 3, 4").fetchall()]


def test_the_list_count_is_kept_exact_through_every_transition(store: Store) -> None:
    from jobs.store import QueuedRun

    def check(expected_total: int) -> None:
        truth = _truth(store)
        assert truth[(None, False)] == expected_total
        assert _listed(store) == truth
        recs = store.list_tasks("p", ListQuery(limit=100))[1]
        series_sizes = {}
        for r in recs:
            series_sizes[r.version_id] = series_sizes.get(r.version_id, 0) + 1
        assert {r.task_id: r.version_count for r in recs} == {r.task_id: series_sizes[r.version_id] for r in recs}

    check(0)
    for i in range(4):  # a, b in series V1; c, d each a series of its own (no version / V2)
        _insert(store, "abcd"[i], f"r{i}", version_id=("V1", "V1", None, "V2")[i])
    _insert(store, "x", "rx", project_id="other")
    check(4)
    assert store.list_tasks("other", ListQuery())[0] == 1
    assert store.stop_if_not_started("a")                                         # 0 -> 4
    assert store.claim_run("b", "r1")                                             # 0 -> 1
    store.record_progress("b", "r1", total=3, processed=1, failed=0, computed_in_run=1)  # no count changes
    assert store.finish_run("b", "r1", TaskStatus.FAILED, error_type="ray_error", error_msg="x")  # 1 -> 3
    check(4)
    assert store.retry_run("b", "r1", "r1b", error_types=["ray_error"], max_attempts=3, not_before=0)  # 3 -> 0
    assert store.requeue(QueuedRun("b", "p", "sys_data_analyse", "r1b", 2), "r1c", 0)  # status stays 0
    stopped_a = store.get_task("a")
    assert store.begin_new_run("a", "ra2", (TaskStatus.STOPPED,))                 # 4 -> 0
    assert store.claim_run("c", "r2") and store.finish_run("c", "r2", TaskStatus.COMPLETED, result={})  # 0 -> 2
    check(4)
    store.abandon_run("a", "ra2", stopped_a)                                      # 0 -> 4 (undone)
    assert store.get_task("a").status == TaskStatus.STOPPED
    assert not store.delete_task("nope")
    assert store.delete_task("c") and not store.delete_task("c")                  # a finished task goes
    check(3)
    store.remove_unsubmitted("d")
    assert store.delete_task("a")                                                 # b is now its series' current
    check(1)
    assert [(r.task_id, r.is_current, r.version_count) for r in store.list_tasks("p", ListQuery())[1]] == \
        [("b", True, 1)]
    assert min(row[-1] for row in _counts_rows(store)) >= 0


def test_counts_stay_exact_under_concurrent_creates_and_deletes(store: Store) -> None:
    """Writers create and delete at once while a reader lists: every page's count is that of its snapshot's
    rows, and at the end the kept counts are the rows' counts."""
    import threading

    writers, per_writer = 4, 12
    errors: list[BaseException] = []
    seen: list[tuple[int, int]] = []
    done = threading.Event()
    barrier = threading.Barrier(writers + 1)

    def write(w: int) -> None:
        barrier.wait()
        try:
            for i in range(per_writer):
                task_id = f"w{w}-{i}"
                _insert(store, task_id, f"r-{task_id}", version_id=f"V{i % 3}")
                if i % 2:  # every other one is deleted again, while still queued or once finished
                    if i % 4 == 3:
                        store.claim_run(task_id, f"r-{task_id}")
                        store.finish_run(task_id, f"r-{task_id}", TaskStatus.COMPLETED, result={})
                    assert store.delete_task(task_id)
        except BaseException as exc:  # noqa: BLE001 - collected and checked below
            errors.append(exc)

    def read() -> None:
        barrier.wait()
        try:
            while not done.is_set():
                with store._snapshot() as conn:  # the count the list answers, and the rows, in one snapshot
                    from jobs.store import _kept_count

                    kept = _kept_count(conn, "p", "0", None, False)
                    rows = conn.execute("SELECT COUNT(*) FROM tasks WHERE project_id = 'p'").fetchone()[0]
                seen.append((kept, rows))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader = threading.Thread(target=read)
    for t in [*threads, reader]:
        t.start()
    for t in threads:
        t.join()
    done.set()
    reader.join()
    assert errors == []
    assert seen and all(kept == rows for kept, rows in seen), [s for s in seen if s[0] != s[1]][:5]
    truth = _truth(store)
    assert truth[(None, False)] == writers * per_writer // 2
    assert _listed(store) == truth
    recs = store.list_tasks("p", ListQuery(limit=100))[1]
    assert sorted(r.version_count for r in recs if r.is_current) == sorted(
        [truth[(None, False)] // 3] * 3)  # three series (V0, V1, V2) of the survivors, a third each
    assert min(row[-1] for row in _counts_rows(store)) >= 0


def test_a_count_can_never_go_negative(store: Store) -> None:
    from jobs.db import IntegrityError

    _insert(store, "a", "ra")
    assert store.delete_task("a") is True
    assert _listed(store)[(None, False)] == 0
    with pytest.raises(IntegrityError):
        with store._tx() as conn:  # as a second delete of the same row would be counted, were it possible
            conn.execute("UPDATE task_counts SET n = n - 1 WHERE project_id = 'p'")
    with pytest.raises(IntegrityError):
        with store._tx() as conn:
            conn.execute("UPDATE series_counts SET n = n - 1 WHERE project_id = 'p'")
    assert min(row[-1] for row in _counts_rows(store)) == 0  # the failed writes changed nothing


def test_an_older_database_is_counted_once_when_it_is_upgraded(database: str,
                                                              request: pytest.FixtureRequest) -> None:
    """A database made by the release before the counts (revision 0001), with tasks in it: the upgrade's
    backfill counts them, and from then on the triggers do."""
    import sqlite3

    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    from jobs import migrations
    from jobs.db import close_pool, is_database_url

    if is_database_url(database):  # an empty database of its own, not the shared one at the newest schema
        database = request.getfixturevalue("postgres_server").new_database(empty=True)
        engine = create_engine(database.replace("postgresql://", "postgresql+psycopg://", 1), poolclass=NullPool)
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine("sqlite://", poolclass=NullPool,
                               creator=lambda: sqlite3.connect(database, isolation_level=None))
    rows = [("a", "p", 2, "V1", 1000), ("b", "p", 2, "V1", 1001), ("c", "p", 3, None, 1002), ("d", "p", 4, None, 1003),
            ("e", "q", 2, "V1", 1004)]
    try:
        with engine.connect() as conn:
            migrations.upgrade(conn, "0001")
            for task_id, project, status, version, created in rows:
                conn.execute(text(
                    "INSERT INTO tasks (task_id, project_id, workspace_id, name, task_type, source_type, source, "
                    "version_id, inputs, template, work_path, input_root, output_dir, execution, status, "
                    "create_time, update_time, current_run, is_current) VALUES (:t, :p, '0', :t, 'sys_data_analyse', "
                    "'OBS', '/x', :v, '[]', '{}', '{}', '/x', '/y', '{}', :s, :c, :c, :r, :cur)"),
                    {"t": task_id, "p": project, "v": version, "s": status, "c": created, "r": f"r-{task_id}",
                     "cur": int(task_id in ("b", "d", "e"))})
            conn.commit()
    finally:
        engine.dispose()
    store = Store(database)  # upgrades to the newest revision
    request.addfinalizer(lambda: close_pool(database))
    assert _listed(store) == _truth(store)
    assert _listed(store)[(None, False)] == 4 and _listed(store)[(2, True)] == 1 and _listed(store)[(None, True)] == 2
    assert {r.task_id: r.version_count for r in store.list_tasks("p", ListQuery())[1]} == {
        "a": 2, "b": 2, "c": 2, "d": 2}
    _insert(store, "f", "rf", version_id="V1")  # and the triggers take over
    assert _listed(store) == _truth(store) and _listed(store)[(None, False)] == 5
    assert store.get_task("f").version_count == 3


def _plan(max_attempts: int = 3):
    from jobs.store import Retry

    return Retry(("job_died",), max_attempts, run_id=lambda seq: f"r{seq}", not_before=lambda attempt: 1000 * attempt)


def test_a_failure_the_retry_plan_covers_is_settled_and_queued_again_in_one_write(store: Store) -> None:
    _insert(store)
    store.claim_run("t1", "r1")
    assert store.finish_run("t1", "r1", TaskStatus.FAILED, error_type="job_died", error_msg="driver killed",
                            retry=_plan())
    rec = store.get_task("t1", with_runs=True)
    assert (rec.status, rec.current_run, rec.error_type) == (TaskStatus.INITIALIZED, "r2", None)
    first, second = rec.runs
    assert (first["outcome"], first["message"]) == ("failed", "driver killed")
    assert (second["run_id"], second["attempt"], second["queued"], second["not_before"]) == ("r2", 2, 1, 1000)
    assert not store.finish_run("t1", "r1", TaskStatus.FAILED, error_type="job_died", retry=_plan())  # settled


@pytest.mark.parametrize("case", ["other-error", "stop-requested", "attempts-used"])
def test_a_failure_the_retry_plan_does_not_cover_stays_failed(store: Store, case: str) -> None:
    _insert(store)
    store.claim_run("t1", "r1")
    if case == "stop-requested":
        store.request_stop("t1")
    error_type = "operator_error" if case == "other-error" else "job_died"
    assert store.finish_run("t1", "r1", TaskStatus.FAILED, error_type=error_type, error_msg="x",
                            retry=_plan(max_attempts=1 if case == "attempts-used" else 3))
    rec = store.get_task("t1", with_runs=True)
    assert (rec.status, rec.current_run, rec.error_type, len(rec.runs)) == (TaskStatus.FAILED, "r1", error_type, 1)


def test_the_threads_of_a_process_queue_for_a_sqlite_file_on_one_mutex_whatever_its_spelling(tmp_path: Path) -> None:
    import threading

    from jobs.db import _writer_lock

    (tmp_path / "db").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "db")
    one = Store(tmp_path / "db" / "rayproc.db")
    other = Store(tmp_path / "link" / "rayproc.db")  # the same file by another path
    apart = Store(tmp_path / "apart.db")
    assert _writer_lock(one.target) is _writer_lock(other.target) is not _writer_lock(apart.target)
    _insert(one)
    held, done = threading.Event(), threading.Event()

    def writer() -> None:
        held.wait(10)
        other.request_stop("t1")  # waits for the mutex the main thread holds in its transaction
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    with one._tx() as conn:
        held.set()
        assert not done.wait(0.2)  # the other writer is kept out (on the mutex, before SQLite's lock)
        conn.execute("UPDATE tasks SET status = 1 WHERE task_id = 't1'")
    thread.join(10)
    assert done.is_set() and one.get_task("t1").stop_requested  # it ran after the commit and saw it


def test_concurrent_inserts_commit_together_and_a_failing_one_undoes_only_its_own_rows(tmp_path: Path) -> None:
    import threading
    import time

    from jobs.db import IntegrityError, _group

    store = Store(tmp_path / "rayproc.db")
    _insert(store, "taken", "taken-r1")
    group = _group(store.target)
    leader_in, release = threading.Event(), threading.Event()
    errors: dict[str, BaseException | None] = {}

    def hold(conn) -> None:  # the first insert keeps its transaction open while the others queue
        leader_in.set()
        release.wait(10)

    def insert(task_id: str, run_id: str, within=None) -> None:
        try:
            store.insert_task({**_row(task_id, run_id)}, within=within)
            errors[task_id] = None
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            errors[task_id] = exc

    first = threading.Thread(target=insert, args=("first", "first-r1", hold))
    first.start()
    assert leader_in.wait(10)
    # "taken" again: the primary key refuses it, inside the next group's transaction.
    rest = [threading.Thread(target=insert, args=(t, f"{t}-r1")) for t in ("a", "b", "taken", "c")]
    for t in rest:
        t.start()
    deadline = time.monotonic() + 10
    while len(group.queued) < len(rest) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(group.queued) == len(rest)  # all four wait for one transaction
    release.set()
    for t in [first, *rest]:
        t.join(10)
    assert isinstance(errors.pop("taken"), IntegrityError)
    assert errors == {"first": None, "a": None, "b": None, "c": None}
    for task_id in ("first", "a", "b", "c"):
        rec = store.get_task(task_id, with_runs=True)
        assert rec.status == TaskStatus.INITIALIZED and [r["run_id"] for r in rec.runs] == [f"{task_id}-r1"]
    assert store.get_task("taken").current_run == "taken-r1"  # the first "taken" is untouched
    assert store.runs_for(["taken"])["taken"][0]["run_id"] == "taken-r1"


@pytest.mark.parametrize(("claimed", "expected"), [(False, TaskStatus.STOPPED), (True, TaskStatus.RUNNING)],
                         ids=["not-started", "running"])
def test_stop_stops_a_task_not_started_at_once_and_flags_a_running_one(store: Store, claimed: bool,
                                                                       expected: TaskStatus) -> None:
    _insert(store)
    if claimed:
        assert store.claim_run("t1", "r1")
    assert store.stop("t1") == expected
    rec = store.get_task("t1", with_runs=True)
    assert rec.status == expected and rec.stop_requested
    assert rec.runs[0]["outcome"] == ("stopped" if expected == TaskStatus.STOPPED else None)
    if claimed:  # the runner, told by the flag, finishes it as stopped; a second stop changes nothing more
        assert store.record_progress("t1", "r1", total=2, processed=1, failed=0, computed_in_run=1) is True
        assert store.finish_run("t1", "r1", TaskStatus.STOPPED)
    assert store.stop("t1") is None
