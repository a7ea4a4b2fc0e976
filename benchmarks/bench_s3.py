"""Analysis throughput from an S3-compatible bucket against the same images on local disk, in one run, with the
task's outputs on local disk or in the bucket.

``--images`` photo-like 640x480 JPEGs (``benchmarks.bench_analysis.write_photos``) are written to a local folder
and uploaded under one prefix of a bucket on moto's S3-compatible server, started on a loopback port for the
run. Then, in this one process (as one Ray worker runs a task's chunks one after another), the items are
analysed with the default ``sys_data_analyse`` map stage (``image_features``, ``image_issues``, ``box_features``)
in chunks of ``--chunk-size`` through ``jobs.chunk.process_chunk``: once with the local folder as the root and
once with the ``s3://`` prefix, alternating which goes first, ``--rounds`` times after one discarded warm-up.
Also timed: fetching the objects alone (``jobs.storage.fetch_many`` per chunk), the part of a bucket chunk that
is not analysis.

Then, in the same run, the whole of a run's work on its files (``--full``, on by default): every chunk
processed and committed as a part file (``jobs.run_state.RunState.commit``), then the outputs assembled
(``jobs.assembly.assemble``: features.jsonl, failures.jsonl, result.json), three ways: local source and local
work path, bucket source and local work path, bucket source and the work path in the same bucket (parts and
outputs written as objects). Each round writes to a fresh output folder or prefix.

moto keeps objects in its own process's memory and answers over loopback HTTP: its speed is not a real store's
(a real one adds network latency per request and has far more bandwidth behind it than one Python process).
What the figure tells is the cost rayproc's own read path adds per object: the request, the copy into the
chunk's temporary folder, and nothing staged beyond one chunk.

    python -m benchmarks.bench_s3 [--images 1000] [--chunk-size 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.support import s3
from tests.support.cluster import free_port

SPECS = [{"id": "image_features", "params": {}}, {"id": "image_issues", "params": {}},
         {"id": "box_features", "params": {}}]


def analyse(root: str, keys: list[str], chunk_size: int, roots: list[str]) -> float:
    from jobs.chunk import process_chunk

    t0 = time.perf_counter()
    for i in range(0, len(keys), chunk_size):
        records = process_chunk([], SPECS, root, keys[i:i + chunk_size], roots)
        if any(r["status"] != "ok" for r in records):
            raise RuntimeError(f"a chunk failed items: {[r for r in records if r['status'] != 'ok'][:1]}")
    return time.perf_counter() - t0


def full_run(root: str, keys: list[str], chunk_size: int, roots: list[str], output: str) -> float:
    """Chunks processed and committed under ``output``, then the outputs assembled there."""
    from jobs.assembly import assemble
    from jobs.catalog import OperatorSpec, build_pipeline
    from jobs.chunk import process_chunk
    from jobs.layout import RunLayout
    from jobs.run_state import RunState
    from operators.registry import default_registry

    pipeline = build_pipeline([OperatorSpec(s["id"], s["params"]) for s in SPECS], default_registry())
    t0 = time.perf_counter()
    state = RunState(RunLayout(output), chunk_size)
    chunks = range(0, len(keys), chunk_size)
    for index, start in enumerate(chunks):
        state.commit(index, process_chunk([], SPECS, root, keys[start:start + chunk_size], roots, output))
    result = assemble(state, len(chunks), pipeline, root)
    if result["processed_count"] != len(keys):
        raise RuntimeError(f"items failed: {result['failures_by_reason']}")
    return time.perf_counter() - t0


def fetch_only(prefix: str, keys: list[str], chunk_size: int) -> float:
    from jobs import storage

    root = storage.ObjectUri.parse(prefix)
    t0 = time.perf_counter()
    for i in range(0, len(keys), chunk_size):
        for data in storage.fetch_many([root.join(k) for k in keys[i:i + chunk_size]]):
            if isinstance(data, storage.ObjectError):
                raise RuntimeError(data.message)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_s3")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--chunk-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-full", dest="full", action="store_false", help="skip the runs with committed parts and "
                                                                         "assembled outputs")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # as in a Ray worker
    port = free_port()
    s3.configure_env(port)
    from benchmarks.bench_analysis import write_photos

    with tempfile.TemporaryDirectory(prefix="rayproc-bench-s3-") as tmp, s3.moto_server(port):
        local = write_photos(Path(tmp) / "photos", args.images, (640, 480))
        s3.s3_client().create_bucket(Bucket=s3.BUCKET)
        t0 = time.perf_counter()
        keys = s3.upload_folder(local, s3.BUCKET, "photos")
        upload = time.perf_counter() - t0
        prefix = f"s3://{s3.BUCKET}/photos"
        runs = {"local": (str(local), [str(local)]), "bucket": (prefix, [f"s3://{s3.BUCKET}"])}
        warm = keys[:args.chunk_size * 2]
        for root, roots in runs.values():
            analyse(root, warm, args.chunk_size, roots)
        times: dict[str, list[float]] = {"local": [], "bucket": [], "fetch": []}
        for r in range(args.rounds):
            order = ["local", "bucket"] if r % 2 == 0 else ["bucket", "local"]
            for name in order:
                root, roots = runs[name]
                times[name].append(analyse(root, keys, args.chunk_size, roots))
            times["fetch"].append(fetch_only(prefix, keys, args.chunk_size))
        if args.full:
            full = {"run_local": (str(local), str(Path(tmp) / "out-local")),
                    "run_bucket_source": (prefix, str(Path(tmp) / "out-bucket-source")),
                    "run_bucket_source_and_outputs": (prefix, f"s3://{s3.BUCKET}/work")}
            both = [str(local), f"s3://{s3.BUCKET}"]
            for name, (root, output) in full.items():  # warm-up, discarded
                full_run(root, warm, args.chunk_size, both, f"{output}/warm")
            for r in range(args.rounds):
                names = list(full) if r % 2 == 0 else list(reversed(full))
                for name in names:
                    root, output = full[name]
                    times.setdefault(name, []).append(full_run(root, keys, args.chunk_size, both, f"{output}/r{r}"))
    n = len(keys)
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {"bucket_over_local": round(med["local"] / med["bucket"], 3)}
    if args.full:
        ratios["run_bucket_source_over_local"] = round(med["run_local"] / med["run_bucket_source"], 3)
        ratios["run_bucket_source_and_outputs_over_local"] = round(
            med["run_local"] / med["run_bucket_source_and_outputs"], 3)
    out = {
        "images": n, "chunk_size": args.chunk_size, "rounds": args.rounds, "upload_seconds": round(upload, 2),
        "images_per_second": {k: round(n / v, 1) for k, v in med.items()},
        **ratios,
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "cpus": len(os.sched_getaffinity(0)), "load_average": os.getloadavg(),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
