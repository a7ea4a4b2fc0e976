"""A burst of creates against a running-task limit: how fast creates answer, and whether every task runs once.

``--creates`` tiny analysis tasks (``--images`` PNGs each, three by default) are created by ``--clients`` concurrent
HTTP clients, each create with an ``Idempotency-Key`` of its own, against a service whose running-task limit is
``--max-running`` (``RAYPROC_MAX_RUNNING_TASKS``). The benchmark then waits for every task to end, and reports:

``requests/s``
    creates answered per second of the burst (first create sent to last answer);
``create p50 / p99``
    the create call's own time (goal: p99 under 1 s);
``list p50 / p99 during the burst``
    a ``GET .../processor-tasks?status=1`` sent every ``--sample`` seconds while creates were in flight;
``peak running``
    the most tasks seen with status 1 by those samples (with admission: at most the limit);
``time to drain``
    first create sent to the last task seen terminal;
``run twice``
    tasks with more than one Ray run, and tasks whose features file does not hold each of their images exactly
    once (goal 0 for both);
``peak memory``
    the resident memory of this process and every process under it (the Ray head's processes, the Serve
    replica, the job drivers), sampled with the rest: an upper bound (shared pages count once per process).

Admission is the queue's: on a build without ``RAYPROC_MAX_RUNNING_TASKS`` the setting is ignored and every create
submits its Ray job at once, the baseline; the report says which it measured. The run is bounded: creates stop
after ``--max-minutes`` and so does the wait for the drain; everything listens on loopback only. The cluster and
the service are started as ``bench_lifecycle`` starts them (a Ray head of the benchmark's own, on free ports, with
its files under a temporary folder that is deleted after a good run).

    python -m benchmarks.bench_queue [--creates 1000] [--clients 20] [--max-running 2]

Prints a Markdown table to stdout and writes everything as JSON to ``benchmarks/out/queue.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from benchmarks.bench_lifecycle import (
    PROJECT,
    isolate_ray,
    log,
    machine,
    source_version,
    start_head,
    start_service,
    stop_service,
    write_pngs,
)
from benchmarks.runs import Output, all_tasks, count_with_status, runs_of, table, tree_rss_bytes, write_report
from rayproc_contract.status import TaskStatus

REPO = Path(__file__).resolve().parent.parent
OUT_FILE = REPO / "benchmarks" / "out" / "queue.json"
LIMIT_ENV = "RAYPROC_MAX_RUNNING_TASKS"
LIMIT_FIELD = "max_running_tasks"


@dataclass(frozen=True)
class Create:
    sent: float
    seconds: float
    status_code: int | None  # None: no answer (connection error, timeout)
    task_id: str | None
    error: str | None = None


@dataclass(frozen=True)
class Sample:
    at: float
    running: int | None
    list_seconds: float | None
    rss_bytes: int
    #: A request the replica answers from memory (``GET /openapi.json``): the same load's cost on any request.
    baseline_seconds: float | None = None
    load_1min: float | None = None


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# ----- the burst ----------------------------------------------------------------------------------


def burst(url: str, token: str, folder: Path, args: argparse.Namespace, deadline: float) -> list[Create]:
    """``args.creates`` creates from ``args.clients`` threads, each thread with its own connection."""
    body = {"name": "burst", "data_source": {"type": "OBS", "source": str(folder)},
            "template": {"id": "sys_data_analyse"}, "execution": {"chunk_size": args.images}}
    local = threading.local()

    def one(_: int) -> Create:
        if time.monotonic() > deadline:
            return Create(time.monotonic(), 0.0, None, None, "not sent: past --max-minutes")
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=url, timeout=120,
                                                 headers={"Authorization": f"Token {token}"})
        sent = time.monotonic()
        try:
            r = client.post(f"/v2/{PROJECT}/processor-tasks", json=body,
                            headers={"Idempotency-Key": uuid.uuid4().hex})
        except httpx.TransportError as exc:
            return Create(sent, time.monotonic() - sent, None, None, type(exc).__name__)
        seconds = time.monotonic() - sent
        if r.status_code != 200:
            return Create(sent, seconds, r.status_code, None, r.text[:200])
        return Create(sent, seconds, 200, r.json()["task_id"])

    with ThreadPoolExecutor(args.clients) as pool:
        return list(pool.map(one, range(args.creates)))


class Sampler(threading.Thread):
    """Every ``interval`` seconds: the running count (through a list call, timed) and the tree's memory."""

    def __init__(self, client: httpx.Client, interval: float) -> None:
        super().__init__(daemon=True)
        self.client, self.interval = client, interval
        self.samples: list[Sample] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            t = time.monotonic()
            try:
                running: int | None = count_with_status(self.client, PROJECT, TaskStatus.RUNNING)
                took: float | None = time.monotonic() - t
            except httpx.HTTPError:
                running, took = None, None
            b = time.monotonic()
            try:
                self.client.get("/openapi.json").raise_for_status()
                baseline: float | None = time.monotonic() - b
            except httpx.HTTPError:
                baseline = None
            self.samples.append(Sample(t, running, took, tree_rss_bytes(), baseline, os.getloadavg()[0]))
            self.stopping.wait(max(0.0, self.interval - (time.monotonic() - t)))


def drain(client: httpx.Client, deadline: float) -> float | None:
    """Wait until no task of the project is initialized or running: when that was seen, or None at the deadline."""
    while time.monotonic() < deadline:
        try:
            active = sum(count_with_status(client, PROJECT, s) for s in (TaskStatus.INITIALIZED, TaskStatus.RUNNING))
        except httpx.HTTPError:
            active = -1
        if active == 0:
            return time.monotonic()
        time.sleep(1.0)
    return None


# ----- the checks -----------------------------------------------------------------------------------


def check(tasks: list[dict], images: list[str]) -> dict:
    """Runs per task and items per completed task, from the records and the outputs."""
    expected = Counter(images)
    statuses = Counter(TaskStatus(t["status"]).name.lower() for t in tasks)
    failures = Counter(t.get("error_type") or "unknown" for t in tasks if t["status"] == TaskStatus.FAILED)
    rerun = [t["task_id"] for t in tasks if runs_of(t) > 1]
    wrong_items, doubled = [], 0
    for task in tasks:
        if task["status"] == TaskStatus.COMPLETED:
            out = Output.of(task)
            doubled += out.doubled
            if out.items != expected:
                wrong_items.append(task["task_id"])
    return {"tasks": len(tasks), "statuses": dict(statuses), "failed_by_type": dict(failures),
            "tasks_with_more_than_one_run": len(rerun), "rerun_task_ids": rerun[:20],
            "completed_with_wrong_items": len(wrong_items), "wrong_items_task_ids": wrong_items[:20],
            "items_doubled": doubled}


def summarize(creates: list[Create], samples: list[Sample], drained_at: float | None, checks: dict,
              limit: int, admission: bool) -> dict:
    answered = [c for c in creates if c.status_code is not None]
    ok = [c for c in creates if c.status_code == 200]
    start = min(c.sent for c in creates)
    burst_end = max(c.sent + c.seconds for c in creates)
    in_burst = [s for s in samples if start <= s.at <= burst_end]
    list_times = [s.list_seconds for s in in_burst if s.list_seconds is not None]
    baseline = [s.baseline_seconds for s in in_burst if s.baseline_seconds is not None]
    loads = [s.load_1min for s in in_burst if s.load_1min is not None]
    seconds = [c.seconds for c in answered]
    return {
        "admission": admission, "max_running": limit if admission else None,
        "creates": len(creates), "created": len(ok),
        "answers": dict(Counter(str(c.status_code) for c in creates)),
        "errors": dict(Counter(c.error.split(":")[0][:80] for c in creates if c.error)),
        "burst_seconds": burst_end - start,
        "requests_per_second": len(answered) / (burst_end - start) if burst_end > start else None,
        "create_p50": percentile(seconds, 50), "create_p99": percentile(seconds, 99),
        "create_max": max(seconds) if seconds else None,
        "list_p50_in_burst": percentile(list_times, 50), "list_p99_in_burst": percentile(list_times, 99),
        "baseline_p50_in_burst": percentile(baseline, 50), "baseline_p99_in_burst": percentile(baseline, 99),
        "create_p50_over_baseline_p50": (percentile(seconds, 50) / percentile(baseline, 50)
                                         if baseline and seconds and percentile(baseline, 50) else None),
        "load_1min_in_burst": [min(loads), max(loads)] if loads else None,
        "peak_running": max((s.running for s in samples if s.running is not None), default=None),
        "samples": len(samples),
        "time_to_drain": drained_at - start if drained_at is not None else None,
        "peak_rss_mib": max((s.rss_bytes for s in samples), default=0) / 2**20,
        **checks,
    }


def markdown(summary: dict) -> str:
    def s(v: float | None, fmt: str = "{:.3f}") -> str:
        return "n/a" if v is None else fmt.format(v)

    admission = (f"limit {summary['max_running']} running" if summary["admission"]
                 else "none (this build has no RAYPROC_MAX_RUNNING_TASKS: every create submits at once)")
    rows = [
        ("admission", admission),
        ("creates sent / created", f"{summary['creates']} / {summary['created']}"),
        ("answers", ", ".join(f"{k}: {v}" for k, v in sorted(summary["answers"].items()))),
        ("requests/s (burst)", s(summary["requests_per_second"], "{:.1f}")),
        ("create p50 / p99 / max (s)",
         f"{s(summary['create_p50'])} / {s(summary['create_p99'])} / {s(summary['create_max'])}"),
        ("list p50 / p99 during the burst (s)",
         f"{s(summary['list_p50_in_burst'])} / {s(summary['list_p99_in_burst'])}"),
        ("baseline GET /openapi.json p50 / p99 during the burst (s)",
         f"{s(summary['baseline_p50_in_burst'])} / {s(summary['baseline_p99_in_burst'])}"),
        ("create p50 / baseline p50", s(summary["create_p50_over_baseline_p50"], "{:.1f}")),
        ("1-minute load average during the burst (min / max)",
         "n/a" if not summary["load_1min_in_burst"] else "{:.1f} / {:.1f}".format(*summary["load_1min_in_burst"])),
        ("peak running (sampled)", s(summary["peak_running"], "{}")),
        ("time to drain (s)", s(summary["time_to_drain"], "{:.1f}")),
        ("statuses at the end", ", ".join(f"{k}: {v}" for k, v in sorted(summary["statuses"].items()))),
        ("failed, by type", ", ".join(f"{k}: {v}" for k, v in sorted(summary["failed_by_type"].items())) or "none"),
        ("tasks with more than one run", str(summary["tasks_with_more_than_one_run"])),
        ("completed tasks without each image exactly once", str(summary["completed_with_wrong_items"])),
        ("peak memory, head node process tree (MiB)", f"{summary['peak_rss_mib']:.0f}"),
    ]
    return table(rows)


# ----- the run ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_queue", description=__doc__.split("\n")[0])
    p.add_argument("--creates", type=int, default=1000, help="tasks to create (default 1000)")
    p.add_argument("--clients", type=int, default=20, help="concurrent HTTP clients (default 20)")
    p.add_argument("--max-running", type=int, default=2, help=f"{LIMIT_ENV} (default 2)")
    p.add_argument("--images", type=int, default=3, help="images per task (default 3)")
    p.add_argument("--sample", type=float, default=0.5, help="seconds between samples (default 0.5)")
    p.add_argument("--max-minutes", type=float, default=60.0,
                   help="bound on the creates and on the wait for the drain, each (default 60)")
    p.add_argument("--out", type=Path, default=OUT_FILE, help=f"JSON output (default {OUT_FILE})")
    args = p.parse_args(argv)
    if not (1 <= args.creates <= 100_000 and 1 <= args.clients <= 200 and args.max_running >= 1):
        p.error("--creates 1-100000, --clients 1-200, --max-running 1 or more")
    return args


def measure(root: Path, args: argparse.Namespace) -> tuple[dict, list[Create], list[Sample]]:
    from serve_app.settings import Settings

    admission = LIMIT_FIELD in Settings.model_fields
    os.environ[LIMIT_ENV] = str(args.max_running)  # read by the service's Settings, where the build has it
    folder = write_pngs(root / "inputs" / "tiny", args.images)
    images = sorted(p.name for p in folder.iterdir())
    cluster = None
    try:
        isolate_ray(root)
        cluster, dashboard_url = start_head(root)
        running = start_service(root, cluster, dashboard_url)
        if admission and getattr(running.settings, LIMIT_FIELD) != args.max_running:
            raise RuntimeError(f"the service runs with {LIMIT_FIELD}={getattr(running.settings, LIMIT_FIELD)}")
        token = running.initial_token_file.read_text().strip()
        with httpx.Client(base_url=running.url, timeout=120, headers={"Authorization": f"Token {token}"}) as client:
            wait_for_jobs_api(client)
            sampler = Sampler(client, args.sample)
            sampler.start()
            log(f"{args.creates} creates from {args.clients} clients, admission "
                f"{'limit ' + str(args.max_running) if admission else 'off (not in this build)'}")
            creates = burst(running.url, token, folder, args, time.monotonic() + args.max_minutes * 60)
            log("burst done; waiting for the drain")
            drained_at = drain(client, time.monotonic() + args.max_minutes * 60)
            sampler.stopping.set()
            sampler.join(30)
            checks = check(all_tasks(client, PROJECT), images)
    finally:
        stop_service(cluster)
    return summarize(creates, sampler.samples, drained_at, checks, args.max_running, admission), creates, \
        sampler.samples


def wait_for_jobs_api(client: httpx.Client, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/healthz").json().get("ray") != "reachable":
        if time.monotonic() > deadline:
            raise RuntimeError("the Ray Jobs API never became reachable")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, source = dt.datetime.now(dt.timezone.utc), source_version()
    root = Path(tempfile.mkdtemp(prefix="rpqueue-", dir="/tmp")).resolve()  # short: Unix socket paths
    try:
        summary, creates, samples = measure(root, args)
    except BaseException:
        log(f"failed; kept {root} (inputs, rayproc data, Ray session logs) for inspection")
        raise
    shutil.rmtree(root, ignore_errors=True)
    write_report(args.out, "benchmarks.bench_queue", argv, started, source, machine(), args, summary=summary,
                 creates=[asdict(c) for c in creates], samples=[asdict(s) for s in samples],
                 host_load_1min_after=os.getloadavg()[0])
    print(markdown(summary))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
