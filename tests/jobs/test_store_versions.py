"""Version series: is_current and version_count after creates, deletes and resumes, the migration of
a file the first schema made, and reads that use indexes instead of scanning the table."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobs.status import TaskStatus
from jobs.store import SERIES_KEY, ListQuery, Store
from tests.support.postgres import PostgresServer, needs_postgres
from tests.support.store_v1 import WITH_VERSIONS_V1, create_v1, insert_v1


class Clock:
    """Epoch milliseconds that move only when told to."""

    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database: str, clock: Clock) -> Store:
    """On SQLite and on PostgreSQL (``database`` is parametrised)."""
    return Store(database, clock=clock)


@pytest.fixture
def sqlite_store(tmp_path: Path, clock: Clock) -> Store:
    """SQLite only: its query plans are read with EXPLAIN QUERY PLAN."""
    return Store(tmp_path / "rayproc.db", clock=clock)


def _insert(store: Store, task_id: str, *, source: str = "/a", version_id: str | None = "V1",
            task_type: str = "sys_data_analyse", project_id: str = "p", workspace_id: str = "0") -> None:
    store.insert_task({
        "task_id": task_id, "project_id": project_id, "workspace_id": workspace_id, "name": task_id,
        "description": "", "task_type": task_type, "source_type": "OBS", "source": source,
        "version_id": version_id, "version_name": None, "data_source": None, "inputs": [], "template": {},
        "work_path": {}, "input_root": source, "output_dir": "/out", "execution": {}, "current_run": f"{task_id}-r1",
    })


def _finish(store: Store, task_id: str, status: TaskStatus = TaskStatus.COMPLETED) -> None:
    run_id = store.get_task(task_id).current_run
    store.claim_run(task_id, run_id)
    store.finish_run(task_id, run_id, status)


def _numbers(store: Store) -> dict[str, tuple[bool, int]]:
    """(is_current, version_count) of every task, as single-task reads answer them."""
    with store._connect() as conn:
        ids = [r[0] for r in conn.execute("SELECT task_id FROM tasks").fetchall()]
    return {t: (rec.is_current, rec.version_count) for t in ids if (rec := store.get_task(t)) is not None}


def _defined(store: Store) -> dict[str, tuple[bool, int]]:
    """The numbers by their definition, from every row: newest (create_time, then task_id) of a series is current."""
    with store._connect() as conn:
        rows = conn.execute(f"SELECT task_id, create_time, {', '.join(SERIES_KEY)} FROM tasks").fetchall()
    series: dict[tuple, list[tuple[int, str]]] = {}
    for task_id, create_time, *key in rows:
        series.setdefault(tuple(key), []).append((create_time, task_id))
    return {task_id: (task_id == max(members)[1], len(members))
            for members in series.values() for _, task_id in members}


def test_the_newest_of_a_series_is_current_and_all_count(store: Store, clock: Clock) -> None:
    for n, task_id in enumerate(["a", "b", "c"]):
        clock.now += 10
        _insert(store, task_id)
    clock.now += 10
    _insert(store, "other-source", source="/b")
    clock.now += 10
    _insert(store, "other-type", task_type="sys_data_cleaning")
    clock.now += 10
    _insert(store, "no-version", version_id=None)
    assert _numbers(store) == {"a": (False, 3), "b": (False, 3), "c": (True, 3), "other-source": (True, 1),
                               "other-type": (True, 1), "no-version": (True, 1)}


def test_deleting_the_current_task_makes_the_next_newest_current(store: Store, clock: Clock) -> None:
    for task_id in ("a", "b", "c"):
        clock.now += 10
        _insert(store, task_id)
        _finish(store, task_id)
    assert store.delete_task("c")
    assert _numbers(store) == {"a": (False, 2), "b": (True, 2)}
    assert store.delete_task("a")  # not the current one: b stays current
    assert _numbers(store) == {"b": (True, 1)}
    assert store.delete_task("b")
    clock.now += 10
    _insert(store, "d")
    assert _numbers(store) == {"d": (True, 1)}


def test_a_create_that_fails_to_submit_leaves_the_series_as_it_was(store: Store, clock: Clock) -> None:
    _insert(store, "a")
    clock.now += 10
    _insert(store, "b")
    store.remove_unsubmitted("b")
    assert _numbers(store) == {"a": (True, 1)}


def test_resuming_an_older_task_changes_no_numbers(store: Store, clock: Clock) -> None:
    for task_id in ("a", "b"):
        clock.now += 10
        _insert(store, task_id)
    _finish(store, "a", TaskStatus.STOPPED)
    clock.now += 10
    assert store.begin_new_run("a", "a-r2", (TaskStatus.STOPPED,))
    assert _numbers(store) == {"a": (False, 2), "b": (True, 2)}
    store.abandon_run("a", "a-r2", store.get_task("b"))  # a failed submission puts the old run back
    assert _numbers(store) == {"a": (False, 2), "b": (True, 2)}


def test_creates_in_the_same_millisecond_break_the_tie_by_task_id(store: Store) -> None:
    _insert(store, "m")
    _insert(store, "b")  # same create_time, smaller id: not the newest
    _insert(store, "z")
    assert _numbers(store) == {"b": (False, 3), "m": (False, 3), "z": (True, 3)}


def test_numbers_match_their_definition_after_random_creates_deletes_and_resumes(store: Store, clock: Clock) -> None:
    rng = random.Random(7)
    live: list[str] = []
    for step in range(300):
        clock.now += rng.choice((0, 0, 1, 5))  # ties too
        action = rng.random()
        if action < 0.55 or not live:
            task_id = f"t{step:03d}{rng.choice('abc')}"
            _insert(store, task_id, source=rng.choice(("/a", "/b")), version_id=rng.choice(("V1", "V2", None)),
                    task_type=rng.choice(("sys_data_analyse", "sys_data_cleaning")),
                    workspace_id=rng.choice(("0", "0", "w2")))
            _finish(store, task_id, rng.choice((TaskStatus.STOPPED, TaskStatus.FAILED, TaskStatus.COMPLETED)))
            live.append(task_id)
        elif action < 0.8:
            assert store.delete_task(live.pop(rng.randrange(len(live))))
        else:
            task_id = rng.choice(live)
            rec = store.get_task(task_id)
            if rec.status in (TaskStatus.STOPPED, TaskStatus.FAILED):
                run_id = f"{task_id}-r{step}"
                assert store.begin_new_run(task_id, run_id, (TaskStatus.STOPPED, TaskStatus.FAILED))
                store.claim_run(task_id, run_id)
                store.finish_run(task_id, run_id, TaskStatus.COMPLETED)
        if step % 25 == 0 or step == 299:
            assert _numbers(store) == _defined(store), f"after step {step}"
    assert len(live) > 50


def test_query_current_and_the_count_are_exact(store: Store, clock: Clock) -> None:
    for n in range(12):
        clock.now += 10
        _insert(store, f"t{n:02d}", source=f"/s{n % 4}", version_id=("V1", "V2")[n % 2])
        _finish(store, f"t{n:02d}", TaskStatus.FAILED if n % 3 == 0 else TaskStatus.COMPLETED)
    _insert(store, "elsewhere", workspace_id="w2")
    defined = _defined(store)
    current = sorted(t for t, (is_current, _) in defined.items() if is_current and t != "elsewhere")
    count, rows = store.list_tasks("p", ListQuery(limit=100, query_current=True, order="asc"))
    assert count == len(current) == 4 and [r.task_id for r in rows] == current
    # is_current is over the whole series, before other filters: a failed older task is not "current among failed".
    count, rows = store.list_tasks("p", ListQuery(limit=100, query_current=True, status=int(TaskStatus.FAILED)))
    assert count == len([t for t in current if store.get_task(t).status == TaskStatus.FAILED])
    count, rows = store.list_tasks("p", ListQuery(limit=2, page=1))
    assert count == 12 and [(r.is_current, r.version_count) for r in rows] == [defined[r.task_id] for r in rows]


# ----- migration of a file the first schema made ---------------------------------------------------------------


def _v1_rows(n: int) -> list[dict]:
    rng = random.Random(3)
    rows = []
    for i in range(n):
        task_id = f"task{i:04d}{rng.choice('xyz')}"
        rows.append({
            "task_id": task_id, "project_id": rng.choice(("p", "q")), "workspace_id": "0", "name": task_id,
            "description": "", "task_type": rng.choice(("sys_data_analyse", "sys_data_validation")),
            "source_type": "OBS", "source": f"/src{rng.randrange(5)}", "version_id": rng.choice(("V1", None)),
            "version_name": None, "data_source": None, "inputs": "[]", "template": "{}", "work_path": "{}",
            "input_root": "/in", "output_dir": "/out", "execution": "{}", "status": int(TaskStatus.COMPLETED),
            "error_type": None, "error_msg": None, "result": None, "create_time": 1_000 + i // 3,
            "update_time": 1_000 + i, "run_start_ms": None, "elapsed_ms": 0, "total_count": 1,
            "processed_count": 1, "failed_count": 0, "current_run": f"{task_id}-r1", "stop_requested": 0,
        })
    return rows


def _v1_numbers(conn: sqlite3.Connection) -> dict[str, tuple[bool, int]]:
    rows = conn.execute(f"{WITH_VERSIONS_V1} SELECT task_id, is_current, version_count FROM v").fetchall()
    return {r[0]: (bool(r[1]), r[2]) for r in rows}


@pytest.fixture
def v1_file(tmp_path: Path) -> tuple[str, dict[str, tuple[bool, int]]]:
    """A file the first schema made, with 200 tasks, and the numbers its own query gave them."""
    path = str(tmp_path / "old.db")
    conn = create_v1(path)
    insert_v1(conn, _v1_rows(200))
    before = _v1_numbers(conn)
    conn.close()
    return path, before


def _indexes(path: str) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_an_old_file_is_migrated_at_open_and_keeps_its_numbers(v1_file) -> None:
    path, before = v1_file
    assert "tasks_series" not in _indexes(path)
    store = Store(path)
    assert {"tasks_series", "tasks_workspace", "tasks_current"} <= _indexes(path)
    assert _numbers(store) == before
    assert any(not is_current for is_current, _ in before.values())  # the file has series longer than one
    count, rows = store.list_tasks("p", ListQuery(limit=100, query_current=True))
    assert count == sum(1 for t, (is_current, _) in before.items() if is_current and store.get_task(t, "p"))
    Store(path)  # opening again changes nothing
    assert _numbers(Store(path)) == before


def test_an_old_file_migrated_then_written_follows_the_definition(v1_file, clock: Clock) -> None:
    path, _ = v1_file
    store = Store(path, clock=clock)
    newest = max(_v1_rows(200), key=lambda r: (r["create_time"], r["task_id"]))
    series = {c: newest[c] for c in ("project_id", "task_type", "source", "version_id")}
    _insert(store, "fresh", **series)
    assert store.get_task(newest["task_id"]).is_current is False
    assert store.delete_task(newest["task_id"])
    assert _numbers(store) == _defined(store)


def test_processes_opening_an_old_file_at_once_migrate_it_once(v1_file) -> None:
    path, before = v1_file
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_store() -> None:
        barrier.wait()
        try:
            Store(path)
        except BaseException as exc:  # noqa: BLE001 - collected and checked below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _numbers(Store(path)) == before


@needs_postgres
def test_processes_opening_an_empty_postgres_database_at_once_create_its_schema_once(
        postgres_server: PostgresServer, clock: Clock) -> None:
    from jobs.datasets import Datasets
    from jobs.db import close_pool
    from jobs.migrations import SCHEMA_VERSION, VERSION_TABLE

    url = postgres_server.new_database(empty=True)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def open_both() -> None:
        barrier.wait()
        try:
            Store(url)
            Datasets(url)
        except BaseException as exc:  # noqa: BLE001 - collected and checked below
            errors.append(exc)

    threads = [threading.Thread(target=open_both) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        store = Store(url, clock=clock)
        with store._connect() as conn:
            assert [r[0] for r in conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()] == \
                [SCHEMA_VERSION]
        _insert(store, "a")
        assert _numbers(store) == {"a": (True, 1)}
    finally:
        close_pool(url)


# ----- query plans ---------------------------------------------------------------------------------------------


@contextmanager
def _statements(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL statement ``store`` runs inside the block, with its values filled in."""
    seen: list[str] = []
    connect = store._connect

    @contextmanager
    def traced() -> Iterator[sqlite3.Connection]:
        with connect() as conn:
            conn.set_trace_callback(seen.append)
            yield conn

    with monkeypatch.context() as m:
        m.setattr(store, "_connect", traced)
        yield seen


def _plans(path: str, statements: list[str]) -> list[str]:
    """The query plan lines of every SELECT among ``statements``."""
    with sqlite3.connect(path) as conn:
        return [row[3] for sql in statements if sql.lstrip().upper().startswith(("SELECT", "WITH"))
                for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]


@pytest.fixture(params=[False, True], ids=["no-statistics", "analyzed"])
def many(sqlite_store: Store, clock: Clock, request: pytest.FixtureRequest) -> Store:
    """300 tasks in 80 series; the plans must hold with and without the statistics ANALYZE gathers."""
    for n in range(300):
        clock.now += 1
        _insert(sqlite_store, f"t{n:03d}", source=f"/s{n % 40}", version_id=("V1", None)[n % 2])
    if request.param:
        with sqlite3.connect(sqlite_store.path) as conn:
            conn.execute("ANALYZE")
    return sqlite_store


def test_a_single_task_read_uses_indexes_not_a_scan(many: Store, monkeypatch) -> None:
    with _statements(many, monkeypatch) as statements:
        rec = many.get_task("t123", "p", with_runs=True)
    assert rec is not None and rec.version_count > 1
    plans = _plans(many.path, statements)
    assert plans and not [p for p in plans if p.startswith("SCAN") or "TEMP B-TREE" in p], plans
    assert any("SEARCH series_counts USING INDEX" in p for p in plans), plans  # the series' kept size
    # The check can fail: the first schema's query scans the whole table and sorts it.
    old = _plans(many.path, [f"{WITH_VERSIONS_V1} SELECT * FROM v WHERE task_id = 't123'"])
    assert any(p.startswith("SCAN") for p in old) and any("TEMP B-TREE" in p for p in old), old


def test_a_default_list_page_and_its_count_use_indexes(many: Store, monkeypatch) -> None:
    for query in (ListQuery(), ListQuery(query_current=True), ListQuery(order="asc", page=3)):
        with _statements(many, monkeypatch) as statements:
            count, rows = many.list_tasks("p", query)
        assert count > len(rows) > 0
        plans = _plans(many.path, statements)
        # The count is read from task_counts (ten rows per workspace at most): analyzed, SQLite scans its two
        # rows here rather than search them; what must never be scanned is the tasks.
        assert not [p for p in plans if (p.startswith("SCAN") and p != "SCAN task_counts") or "TEMP B-TREE" in p], \
            (query, plans)
        assert any("task_counts" in p for p in plans) and not any("COUNT" in sql and "FROM tasks" in sql
                                                                     for sql in statements), statements
