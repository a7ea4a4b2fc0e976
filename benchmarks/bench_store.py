"""Task reads at scale: GET and list over 100,000 task records, against the first schema's query; and over
1,000,000 on PostgreSQL, against SQLite with the same rows.

    python -m benchmarks.bench_store [--tasks 100000] [--samples 400] [--baseline-samples 10] [--max-seconds 300]
    python -m benchmarks.bench_store --backend postgresql [--tasks 1000000] [--samples 400] [--writes 300]

``--backend postgresql`` starts a PostgreSQL server on loopback (``tests.support.postgres``), creates the
schema of revision 0001 (the release before the kept counts) on it and in a SQLite file, bulk-loads ``--tasks``
rows into both (COPY; executemany), opens each with ``Store``, which upgrades it (the counts' backfill, timed),
runs VACUUM ANALYZE on PostgreSQL (what autovacuum does to a table after a bulk load; left to it, it starts at a
moment of its own during the sampling) and ANALYZE on SQLite, then times ``Store.get_task`` and
``Store.list_tasks`` (and ``TaskService`` over each) on both, interleaved; ratios are PostgreSQL over SQLite.
``--writes N`` then times N task lifecycles (insert, claim, finish, delete) on an empty database of each
backend with the count triggers and without them (dropped), interleaved: what keeping the counts costs a write.

One file of ``--tasks`` task records (90% in one project's workspace, in version series of one to a few
tasks plus one series of 2% of them; every task finished, so no read asks Ray) is made with the first
schema (``tests.support.store_v1``) and copied. The copy is opened by this release's ``Store``, which
migrates it (timed). Then, interleaved in one loop so that load on the host touches every side alike:

- ``baseline``: the first schema's reads run directly on the original file: the window query
  numbering every series of the whole table, for a GET (task and runs) and for a list page and its count.
- ``store``: ``Store.get_task`` / ``Store.list_tasks`` on the migrated copy.
- ``service``: ``TaskService.get`` / ``TaskService.list`` (id checks, the reconciler's look, the runs),
  built by ``serve_app.assembly.build_service``, without HTTP.
- ``asgi``: the same requests through the FastAPI app in-process (``TestClient``, auth off).

Every sampled GET and list page must give the same numbers (is_current, version_count, count) on both
files. Sampling stops early at ``--max-seconds`` (the counts taken are printed). Figures are p50/p95 in
milliseconds; the raw samples go to ``benchmarks/out/store.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jobs.launcher import JobLauncher
from jobs.store import ListQuery, Store
from rayproc_contract.status import TaskType
from tests.support.cluster import free_port
from tests.support.store_v1 import create_v1, get_v1, insert_v1, list_v1

OUT = Path(__file__).parent / "out" / "store.json"
PROJECT = "bench"
TASK_TYPES = tuple(t.value for t in TaskType)
#: The list pages measured: (label, ListQuery, the same page for the first schema's query).
LISTS = (
    ("list: first page", ListQuery(), {}),
    ("list: query_current", ListQuery(query_current=True), {"query_current": True}),
    ("list: page 50", ListQuery(page=50), {"page": 50}),
)
#: Measured on PostgreSQL and SQLite only (the first schema's query has no status filter).
STATUS_LIST = ("list: status 3", ListQuery(status=3), {})


def task_rows(n: int, seed: int = 11) -> list[dict]:
    """``n`` finished task rows with the sizes real ones have (template, work path, result)."""
    rng = random.Random(seed)
    rows, now = [], 1_764_000_000_000
    for i in range(n):
        now += 0 if i % 7 == 0 else rng.randint(1, 2_000)  # some creates share a millisecond
        task_id = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                          for _ in range(20))
        project = PROJECT if rng.random() < 0.9 else f"other{rng.randrange(9)}"
        hot = rng.random() < 0.02
        source = "/data/hot" if hot else f"/data/set{rng.randrange(2_000):04d}"
        status = rng.choices((2, 3, 4), weights=(80, 15, 5))[0]
        result = ({"item_count": 1000, "failed_count": 3, "issues": {k: rng.randrange(50) for k in (
            "dark", "light", "blurry", "odd_size", "odd_aspect_ratio", "low_information", "grayscale",
            "exact_duplicates", "near_duplicates")}, "features": {k: {"mean": rng.random(), "std": rng.random()}
                                                              for k in ("brightness", "sharpness", "entropy")}}
                  if status == 2 else None)
        rows.append({
            "task_id": task_id, "project_id": project, "workspace_id": "0", "name": f"task-{i}",
            "description": "", "task_type": "sys_data_analyse" if hot else rng.choice(TASK_TYPES),
            "source_type": "OBS", "source": source, "version_id": "V1" if hot else rng.choice((None, "V1", "V2")),
            "version_name": None, "data_source": None,
            "inputs": json.dumps([{"type": "OBS", "source": source}]),
            "template": json.dumps({"id": "sys_data_analyse", "operator_params": [
                {"id": "image_features", "params": {"decode_max_side": 512}},
                {"id": "image_issues", "params": {"dark_threshold": 0.2}}]}),
            "work_path": json.dumps({"type": "OBS", "path": "/work", "output_path": f"/work/{task_id}"}),
            "input_root": source, "output_dir": f"/work/{task_id}", "execution": '{"chunk_size": 32}',
            "status": status, "error_type": "operator_error" if status == 3 else None,
            "error_msg": "an operator failed on chunk 3" if status == 3 else None,
            "result": json.dumps(result, sort_keys=True) if result else None,
            "create_time": now, "update_time": now + 5_000, "run_start_ms": None, "elapsed_ms": 5_000,
            "total_count": 1000, "processed_count": 997, "failed_count": 3,
            "current_run": f"rayproc-{task_id}-r1-abcdef", "stop_requested": 0,
        })
    return rows


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return (time.perf_counter() - start) * 1000, out


def build(root: Path, n: int) -> dict:
    """The first-schema file, its migrated copy and the service over the copy."""
    from fastapi.testclient import TestClient

    from serve_app.accounts import Accounts
    from serve_app.assembly import build_service
    from serve_app.main import create_app
    from serve_app.settings import Settings

    old_path, data_dir = root / "v1.db", root / "data"
    data_dir.mkdir()
    t0 = time.perf_counter()
    rows = task_rows(n)
    conn = create_v1(str(old_path))
    insert_v1(conn, rows)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    built_s = time.perf_counter() - t0
    settings = Settings(data_dir=data_dir, allowed_roots=[str(root)], auth_enabled=False).resolved()
    shutil.copyfile(old_path, settings.db_path)
    migrate_ms, store = _timed(lambda: Store(settings.db_path))
    reopen_ms, _ = _timed(lambda: Store(settings.db_path))
    # Every task is finished, so nothing here may reach Ray: an address where nothing listens proves it.
    launcher = JobLauncher(f"http://127.0.0.1:{free_port()}", submit_retry_seconds=0)
    service = build_service(settings, store=store, launcher=launcher)
    client = TestClient(create_app(service, Accounts(settings.db_path)), raise_server_exceptions=True)
    old = sqlite3.connect(old_path)
    old.row_factory = sqlite3.Row
    bench_ids = [r["task_id"] for r in rows if r["project_id"] == PROJECT]
    return {"rows": n, "build_s": built_s, "migrate_ms": migrate_ms, "reopen_ms": reopen_ms, "old": old,
            "store": store, "service": service, "client": client, "ids": bench_ids}


def _ok(response):
    if response.status_code != 200:
        raise SystemExit(f"{response.request.url} answered {response.status_code}: {response.text}")
    return response


def _same_numbers(old_row: sqlite3.Row, rec) -> None:
    if (bool(old_row["is_current"]), old_row["version_count"]) != (rec.is_current, rec.version_count):
        raise SystemExit(f"task {rec.task_id}: baseline says {(old_row['is_current'], old_row['version_count'])}, "
                         f"store says {(rec.is_current, rec.version_count)}")


def measure(world: dict, samples: int, baseline_samples: int, max_seconds: float,
            seed: int = 5) -> dict[str, dict[str, list[float]]]:
    rng = random.Random(seed)
    deadline = time.monotonic() + max_seconds
    old, store, service, client = world["old"], world["store"], world["service"], world["client"]
    times: dict[str, dict[str, list[float]]] = {}

    def add(figure: str, side: str, ms: float) -> None:
        times.setdefault(figure, {}).setdefault(side, []).append(ms)

    base_every = max(1, samples // max(1, baseline_samples))
    for i in range(samples):
        if time.monotonic() > deadline and len(times.get("GET", {}).get("baseline", [])) >= 3:
            break
        task_id = rng.choice(world["ids"])
        rec = store.get_task(task_id, PROJECT, with_runs=True)
        # The three new sides take turns going first: whichever goes second finds the pages in cache.
        sides: list[tuple[str, str, Callable[[], object]]] = [
            ("GET", "store", lambda: store.get_task(task_id, PROJECT, with_runs=True)),
            ("GET", "service", lambda: service.get(PROJECT, task_id)),
            ("GET", "asgi", lambda: _ok(client.get(f"/v2/{PROJECT}/processor-tasks/{task_id}"))),
        ]
        for label, query, _ in LISTS:
            params = {"offset": query.page, "query_current": str(query.query_current).lower()}
            sides += [
                (label, "store", lambda q=query: store.list_tasks(PROJECT, q)),
                (label, "service", lambda q=query: service.list(PROJECT, q)),
                (label, "asgi", lambda p=params: _ok(client.get(f"/v2/{PROJECT}/processor-tasks", params=p))),
            ]
        rng.shuffle(sides)
        for figure, side, call in sides:
            add(figure, side, _timed(call)[0])
        if i % base_every == 0:
            ms, old_row = _timed(lambda: get_v1(old, task_id))
            add("GET", "baseline", ms)
            _same_numbers(old_row, rec)
            for label, query, old_args in LISTS:
                ms, (old_count, old_rows) = _timed(lambda: list_v1(old, PROJECT, **old_args))
                add(label, "baseline", ms)
                count, recs = store.list_tasks(PROJECT, query)
                if old_count != count or [r["task_id"] for r in old_rows] != [r.task_id for r in recs]:
                    raise SystemExit(f"{label}: baseline and store disagree ({old_count} vs {count})")
                for old_row, new_rec in zip(old_rows, recs):
                    _same_numbers(old_row, new_rec)
    return times


def summarize(times: dict[str, dict[str, list[float]]]) -> list[dict]:
    out = []
    for figure in ("GET", *(label for label, _, _ in LISTS)):
        sides = times[figure]
        row: dict = {"figure": figure}
        for side, values in sides.items():
            row[side] = {"n": len(values), "p50": float(np.percentile(values, 50)),
                         "p95": float(np.percentile(values, 95))}
        out.append(row)
    return out


def print_table(summary: list[dict], world: dict) -> None:
    print(f"{world['rows']:,} task records; file built in {world['build_s']:.1f} s; migration at open "
          f"{world['migrate_ms']:.0f} ms, a second open {world['reopen_ms']:.1f} ms")
    print("| figure (ms) | baseline p50 | baseline p95 | store p50 | store p95 | service p50 | service p95 "
          "| ASGI p50 | ASGI p95 | service p95 / baseline p95 |")
    print("|---|" + "---:|" * 9)
    for row in summary:
        b, s, v, a = (row[k] for k in ("baseline", "store", "service", "asgi"))
        print(f"| {row['figure']} | {b['p50']:.1f} | {b['p95']:.1f} | {s['p50']:.2f} | {s['p95']:.2f} "
              f"| {v['p50']:.2f} | {v['p95']:.2f} | {a['p50']:.2f} | {a['p95']:.2f} | {v['p95'] / b['p95']:.4f} |")
    counts = {row["figure"]: (row["baseline"]["n"], row["store"]["n"]) for row in summary}
    print(f"samples (baseline, each other side): {counts}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_store", description=__doc__.split("\n")[0])
    p.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                   help="sqlite: against the first schema (default); postgresql: PostgreSQL against SQLite")
    p.add_argument("--tasks", type=int, default=None,
                   help="task records (default 100000; 1000000 with --backend postgresql)")
    p.add_argument("--samples", type=int, default=400, help="samples of each new-side figure (default 400)")
    p.add_argument("--baseline-samples", type=int, default=10,
                   help="samples of each baseline figure, interleaved (default 10; each scans the whole table)")
    p.add_argument("--max-seconds", type=float, default=300,
                   help="stop sampling after this long, once the baseline has 3 samples (default 300)")
    p.add_argument("--writes", type=int, default=0,
                   help="postgresql: then time this many task lifecycles with and without the count triggers")
    return p.parse_args(argv)


_TASK_COLUMNS = ("task_id", "project_id", "workspace_id", "name", "description", "task_type", "source_type",
                 "source", "version_id", "version_name", "data_source", "inputs", "template", "work_path",
                 "input_root", "output_dir", "execution", "status", "error_type", "error_msg", "result",
                 "create_time", "update_time", "run_start_ms", "elapsed_ms", "total_count", "processed_count",
                 "failed_count", "current_run", "stop_requested", "is_current", "priority")


def _current_flags(rows: list[dict]) -> None:
    """Set is_current on ``rows`` by its definition (newest of each series, by create_time then task_id)."""
    newest: dict[tuple, tuple] = {}
    for r in rows:
        key = tuple(r[c] for c in ("project_id", "workspace_id", "task_type", "source_type", "source", "version_id"))
        if key not in newest or (r["create_time"], r["task_id"]) > newest[key]:
            newest[key] = (r["create_time"], r["task_id"])
    current = {task_id for _, task_id in newest.values()}
    for r in rows:
        r["is_current"] = int(r["task_id"] in current)
        r["priority"] = 0


def build_postgres(root: Path, n: int) -> dict:
    """A PostgreSQL database and a SQLite file with the same ``n`` rows, each opened by ``Store``."""
    from serve_app.assembly import build_service
    from serve_app.settings import Settings
    from tests.support.postgres import start_server

    server = start_server()
    url = server.new_database(empty=True)
    lite_path = root / "rayproc.db"
    t0 = time.perf_counter()
    rows = task_rows(n)
    _current_flags(rows)
    generated_s = time.perf_counter() - t0
    for target in (url, lite_path):
        schema_at(target, "0001")
    values = [tuple(r[c] for c in _TASK_COLUMNS) for r in rows]
    del rows
    import psycopg

    t0 = time.perf_counter()
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY tasks ({', '.join(_TASK_COLUMNS)}) FROM STDIN") as copy:
            for v in values:
                copy.write_row(v)
    copy_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with sqlite3.connect(lite_path) as conn:
        conn.executemany(f"INSERT INTO tasks ({', '.join(_TASK_COLUMNS)}) VALUES ({', '.join('?' * len(_TASK_COLUMNS))})",
                         values)
        conn.commit()
    sqlite_s = time.perf_counter() - t0
    migrate_ms, pg_store = _timed(lambda: Store(url))
    sqlite_migrate_ms, lite_store = _timed(lambda: Store(lite_path))
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    analyze_s = time.perf_counter() - t0
    with sqlite3.connect(lite_path) as conn:
        conn.execute("ANALYZE")
    ids = [v[0] for v in values if v[1] == PROJECT]
    del values
    launcher = JobLauncher(f"http://127.0.0.1:{free_port()}", submit_retry_seconds=0)
    services = {}
    for side, store in (("postgresql", pg_store), ("sqlite", lite_store)):
        data_dir = root / f"data-{side}"
        data_dir.mkdir()
        settings = Settings(data_dir=data_dir, allowed_roots=[str(root)], auth_enabled=False).resolved()
        services[side] = build_service(settings, store=store, launcher=launcher)
    return {"rows": n, "server": server, "generated_s": generated_s, "migrate_ms": migrate_ms, "copy_s": copy_s,
            "analyze_s": analyze_s, "sqlite_load_s": sqlite_s, "sqlite_migrate_ms": sqlite_migrate_ms,
            "stores": {"postgresql": pg_store, "sqlite": lite_store}, "services": services, "ids": ids}


def schema_at(target: str | Path, revision: str) -> None:
    """Create the schema of ``revision`` (an older release's) in the empty database ``target``."""
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    from jobs import migrations
    from jobs.db import is_database_url

    if is_database_url(str(target)):
        engine = create_engine(str(target).replace("postgresql://", "postgresql+psycopg://", 1), poolclass=NullPool)
    else:
        engine = create_engine("sqlite://", poolclass=NullPool,
                               creator=lambda: sqlite3.connect(target, isolation_level=None, check_same_thread=False))
    try:
        with engine.connect() as conn:
            migrations.upgrade(conn, revision)
            conn.commit()
    finally:
        engine.dispose()


_TRIGGERS = {"postgresql": ("tasks_counts_insert_delete", "tasks_counts_update"),
             "sqlite": ("tasks_counts_insert", "tasks_counts_delete", "tasks_counts_update", "tasks_series_update")}


def measure_writes(server, root: Path, n: int, seed: int = 3) -> dict[str, list[float]]:
    """ms per task lifecycle (insert_task, claim_run, finish_run, delete_task) on empty databases of each backend,
    with the count triggers and with them dropped, the four sides interleaved."""
    from jobs.db import close_pool
    from jobs.status import TaskStatus

    stores = {}
    for backend in ("postgresql", "sqlite"):
        for triggers in (True, False):
            target = server.new_database() if backend == "postgresql" else str(root / f"writes-{triggers}.db")
            store = Store(target)
            if not triggers:
                with store._tx() as conn:
                    for name in _TRIGGERS[backend]:
                        conn.execute(f"DROP TRIGGER {name}" + (" ON tasks" if backend == "postgresql" else ""))
            stores[f"{backend} {'with' if triggers else 'without'} triggers"] = store
    rng = random.Random(seed)
    times: dict[str, list[float]] = {side: [] for side in stores}
    row = task_rows(1)[0]
    base = {k: (json.loads(v) if k in ("inputs", "template", "work_path", "execution") else v)
            for k, v in row.items() if k not in ("status", "create_time", "update_time", "run_start_ms",
                                                 "elapsed_ms", "total_count", "processed_count", "failed_count",
                                                 "error_type", "error_msg", "result", "stop_requested")}
    for i in range(n):
        sides = list(stores.items())
        rng.shuffle(sides)
        for side, store in sides:
            task_id, run_id = f"w{i}", f"w{i}-r1"

            def lifecycle(store=store, task_id=task_id, run_id=run_id) -> None:
                store.insert_task({**base, "task_id": task_id, "current_run": run_id, "source": f"/data/w{i % 7}"})
                store.claim_run(task_id, run_id)
                store.finish_run(task_id, run_id, TaskStatus.COMPLETED, result={})
                if i % 2:
                    store.delete_task(task_id)

            times[side].append(_timed(lifecycle)[0])
    for side, store in stores.items():
        with store._connect() as conn:  # the kept counts held through it all, where they were kept
            if "with triggers" in side:
                kept = conn.execute("SELECT COALESCE(SUM(n), 0) FROM task_counts").fetchone()[0]
                rows = conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
                if int(kept) != rows:
                    raise SystemExit(f"{side}: task_counts says {kept}, the table holds {rows}")
        if store.dialect == "postgresql":
            close_pool(store.target)
    return times


def measure_postgres(world: dict, samples: int, max_seconds: float, seed: int = 5) -> dict:
    rng = random.Random(seed)
    deadline = time.monotonic() + max_seconds
    times: dict[str, dict[str, list[float]]] = {}
    for i in range(samples):
        if time.monotonic() > deadline and i >= 20:
            break
        task_id = rng.choice(world["ids"])
        sides = []
        for backend in ("postgresql", "sqlite"):
            store, service = world["stores"][backend], world["services"][backend]
            sides += [("GET", f"store {backend}", lambda s=store: s.get_task(task_id, PROJECT, with_runs=True)),
                      ("GET", f"service {backend}", lambda v=service: v.get(PROJECT, task_id))]
            for label, query, _ in (*LISTS, STATUS_LIST):
                sides += [(label, f"store {backend}", lambda s=store, q=query: s.list_tasks(PROJECT, q)),
                          (label, f"service {backend}", lambda v=service, q=query: v.list(PROJECT, q))]
        rng.shuffle(sides)
        answers = {}
        for figure, side, call in sides:
            ms, out = _timed(call)
            times.setdefault(figure, {}).setdefault(side, []).append(ms)
            if side.startswith("store") and figure != "GET":
                answers.setdefault(figure, []).append((out[0], [r.task_id for r in out[1]],
                                                       [(r.is_current, r.version_count) for r in out[1]]))
            elif side.startswith("store"):
                answers.setdefault(figure, []).append((out.task_id, out.is_current, out.version_count))
        for figure, pair in answers.items():
            if pair[0] != pair[1]:
                raise SystemExit(f"{figure}: PostgreSQL and SQLite disagree: {pair[0]!r:.200} vs {pair[1]!r:.200}")
    return times


def print_postgres(times: dict, world: dict) -> list[dict]:
    print(f"{world['rows']:,} task records: generated in {world['generated_s']:.1f} s; COPY {world['copy_s']:.1f} s, "
          f"SQLite executemany {world['sqlite_load_s']:.1f} s; the upgrade to the kept counts (backfill): PostgreSQL "
          f"{world['migrate_ms']:.0f} ms, SQLite {world['sqlite_migrate_ms']:.0f} ms; PostgreSQL VACUUM ANALYZE "
          f"{world['analyze_s']:.1f} s")
    print("| figure (ms) | PG store p50 | PG store p95 | PG service p50 | PG service p95 | SQLite store p50 "
          "| SQLite store p95 | SQLite service p50 | SQLite service p95 | PG/SQLite service p95 |")
    print("|---|" + "---:|" * 9)
    summary = []
    for figure in ("GET", *(label for label, _, _ in (*LISTS, STATUS_LIST))):
        sides = times[figure]
        stat = {side: (float(np.percentile(v, 50)), float(np.percentile(v, 95)), len(v)) for side, v in sides.items()}
        summary.append({"figure": figure, **{k: {"p50": a, "p95": b, "n": c} for k, (a, b, c) in stat.items()}})
        cells = [stat[k] for k in ("store postgresql", "service postgresql", "store sqlite", "service sqlite")]
        print(f"| {figure} | " + " | ".join(f"{a:.2f} | {b:.2f}" for a, b, _ in cells)
              + f" | {cells[1][1] / cells[3][1]:.2f} |")
    print(f"samples per side: {min(len(v) for s in times.values() for v in s.values())}")
    return summary


def main_postgres(args: argparse.Namespace) -> None:
    from tests.support.postgres import stop_server

    with tempfile.TemporaryDirectory(prefix="rayproc-bench-store-pg-") as tmp:
        world = build_postgres(Path(tmp), args.tasks)
        writes = {}
        try:
            times = measure_postgres(world, args.samples, args.max_seconds)
            if args.writes:
                writes = measure_writes(world["server"], Path(tmp), args.writes)
        finally:
            from jobs.db import close_pools

            close_pools()
            stop_server(world["server"])
    summary = print_postgres(times, world)
    if writes:
        print(f"| task lifecycle (insert, claim, finish, delete every other; ms), {args.writes} each | p50 | p95 |")
        print("|---|---:|---:|")
        for side, values in writes.items():
            print(f"| {side} | {np.percentile(values, 50):.2f} | {np.percentile(values, 95):.2f} |")
    out = OUT.with_name("store_postgresql.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"tasks": args.tasks, "summary": summary, "samples": times, "writes": writes,
                               **{k: world[k] for k in ("generated_s", "migrate_ms", "copy_s", "analyze_s",
                                                        "sqlite_load_s", "sqlite_migrate_ms")}}, indent=1))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.tasks is None:
        args.tasks = 1_000_000 if args.backend == "postgresql" else 100_000
    if args.backend == "postgresql":
        return main_postgres(args)
    with tempfile.TemporaryDirectory(prefix="rayproc-bench-store-") as tmp:
        world = build(Path(tmp), args.tasks)
        try:
            times = measure(world, args.samples, args.baseline_samples, args.max_seconds)
        finally:
            world["old"].close()
            world["client"].close()
    summary = summarize(times)
    print_table(summary, world)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"tasks": args.tasks, "build_s": world["build_s"], "migrate_ms": world["migrate_ms"],
                               "reopen_ms": world["reopen_ms"], "summary": summary, "samples": times}, indent=1))


if __name__ == "__main__":
    main()
