"""What the queue benchmark and the chaos script read back from a service: every task of a project, the items a
task's outputs hold, and the memory the process tree holds. Loopback HTTP and ``/proc`` only."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from jobs.layout import RunLayout
from rayproc_contract.status import TaskStatus

PAGE = 100


def all_tasks(client: httpx.Client, project: str) -> list[dict]:
    """Every task of ``project``, oldest first, read page by page (``offset`` is a page index)."""
    tasks: dict[str, dict] = {}
    page = 0
    while True:
        r = client.get(f"/v2/{project}/processor-tasks",
                       params={"limit": PAGE, "offset": page, "order": "asc", "return_result": "false"})
        r.raise_for_status()
        body = r.json()
        for task in body["tasks"]:
            tasks.setdefault(task["task_id"], task)
        page += 1
        if len(body["tasks"]) < PAGE or page * PAGE >= body["count"]:
            return list(tasks.values())


def count_with_status(client: httpx.Client, project: str, status: TaskStatus) -> int:
    r = client.get(f"/v2/{project}/processor-tasks", params={"limit": 1, "status": int(status),
                                                             "return_result": "false"})
    r.raise_for_status()
    return int(r.json()["count"])


@dataclass
class Output:
    """The items a completed task's features file holds, and its bytes."""

    items: Counter = field(default_factory=Counter)
    text: str = ""

    @classmethod
    def of(cls, task: dict) -> Output:
        path = RunLayout(task["work_path"]["output_path"]).features
        if not path.exists():
            return cls()
        text = path.read_text(encoding="utf-8")
        return cls(Counter(json.loads(line)["item"] for line in text.splitlines() if line.strip()), text)

    @property
    def doubled(self) -> int:
        """Items written more than once (each extra copy counts)."""
        return sum(n - 1 for n in self.items.values() if n > 1)


def runs_of(task: dict) -> int:
    return len(task.get("ray_job_ids") or [])


@dataclass(frozen=True)
class Proc:
    pid: int
    cmdline: str
    rss_bytes: int


def process_tree(root_pid: int | None = None) -> list[Proc]:
    """``root_pid`` (default: this process) and every process under it: the Ray head's processes, the Serve
    replica and the job drivers all descend from the process that started the cluster."""
    root_pid = root_pid or os.getpid()
    children: dict[int, list[int]] = {}
    procs: dict[int, Proc] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            rss = int((entry / "statm").read_text().split()[1]) * page
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited meanwhile
        children.setdefault(ppid, []).append(int(entry.name))
        procs[int(entry.name)] = Proc(int(entry.name), cmdline, rss)
    found, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        if pid in procs:
            found.append(procs[pid])
        todo.extend(children.get(pid, []))
    return found


def tree_rss_bytes(root_pid: int | None = None) -> int:
    """Resident memory of :func:`process_tree`. Shared pages count once per process: an upper bound."""
    return sum(p.rss_bytes for p in process_tree(root_pid))


def table(rows: list[tuple[str, object]]) -> str:
    """A two-column Markdown table of figures."""
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def write_report(path: Path, prog: str, argv: list[str] | None, started: dt.datetime, source: dict,
                 machine: dict, args: argparse.Namespace, **sections: object) -> None:
    """The run as JSON: when, the command, the commit, the machine, the settings, then ``sections``."""
    report = {"date": started.isoformat(timespec="seconds"),
              "command": f"python -m {prog} " + " ".join(sys.argv[1:] if argv is None else argv),
              "source": source, "machine": machine,
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              **sections}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
