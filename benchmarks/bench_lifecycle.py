"""Task lifecycle latency: rayproc against bare Ray jobs, on this machine, in one run.

Three figures, each measured for rayproc and for a bare Ray job (the baseline):

``running``
    From the submit call returning to the first poll answer that shows the work running:
    ``POST /v2/{project}/processor-tasks`` -> ``status == 1``, against ``submit_job`` -> ``RUNNING``.
``completed``
    The same start, to the first poll answer that shows it completed: a one-image analysis task
    (``status == 2``), against ``exec python -c 'pass'`` (``SUCCEEDED``).
``stop``
    From the start of the stop call to the first answer that shows the work stopped (the stop call's
    own answer counts): ``POST .../processor-tasks/{id}/stop`` -> ``status == 4`` for an analysis task
    over ``--items`` small PNGs with ``chunk_size`` 8, stopped once ``processed_count > 0``; against
    ``stop_job`` -> ``STOPPED`` for ``exec python -c 'import time; time.sleep(600)'``, stopped once RUNNING.

How: a Ray head of the benchmark's own is started on free ports, as the tests start theirs
(``tests.support.cluster.start_cluster``: Ray's default dashboard-agent port is shared by every Ray on the
host, and a second head on it cannot run jobs), with one CPU per core; the rayproc service is deployed on it
in-process (``serve_app.deployment.start``), and the baseline jobs go to the same cluster through
``JobSubmissionClient``. ``RAY_TMPDIR`` points into the benchmark's temporary folder, so the session's files
and the cluster address Ray records for ``ray.init()`` stay the benchmark's own; the folder is deleted after
a good run and kept (logs included) after a failed one.

Status is polled every ``--poll`` seconds plus the poll's own round trip. A short task can go from
initialized straight to completed between two polls: its 'running' time is then counted at the poll that
showed it completed (an upper bound), and the miss is counted in the output; the same rule applies to the
baseline.

Machines are noisy, so each repeat runs the rayproc and the bare measurement of a figure back to back,
alternating which goes first, after one discarded warm-up round (Ray starts its workers then).
Medians and minimums are reported, with rayproc - bare (seconds) and rayproc / bare.

To show where rayproc's time goes, the output also holds rayproc's own timestamps from its run records
(run claimed by the runner, run finished), the poll round trips, the stop call's own duration, and the
start-up time of ``python -c pass`` against the runner's imports before its claim (``jobs.runner``) and
of everything a run loads (``jobs.execution``).

Run from the repository root:

    python -m benchmarks.bench_lifecycle [--repeats 5] [--items 3000] [--poll 0.015]

Prints a Markdown table to stdout and writes everything as JSON to ``benchmarks/out/lifecycle.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from rayproc_contract.status import TaskStatus

REPO = Path(__file__).resolve().parent.parent
OUT_FILE = REPO / "benchmarks" / "out" / "lifecycle.json"
PROJECT = "bench"
POLL_TIMEOUT_S = 180.0

RUNNING, COMPLETED, STOPPED = TaskStatus.RUNNING, TaskStatus.COMPLETED, TaskStatus.STOPPED
RAYPROC_TERMINAL = {s for s in TaskStatus if s.is_terminal()}
BARE_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}

FIGURES = {
    "running": "submit returned -> running seen",
    "completed": "submit returned -> completed seen",
    "stop": "stop called -> stopped seen",
}


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# ----- setup --------------------------------------------------------------------------------------


def write_pngs(folder: Path, n: int, seed: int = 0) -> Path:
    """``n`` random 48x32 RGB PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"img_{i:05d}.png")
    return folder


def isolate_ray(root: Path) -> None:
    """Keep the coming Ray session's files under ``root``; refuse settings that point Ray elsewhere."""
    for var in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):  # both override the Jobs API client's address
        if os.environ.get(var):
            raise SystemExit(f"{var} is set; unset it: the benchmark needs a Ray cluster of its own")
    os.environ["RAY_TMPDIR"] = str(root)  # inherited by every process of the new cluster


def start_head(root: Path):
    """A Ray head of our own, one CPU per core, on free ports: ``(cluster, dashboard_url)``."""
    from tests.support.cluster import start_cluster

    cluster, dashboard_url, _ = start_cluster(head_cpus=len(os.sched_getaffinity(0)))
    session = cluster.head_node.get_session_dir_path()
    if not session.startswith(str(root)):
        cluster.shutdown()
        raise RuntimeError(f"Ray session {session} is not under {root}; is RAY_TMPDIR ignored?")
    log(f"Ray session {session}, Jobs API at {dashboard_url}")
    return cluster, dashboard_url


def start_service(root: Path, cluster, dashboard_url: str):
    """The rayproc service on ``cluster``, with ``root`` as its only allowed root."""
    from serve_app import deployment
    from serve_app.settings import Settings
    from tests.support.cluster import free_port

    settings = Settings(data_dir=root / "data", host="127.0.0.1", port=free_port(), ray_address=cluster.address,
                        dashboard_url=dashboard_url, allowed_roots=[str(root)])
    from serve_app.accounts import Accounts

    running = deployment.start(settings)
    Accounts(running.settings.db_path).create_project(PROJECT)
    log(f"rayproc API at {running.url}")
    return running


def stop_service(cluster) -> None:
    import ray

    from serve_app import deployment

    # Only if we got as far as ray.init(): serve.shutdown() would otherwise connect somewhere to shut down.
    if ray.is_initialized():
        log("stopping Serve")
        deployment.stop()
    if cluster is not None:
        log("stopping the Ray head")
        cluster.shutdown()


def other_ray_clusters(root: Path) -> int:
    """GCS servers on this host that are not ours: other Ray clusters sharing the CPUs (noise)."""
    count = 0
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes() if proc.name.isdigit() else b""
        except OSError:
            continue
        count += b"gcs_server" in cmd and str(root).encode() not in cmd
    return count


# ----- polling ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    """One poll: when it was sent, when its answer arrived (monotonic seconds), what it said."""

    sent: float
    at: float
    status: Any
    body: Any = None


def poll(read: Callable[[], tuple[Any, Any]], until: Callable[[Any, Any], bool], interval: float) -> list[Seen]:
    """Call ``read`` (-> status, body) every ``interval`` seconds until ``until(status, body)``."""
    seen: list[Seen] = []
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while True:
        sent = time.monotonic()
        status, body = read()
        seen.append(Seen(sent, time.monotonic(), status, body))
        if until(status, body):
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"still {status!r} after {POLL_TIMEOUT_S:.0f} s")
        time.sleep(interval)


def lifecycle(t0: float, seen: list[Seen], running: Any, done: Any) -> dict:
    """'running' and 'completed' times after ``t0``; a run never seen running counts as running when done."""
    if seen[-1].status != done:
        raise RuntimeError(f"expected to end {done!r}, ended {seen[-1].status!r}: {seen[-1].body}")
    first = next(s for s in seen if s.status in (running, done))
    return {"running": first.at - t0, "running_missed": first.status == done,
            "completed": seen[-1].at - t0, "poll_rtt": statistics.median(s.at - s.sent for s in seen)}


# ----- the two systems ----------------------------------------------------------------------------


class Rayproc:
    """The rayproc HTTP API, plus read access to its run records for the breakdown."""

    def __init__(self, client: httpx.Client, db_path: Path, interval: float) -> None:
        from jobs.store import Store

        self.client, self.store, self.interval = client, Store(db_path), interval
        self.base = f"/v2/{PROJECT}/processor-tasks"

    def create(self, folder: Path, **extra) -> str:
        body = {"name": "b", "data_source": {"type": "OBS", "source": str(folder)},
                "template": {"id": "sys_data_analyse"}, **extra}
        r = self.client.post(self.base, json=body)
        r.raise_for_status()
        return r.json()["task_id"]

    def read(self, task_id: str) -> tuple[int, dict]:
        r = self.client.get(f"{self.base}/{task_id}")
        r.raise_for_status()
        task = r.json()
        return task["status"], task

    def stop(self, task_id: str) -> dict:
        r = self.client.post(f"{self.base}/{task_id}/stop")
        r.raise_for_status()
        return r.json()

    def run_record(self, task_id: str) -> dict:
        return self.store.runs_for([task_id])[task_id][-1]

    def watch(self, task_id: str, until: Callable[[int, dict], bool]) -> list[Seen]:
        return poll(lambda: self.read(task_id), until, self.interval)


class BareRay:
    """Plain Ray jobs through the Jobs API."""

    def __init__(self, dashboard_url: str, interval: float) -> None:
        from ray.job_submission import JobSubmissionClient

        self.client, self.interval = JobSubmissionClient(dashboard_url), interval

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the head's job agent accepts jobs (it starts after the head) and has run one."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                job_id = self.submit("pass")
                break
            except Exception as exc:  # "No available agent" while it starts
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Jobs API never accepted a job: {exc}") from exc
                time.sleep(0.5)
        self.watch(job_id, lambda st, _: st in BARE_TERMINAL)

    def submit(self, code: str) -> str:
        # A fresh id every time: Ray never accepts a submission id twice.
        return self.client.submit_job(entrypoint=f"exec {sys.executable} -c '{code}'",
                                      submission_id=f"bench-{uuid.uuid4().hex[:12]}")

    def read(self, job_id: str) -> tuple[str, None]:
        return str(self.client.get_job_status(job_id).value), None

    def watch(self, job_id: str, until: Callable[[str, Any], bool]) -> list[Seen]:
        return poll(lambda: self.read(job_id), until, self.interval)


# ----- one measurement each -----------------------------------------------------------------------


def rayproc_complete(rp: Rayproc, folder: Path) -> dict:
    sent = time.monotonic()
    task_id = rp.create(folder)
    t0, t0_wall = time.monotonic(), time.time()
    seen = rp.watch(task_id, lambda st, _: st in RAYPROC_TERMINAL)
    out = lifecycle(t0, seen, RUNNING, COMPLETED)
    run = rp.run_record(task_id)
    return {**out, "submit_call": t0 - sent, "task_id": task_id,
            "claimed_after_submit": run["start_time"] / 1000 - t0_wall,
            "finished_after_submit": run["end_time"] / 1000 - t0_wall}


def bare_complete(bare: BareRay) -> dict:
    sent = time.monotonic()
    job_id = bare.submit("pass")
    t0 = time.monotonic()
    seen = bare.watch(job_id, lambda st, _: st in BARE_TERMINAL)
    return {**lifecycle(t0, seen, "RUNNING", "SUCCEEDED"), "submit_call": t0 - sent, "job_id": job_id}


def rayproc_stop(rp: Rayproc, folder: Path) -> dict:
    task_id = rp.create(folder, execution={"chunk_size": 8})
    seen = rp.watch(task_id, lambda st, t: st in RAYPROC_TERMINAL or (st == RUNNING and t["processed_count"] > 0))
    if seen[-1].status != RUNNING:
        raise RuntimeError(f"the long task ended (status {seen[-1].status}) before it could be stopped; "
                           "use more --items")
    processed_at_stop = seen[-1].body["processed_count"]
    t0, t0_wall = time.monotonic(), time.time()
    answer = rp.stop(task_id)
    answered = time.monotonic()
    if answer["status"] == STOPPED:
        stopped_at, final = answered, answer
    else:
        seen = rp.watch(task_id, lambda st, _: st in RAYPROC_TERMINAL)
        if seen[-1].status != STOPPED:
            raise RuntimeError(f"the stopped task ended with status {seen[-1].status}: {seen[-1].body}")
        stopped_at, final = seen[-1].at, seen[-1].body
    run = rp.run_record(task_id)
    return {"stop": stopped_at - t0, "stop_call": answered - t0, "task_id": task_id,
            "finished_after_stop_call": run["end_time"] / 1000 - t0_wall,
            "processed_at_stop": processed_at_stop, "processed_final": final["processed_count"],
            "total": final["total_count"]}


def bare_stop(bare: BareRay) -> dict:
    job_id = bare.submit("import time; time.sleep(600)")
    seen = bare.watch(job_id, lambda st, _: st == "RUNNING" or st in BARE_TERMINAL)
    if seen[-1].status != "RUNNING":
        raise RuntimeError(f"the sleeping job ended {seen[-1].status} before it could be stopped")
    t0 = time.monotonic()
    bare.client.stop_job(job_id)
    answered = time.monotonic()
    seen = bare.watch(job_id, lambda st, _: st in BARE_TERMINAL)
    if seen[-1].status != "STOPPED":
        raise RuntimeError(f"the stopped job ended {seen[-1].status}")
    return {"stop": seen[-1].at - t0, "stop_call": answered - t0, "job_id": job_id}


# ----- the run ------------------------------------------------------------------------------------


def one_round(index: int, rp: Rayproc, bare: BareRay, root: Path, settle: float) -> dict:
    """Both figures for both systems, each pair back to back; odd rounds run the baseline first."""
    pairs = {
        "complete": (lambda: rayproc_complete(rp, root / "inputs" / "one"), lambda: bare_complete(bare)),
        "stop": (lambda: rayproc_stop(rp, root / "inputs" / "many"), lambda: bare_stop(bare)),
    }
    out: dict = {"host": {"load_1min": os.getloadavg()[0], "other_ray_clusters": other_ray_clusters(root)}}
    for kind, (rayproc_fn, bare_fn) in pairs.items():
        order = [("rayproc", rayproc_fn), ("bare", bare_fn)]
        for system, fn in order if index % 2 == 0 else order[::-1]:
            out[f"{system}_{kind}"] = fn()
            time.sleep(settle)  # let the finished job's processes exit before the next measurement
    return out


def interpreter_startup(repeats: int, cwd: Path) -> dict:
    """Wall time of a bare interpreter, of the runner's imports before its claim (``jobs.runner``) and of
    everything a run loads (``jobs.execution``: numpy, Pillow, the operators, Ray), alternating."""
    commands = {"python_pass": "pass", "import_jobs_runner": "import jobs.runner",
                "import_jobs_runner_and_execution": "import jobs.runner, jobs.execution"}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, code in commands.items():
            t = time.monotonic()
            subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True)
            times[name].append(time.monotonic() - t)
    return {name: {"median": statistics.median(v), "min": min(v), "samples": v} for name, v in times.items()}


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "samples": values}


def summarize(rounds: list[dict]) -> dict:
    source = {"running": "complete", "completed": "complete", "stop": "stop"}
    figures = {}
    for figure, kind in source.items():
        rp = stats([r[f"rayproc_{kind}"][figure] for r in rounds])
        base = stats([r[f"bare_{kind}"][figure] for r in rounds])
        figures[figure] = {
            "what": FIGURES[figure], "rayproc": rp, "bare": base,
            "diff_median": rp["median"] - base["median"], "ratio_median": rp["median"] / base["median"],
            "diff_min": rp["min"] - base["min"], "ratio_min": rp["min"] / base["min"],
        }
    return figures


def breakdown(rounds: list[dict]) -> dict:
    """Medians of the supporting figures (seconds)."""
    def med(key: str, field: str) -> float:
        return statistics.median(r[key][field] for r in rounds)

    return {
        "rayproc_submit_call": med("rayproc_complete", "submit_call"),
        "bare_submit_call": med("bare_complete", "submit_call"),
        "rayproc_claimed_after_submit": med("rayproc_complete", "claimed_after_submit"),
        "rayproc_finished_after_submit": med("rayproc_complete", "finished_after_submit"),
        "rayproc_poll_rtt": med("rayproc_complete", "poll_rtt"),
        "bare_poll_rtt": med("bare_complete", "poll_rtt"),
        "rayproc_stop_call": med("rayproc_stop", "stop_call"),
        "bare_stop_call": med("bare_stop", "stop_call"),
        "rayproc_finished_after_stop_call": med("rayproc_stop", "finished_after_stop_call"),
        "running_missed": {s: sum(r[f"{s}_complete"]["running_missed"] for r in rounds) for s in ("rayproc", "bare")},
        "max_other_ray_clusters": max(r["host"]["other_ray_clusters"] for r in rounds),
        "max_load_1min": max(r["host"]["load_1min"] for r in rounds),
    }


def source_version() -> dict:
    """The commit measured, and the service's files that differed from it (the benchmark's own aside)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout

    changed = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"commit": git("rev-parse", "HEAD").strip(),
            "modified": [f for f in changed if not f.startswith("benchmarks/") and f != "BENCHMARKS.md"]}


def machine() -> dict:
    import ray

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "mem_gib": round(mem_kb / 2**20, 1),
            "os": platform.platform(), "python": platform.python_version(), "ray": ray.__version__}


def markdown(figures: dict, repeats: int) -> str:
    rows = [f"| Figure ({repeats} runs, seconds) | rayproc median | rayproc min | bare Ray median | bare Ray min "
            "| diff (median) | ratio (median) | diff (min) | ratio (min) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, f in figures.items():
        rows.append(f"| {name}: {f['what']} | {f['rayproc']['median']:.3f} | {f['rayproc']['min']:.3f} "
                    f"| {f['bare']['median']:.3f} | {f['bare']['min']:.3f} | {f['diff_median']:+.3f} "
                    f"| {f['ratio_median']:.2f} | {f['diff_min']:+.3f} | {f['ratio_min']:.2f} |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_lifecycle", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="measured rounds (default 5)")
    p.add_argument("--warmup", type=int, default=1, help="discarded rounds first (default 1)")
    p.add_argument("--items", type=int, default=3000, help="images in the task that gets stopped (default 3000)")
    p.add_argument("--poll", type=float, default=0.015, help="seconds between status polls (default 0.015)")
    p.add_argument("--settle", type=float, default=1.0, help="pause after each measurement (default 1.0 s)")
    p.add_argument("--out", type=Path, default=OUT_FILE, help=f"JSON output (default {OUT_FILE})")
    return p.parse_args(argv)


def measure(root: Path, args: argparse.Namespace) -> tuple[list[dict], dict]:
    """Start Ray and the service under ``root``, run the rounds, stop everything: ``(rounds, interpreter)``."""
    cluster = None
    try:
        isolate_ray(root)
        write_pngs(root / "inputs" / "one", 1)
        write_pngs(root / "inputs" / "many", args.items, seed=1)
        log(f"starting Ray and the service under {root}")
        cluster, dashboard_url = start_head(root)
        running = start_service(root, cluster, dashboard_url)
        token = running.initial_token_file.read_text().strip()  # the first start's admin token
        with httpx.Client(base_url=running.url, timeout=60, headers={"Authorization": f"Token {token}"}) as client:
            rp = Rayproc(client, running.settings.db_path, args.poll)
            bare = BareRay(running.dashboard_url, args.poll)
            bare.wait_ready()
            rounds = []
            for i in range(args.warmup + args.repeats):
                log(f"warm-up {i + 1}" if i < args.warmup else f"round {i - args.warmup + 1}/{args.repeats}")
                result = one_round(i, rp, bare, root, args.settle)
                if i >= args.warmup:
                    rounds.append(result)
        log("interpreter start-up")
        interpreter = interpreter_startup(max(args.repeats, 5), root)
    finally:
        stop_service(cluster)
    return rounds, interpreter


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, source = dt.datetime.now(dt.timezone.utc), source_version()
    # Short: Ray's socket paths under it must stay within the 107-byte limit of Unix sockets.
    root = Path(tempfile.mkdtemp(prefix="rpbench-", dir="/tmp")).resolve()
    try:
        rounds, interpreter = measure(root, args)
    except BaseException:
        log(f"failed; kept {root} (inputs, rayproc data, Ray session logs) for inspection")
        raise
    shutil.rmtree(root, ignore_errors=True)

    figures, details = summarize(rounds), breakdown(rounds)
    report = {
        "date": started.isoformat(timespec="seconds"),
        "command": "python -m benchmarks.bench_lifecycle " + " ".join(sys.argv[1:] if argv is None else argv),
        "source": source,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "figures": figures,
        "breakdown": details,
        "interpreter_startup": interpreter,
        "rounds": rounds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    missed = details["running_missed"]
    print(markdown(figures, args.repeats))
    print(f"\n'running' missed (initialized to completed between two polls, counted when completed was seen): "
          f"rayproc {missed['rayproc']} of {args.repeats}, bare {missed['bare']} of {args.repeats}.")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
