"""Many small tasks on several Ray nodes on one machine while faults land at random points; then what survived.

A Ray head and ``--workers`` worker nodes (``ray.cluster_utils.Cluster``, as the multi-node tests start them) run
the rayproc service, deployed from this process. One task over ``--images`` PNGs runs first with no fault: its
outputs are the reference. Then, for ``--minutes``, ``--concurrent`` tasks over the same folder are kept running
(each created with an ``Idempotency-Key``, repeated until the service answers), while a fault is injected every
``--fault-every`` seconds on average (exponential gaps, seeded by ``--seed``), one of:

``driver``   SIGKILL a task's job driver (``jobs.runner``) process;
``worker``   SIGKILL a Ray worker process running chunks (never an idle one, which may be about to become one of
             Serve's actors, nor Serve's, a job supervisor or a raylet's agents);
``node``     remove a worker node, or add one back when one is missing;
``service``  restart the service (Serve shut down and deployed again on the same port; Ray keeps running), at
             most once every ``--restart-gap`` seconds; it runs in the background (on a busy host it takes tens of
             seconds) while process kills go on landing (node changes wait: they share this process's Ray
             connection with the restart).

No fault is injected in the last ``--settle`` seconds, and the run then waits that long for every task to end.
It reports, with the goal of zero for each:

``stuck``           tasks that stayed non-terminal with no progress for over 60 s, or were still non-terminal at
                    the end, ``--settle`` (at least 60 s) after the last fault;
``falsely failed``  tasks failed for an infrastructure reason (``job_died``, ``cluster_error``, ``ray_unavailable``):
                    the input is good, so a self-healing service finishes them instead;
``items lost``      items of the reference missing from a completed task's outputs;
``items doubled``   extra copies of an item in a completed task's outputs;

plus the faults injected by kind, the tasks by final status, failures by type, and completed tasks whose features
file is not byte-identical to the reference's. Everything runs on this machine and listens on loopback only.

    python -m benchmarks.chaos [--minutes 10] [--workers 2] [--concurrent 3] [--seed 0]

Prints the report as Markdown and writes it as JSON to ``benchmarks/out/chaos.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks.bench_lifecycle import isolate_ray, log, machine, source_version, stop_service, write_pngs
from benchmarks.runs import Output, process_tree, table, write_report

REPO = Path(__file__).resolve().parent.parent
OUT_FILE = REPO / "benchmarks" / "out" / "chaos.json"
PROJECT = "chaos"
STUCK_SECONDS = 60.0
TERMINAL = {2, 3, 4}
INFRASTRUCTURE = {"job_died", "cluster_error", "ray_unavailable"}
#: Ray processes named ``ray::...`` that are not task workers: killing them is not one of the faults (a raylet
#: dies with its agents; Serve and the job supervisors are the service's and Ray's own).
NOT_TASK_WORKERS = ("Agent", "Serve", "Proxy", "JobSupervisor", "_ray_internal", "dashboard")
FAULT_WEIGHTS = {"driver": 4, "worker": 4, "node": 2, "service": 1}
RESTART_ATTEMPTS = 3


# ----- processes ------------------------------------------------------------------------------------


def drivers() -> list[int]:
    return [p.pid for p in process_tree() if "-m jobs.runner" in p.cmdline]


def task_workers() -> list[int]:
    """Ray workers running something: an idle worker may be about to become one of Serve's actors."""
    return [p.pid for p in process_tree() if p.cmdline.startswith("ray::") and not p.cmdline.startswith("ray::IDLE")
            and not any(name in p.cmdline for name in NOT_TASK_WORKERS)]


# ----- the rig: cluster, service, client ----------------------------------------------------------------


class Rig:
    """The cluster and the service on it, and the faults that can be done to them."""

    def __init__(self, root: Path, workers: int, **settings) -> None:
        from serve_app import deployment
        from serve_app.accounts import Accounts
        from serve_app.settings import Settings
        from tests.support.cluster import free_port, start_cluster

        self.deployment, self.free_port = deployment, free_port
        self.cluster, dashboard_url, nodes = start_cluster(workers=workers, head_cpus=1)
        self.workers = list(nodes)
        self.restart: threading.Thread | None = None
        self.restarts: list[dict] = []
        self.wanted_workers = workers
        self.settings = Settings(data_dir=root / "data", host="127.0.0.1", port=free_port(),
                                 ray_address=self.cluster.address, dashboard_url=dashboard_url,
                                 allowed_roots=[str(root)], operator_plugins=["tests.support.probe_operators"],
                                 reconcile_interval_seconds=0.5, **settings)
        running = deployment.start(self.settings)
        Accounts(running.settings.db_path).create_project(PROJECT)
        token = running.initial_token_file.read_text().strip()
        self.client = httpx.Client(base_url=running.url, timeout=10, headers={"Authorization": f"Token {token}"})
        self.wait_ready()

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client.get("/healthz").json().get("ray") == "reachable":
                    return
            except (httpx.HTTPError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the service did not answer with Ray reachable")
            time.sleep(0.5)

    def inject(self, kind: str, rng: random.Random) -> str | None:
        """Do one fault of ``kind``: what was done, or None when it had no target (no driver running ...)."""
        if kind == "driver" or kind == "worker":
            pids = drivers() if kind == "driver" else task_workers()
            if not pids:
                return None
            pid = rng.choice(pids)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return None
            return f"killed {kind} pid {pid}"
        if kind == "node":
            removable = self._removable_workers()
            if len(self.workers) >= self.wanted_workers and removable:
                node = rng.choice(removable)
                self.workers.remove(node)
                self.cluster.remove_node(node)
                return f"removed worker node {node.node_id[:8]}"
            if len(self.workers) >= self.wanted_workers:
                return None
            node = self.cluster.add_node(num_cpus=1, dashboard_agent_listen_port=self.free_port())
            self.workers.append(node)
            return f"added worker node {node.node_id[:8]}"
        if kind == "service":
            if self.restarting:
                return None
            self.restart = threading.Thread(target=self._restart_service, daemon=True)
            self.restart.start()
            return "restarting the service"
        raise ValueError(kind)

    @property
    def restarting(self) -> bool:
        return self.restart is not None and self.restart.is_alive()

    def _restart_service(self) -> None:
        # In the background: on a busy host a restart takes tens of seconds, and faults keep landing meanwhile.
        # Started again on failure, as a supervisor would: ray.init may pick the raylet of a node just removed
        # (every node has this machine's address) before the GCS has marked it dead.
        t, errors = time.monotonic(), []
        for _ in range(RESTART_ATTEMPTS):
            try:
                # Only while connected: serve.shutdown() unconnected would ray.init() whatever cluster it finds.
                stop_service(None)
            except Exception:
                pass  # half started: start() below is what counts
            try:
                self.deployment.start(self.settings)
                self.wait_ready()
                break
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                time.sleep(5)
        self.restarts.append({"seconds": round(time.monotonic() - t, 1), "attempts_failed": len(errors),
                              "up": len(errors) < RESTART_ATTEMPTS, "errors": errors})

    def wait_restarted(self, timeout: float = 300.0) -> None:
        if self.restart is not None:
            self.restart.join(timeout)

    def _removable_workers(self) -> list:
        """Worker nodes other than the one this process's Ray connection goes through (nodes share one address,
        so ``ray.init`` may pick a worker's raylet): ``Cluster.remove_node`` refuses that one, and disconnects
        this process from Ray on its way out."""
        import ray

        connected = ray._private.worker.global_worker.node
        if connected is None:
            return list(self.workers)
        return [n for n in self.workers if n._raylet_socket_name != connected._raylet_socket_name]

    def close(self) -> None:
        self.wait_restarted()
        self.client.close()
        stop_service(self.cluster)


# ----- tasks --------------------------------------------------------------------------------------------


@dataclass
class Tracked:
    """One task as the run saw it."""

    key: str
    max_attempts: int = 1
    task_id: str | None = None
    last: tuple = ()
    changed_at: float = field(default_factory=time.monotonic)
    longest_stall: float = 0.0
    task: dict | None = None

    @property
    def terminal(self) -> bool:
        """Ended for good. A task failed for an infrastructure reason with runs left is not: the service queues
        its retry just after settling the run, and a read may land in between."""
        if self.task is None or self.task["status"] not in TERMINAL:
            return False
        return not (self.task["status"] == 3 and self.task.get("error_type") in INFRASTRUCTURE
                    and len(self.task.get("ray_job_ids") or ()) < self.max_attempts)

    def observe(self, task: dict, now: float) -> None:
        self.task = task
        state = (task["status"], task.get("processed_count"), tuple(task.get("ray_job_ids") or ()))
        if state != self.last:
            self.last, self.changed_at = state, now
        self.longest_stall = max(self.longest_stall, now - self.changed_at)

    def stall(self, now: float) -> float:
        """The longest time seen without a change; for a task not ended, up to ``now`` (seen or not since)."""
        return self.longest_stall if self.terminal else max(self.longest_stall, now - self.changed_at)


class Tasks:
    """Creates tasks with a key each (a create without an answer is repeated with its key) and polls them."""

    def __init__(self, client: httpx.Client, body: dict, max_attempts: int) -> None:
        self.client, self.body, self.max_attempts = client, body, max_attempts
        self.all: list[Tracked] = []
        self.create_attempts = 0
        self.replayed = 0
        self.polls = 0
        self.unanswered = 0
        self.last_answer = time.monotonic()

    def active(self) -> list[Tracked]:
        return [t for t in self.all if not t.terminal]

    def create(self) -> Tracked:
        tracked = Tracked(key=uuid.uuid4().hex, max_attempts=self.max_attempts)
        self.all.append(tracked)
        self.try_create(tracked)
        return tracked

    def try_create(self, tracked: Tracked) -> None:
        self.create_attempts += 1
        try:
            r = self.client.post(f"/v2/{PROJECT}/processor-tasks", json=self.body,
                                 headers={"Idempotency-Key": tracked.key})
        except httpx.HTTPError:
            return
        if r.status_code == 200:
            tracked.task_id = r.json()["task_id"]
            self.replayed += r.headers.get("Idempotent-Replayed") == "true"

    def poll(self, now: float) -> None:
        for tracked in self.active():
            if tracked.task_id is None:
                self.try_create(tracked)
                continue
            self.polls += 1
            try:
                r = self.client.get(f"/v2/{PROJECT}/processor-tasks/{tracked.task_id}",
                                    params={"return_result": "false"})
            except httpx.HTTPError:
                self.unanswered += 1
                continue
            if r.status_code == 200:
                tracked.observe(r.json(), now)
                self.last_answer = time.monotonic()
            else:
                self.unanswered += 1


def run_reference(tasks: Tasks, timeout: float = 300.0) -> dict:
    tracked = tasks.create()
    deadline = time.monotonic() + timeout
    while not tracked.terminal:
        if time.monotonic() > deadline:
            raise RuntimeError("the reference task did not finish")
        time.sleep(0.3)
        tasks.poll(time.monotonic())
    tasks.all.remove(tracked)
    if tracked.task["status"] != 2:
        raise RuntimeError(f"the reference task ended with status {tracked.task['status']}: {tracked.task}")
    return tracked.task


# ----- the run -------------------------------------------------------------------------------------------


def inject_faults(rig: Rig, args: argparse.Namespace, rng: random.Random, start: float, until: float,
                  faults: list[dict]) -> None:
    """Faults at exponential gaps until ``until``, each appended to ``faults``. In the main thread (Ray starts a
    node's processes with signal handlers), beside the task loop's thread, so reads that hang while the service is
    down do not hold faults back."""
    kinds, weights = list(FAULT_WEIGHTS), list(FAULT_WEIGHTS.values())  # driver, worker, node, service
    last_restart = -args.restart_gap
    while True:
        time.sleep(rng.expovariate(1 / args.fault_every))
        now = time.monotonic()
        if now >= until:
            return
        kind = rng.choices(kinds, weights)[0]
        if kind == "service" and now - last_restart < args.restart_gap:
            kind = rng.choices(kinds[:-1], weights[:-1])[0]
        if kind in ("node", "service") and rig.restarting:  # the restart holds this process's Ray connection
            kind = rng.choices(kinds[:2], weights[:2])[0]
        if kind == "service":
            last_restart = now
        try:
            what = rig.inject(kind, rng)
        except Exception as exc:  # a fault that failed to land is reported, not fatal
            what = f"failed to inject: {type(exc).__name__}: {exc}"[:200]
        faults.append({"at": round(now - start, 2), "kind": kind, "done": what,
                       "seconds": round(time.monotonic() - now, 2)})
        if what is not None:
            log(f"{now - start:7.1f}s {what}")


def chaos(rig: Rig, tasks: Tasks, args: argparse.Namespace, rng: random.Random) -> list[dict]:
    faults: list[dict] = []
    start = time.monotonic()
    stop_faults = start + args.minutes * 60 - args.settle
    faults_over = threading.Event()

    def keep_tasks_going() -> None:
        while not faults_over.is_set():
            while len(tasks.active()) < args.concurrent:
                tasks.create()
            tasks.poll(time.monotonic())
            time.sleep(0.2)

    loop = threading.Thread(target=keep_tasks_going, daemon=True)
    loop.start()
    inject_faults(rig, args, rng, start, stop_faults, faults)
    faults_over.set()
    loop.join()
    rig.wait_restarted()
    log(f"faults over; waiting up to {args.settle:.0f} s for the tasks to end")
    settle_until = time.monotonic() + args.settle
    while tasks.active() and time.monotonic() < settle_until:
        tasks.poll(time.monotonic())
        time.sleep(0.5)
    tasks.poll(time.monotonic())
    return faults


def report(tasks: Tasks, reference: dict, faults: list[dict], restarts: list[dict], max_attempts: int) -> dict:
    ref = Output.of(reference)
    statuses, failures = Counter(), Counter()
    stuck, falsely_failed, lost, doubled, differing, used_up = [], [], 0, 0, 0, 0
    now = time.monotonic()
    for t in tasks.all:
        task = t.task
        if task is None:
            statuses["never created"] += 1
            continue
        statuses[{0: "initialized", 1: "running", 2: "completed", 3: "failed", 4: "stopped"}[task["status"]]] += 1
        if not t.terminal or t.stall(now) > STUCK_SECONDS:
            stuck.append(task["task_id"])
        if task["status"] == 3:
            failures[task.get("error_type") or "unknown"] += 1
            if task.get("error_type") in INFRASTRUCTURE:
                falsely_failed.append(task["task_id"])
                used_up += len(task.get("runs") or task.get("ray_job_ids") or ()) >= max_attempts
        if task["status"] == 2:
            out = Output.of(task)
            lost += sum((ref.items - out.items).values())
            doubled += sum((out.items - ref.items).values())
            differing += out.text != ref.text
    injected = [f for f in faults if f["done"] and not f["done"].startswith("failed")]
    return {
        "faults_injected": len(injected), "faults_by_kind": dict(Counter(f["kind"] for f in injected)),
        "faults_without_target": sum(f["done"] is None for f in faults),
        "faults_failed_to_inject": sum(bool(f["done"]) and f["done"].startswith("failed") for f in faults),
        "tasks": len(tasks.all), "statuses": dict(statuses), "failed_by_type": dict(failures),
        "stuck": len(stuck), "falsely_failed": len(falsely_failed), "items_lost": lost, "items_doubled": doubled,
        "max_run_attempts": max_attempts, "falsely_failed_with_attempts_used_up": used_up,
        "runs_per_task": dict(Counter(len(t.task.get("ray_job_ids") or ()) for t in tasks.all if t.task)),
        "completed_not_byte_identical": differing, "reference_items": sum(ref.items.values()),
        "create_attempts": tasks.create_attempts, "creates_replayed": tasks.replayed,
        "polls": tasks.polls, "polls_unanswered": tasks.unanswered,
        "last_answer_seconds_before_end": round(now - tasks.last_answer, 1),
        "service_restarts": restarts,
        "stuck_task_ids": stuck[:20], "falsely_failed_task_ids": falsely_failed[:20],
    }


def markdown(summary: dict) -> str:
    by_kind = ", ".join(f"{k} {v}" for k, v in sorted(summary["faults_by_kind"].items()))
    rows = [
        ("faults injected", f"{summary['faults_injected']} ({by_kind}); {summary['faults_without_target']} "
                            f"without a target, {summary['faults_failed_to_inject']} failed to inject"),
        ("tasks", f"{summary['tasks']}: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["statuses"].items()))),
        ("failed, by type", ", ".join(f"{k} {v}" for k, v in sorted(summary["failed_by_type"].items())) or "none"),
        ("**stuck non-terminal > 60 s**", summary["stuck"]),
        ("**falsely failed** (infrastructure reason)", f"{summary['falsely_failed']} ("
         f"{summary['falsely_failed_with_attempts_used_up']} after all {summary['max_run_attempts']} runs)"),
        ("tasks by Ray runs", ", ".join(f"{k}: {v}" for k, v in sorted(summary["runs_per_task"].items()))),
        ("**items lost** (completed tasks)", summary["items_lost"]),
        ("**items doubled** (completed tasks)", summary["items_doubled"]),
        ("completed, outputs not byte-identical to the reference", summary["completed_not_byte_identical"]),
        ("creates sent / answered from a stored key", f"{summary['create_attempts']} / {summary['creates_replayed']}"),
        ("service restarts (seconds each, failed starts)", ", ".join(
            f"{r['seconds']}" + (f" ({r['attempts_failed']} failed)" if r["attempts_failed"] else "")
            + ("" if r["up"] else " never up") for r in summary["service_restarts"]) or "none"),
        ("task reads without an answer", f"{summary['polls_unanswered']} of {summary['polls']}; the last answer "
                                         f"{summary['last_answer_seconds_before_end']} s before the end"),
        ("1-minute load average, start / end", "{start} / {end}".format(**summary["load_average_1m"])),
    ]
    return table(rows)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="the whole run, settling included (default 10)")
    p.add_argument("--workers", type=int, default=2, help="worker nodes besides the head (default 2)")
    p.add_argument("--concurrent", type=int, default=3, help="tasks kept running at once (default 3)")
    p.add_argument("--images", type=int, default=24, help="images per task (default 24)")
    p.add_argument("--chunk-size", type=int, default=4, help="items per Ray task (default 4)")
    p.add_argument("--delay", type=float, default=0.05, help="seconds of work per item (default 0.05)")
    p.add_argument("--fault-every", type=float, default=None,
                   help="mean seconds between faults (default: 180 chances in the run; restarts, node changes and "
                        "faults with no target make fewer land)")
    p.add_argument("--settle", type=float, default=90.0,
                   help="fault-free seconds at the end for the tasks to end (default 90, over the 60 s of 'stuck')")
    p.add_argument("--restart-gap", type=float, default=60.0,
                   help="least seconds between two service restarts (default 60)")
    p.add_argument("--max-run-attempts", type=int, default=None,
                   help="the service's RAYPROC_MAX_RUN_ATTEMPTS (default: the service's default)")
    p.add_argument("--retry-backoff-max", type=float, default=None,
                   help="the service's RAYPROC_RETRY_BACKOFF_MAX_SECONDS (default: the service's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=OUT_FILE, help=f"JSON output (default {OUT_FILE})")
    args = p.parse_args(argv)
    if not (1.5 <= args.minutes <= 240 and 1 <= args.workers <= 6 and 1 <= args.concurrent <= 50):
        p.error("--minutes 1.5-240, --workers 1-6, --concurrent 1-50")
    args.settle = max(min(args.settle, args.minutes * 60 / 2), STUCK_SECONDS)
    if args.fault_every is None:
        args.fault_every = max(0.5, (args.minutes * 60 - args.settle) / 180)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, source = dt.datetime.now(dt.timezone.utc), source_version()
    load_at_start = os.getloadavg()
    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="rpchaos-", dir="/tmp")).resolve()  # short: Unix socket paths
    rig = None
    try:
        isolate_ray(root)
        folder = write_pngs(root / "inputs" / "chaos", args.images)
        log(f"starting a head and {args.workers} worker nodes under {root}")
        from serve_app.settings import Settings

        attempts = args.max_run_attempts or Settings.model_fields["max_run_attempts"].default
        extra = {} if args.retry_backoff_max is None else {"retry_backoff_max_seconds": args.retry_backoff_max}
        rig = Rig(root, args.workers, max_run_attempts=attempts, **extra)
        body = {"name": "chaos", "data_source": {"type": "OBS", "source": str(folder)},
                "execution": {"chunk_size": args.chunk_size},
                "template": {"id": "sys_data_analyse", "operator_params": [
                    {"id": "image_features"}, {"id": "work_probe", "params": {"delay_seconds": args.delay}}]}}
        tasks = Tasks(rig.client, body, attempts)
        log("the reference run, with no fault")
        reference = run_reference(tasks)
        log(f"chaos for {args.minutes:g} min, a fault every {args.fault_every:.1f} s on average")
        faults = chaos(rig, tasks, args, rng)
        summary = report(tasks, reference, faults, rig.restarts, attempts)
        summary["load_average_1m"] = {"start": round(load_at_start[0], 1), "end": round(os.getloadavg()[0], 1)}
    except BaseException:
        log(f"failed; kept {root} for inspection")
        raise
    finally:
        if rig is not None:
            rig.close()
    shutil.rmtree(root, ignore_errors=True)
    write_report(args.out, "benchmarks.chaos", argv, started, source, machine(), args, summary=summary,
                 faults=faults,
                 tasks=[{"key": t.key, "task_id": t.task_id, "longest_stall": round(t.stall(time.monotonic()), 1),
                         "status": t.task and t.task["status"], "error_type": t.task and t.task.get("error_type"),
                         "runs": t.task and len(t.task.get("ray_job_ids") or [])} for t in tasks.all])
    print(markdown(summary))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
