"""Import throughput: rayproc's importer against a plain loop that hashes and records the same items.

    python -m benchmarks.bench_import [--items 10000] [--images 2000]

Both sides run in this process on the same SQLite file layout, one after the other, twice, best
time kept:

- ``rayproc``: ``jobs.importer.run`` over a payload file, exactly what an import's Ray job runs
  (validation, Label Studio normalisation, path confinement, hashing, batched inserts, counters).
- ``baseline``: a plain Python loop that hashes each item (SHA-256 of its JSON, or of the image
  file's bytes) and inserts it into a SQLite table, committing every 500 rows.

Items are JSON text items and, separately, image files (small PNGs on local disk). The figure
excludes the Ray job's start-up (about a second, see the lifecycle benchmark).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from jobs.datasets import Datasets
from jobs.importer import run
from tests.support.images import make_many

OUT = Path(__file__).parent / "out" / "import.json"


def rayproc_import(db: Path, payload: Path, n: int, root: Path) -> float:
    datasets = Datasets(db)
    ds = datasets.ensure_dataset("bench")
    import_id = datasets.create_import("bench", ds["dataset_id"], str(payload), n, False)
    start = time.perf_counter()
    outcome = run(str(db), import_id, [str(root)])
    elapsed = time.perf_counter() - start
    record = datasets.get_import(import_id)
    if outcome != "completed" or record["task_count"] != n:
        raise SystemExit(f"import did not complete: {record}")
    return elapsed


def baseline(db: Path, items: list[dict]) -> float:
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, data TEXT, digest TEXT)")
    start = time.perf_counter()
    for i, item in enumerate(items):
        if "image" in item:
            h = hashlib.sha256()
            with open(item["image"], "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            digest = h.hexdigest()
        else:
            digest = hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()
        conn.execute("INSERT INTO items (data, digest) VALUES (?, ?)", (json.dumps(item), digest))
        if i % 500 == 499:
            conn.commit()
    conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


def measure(root: Path, name: str, items: list[dict], repeats: int) -> dict:
    payload = root / f"{name}.jsonl"
    payload.write_text("".join(json.dumps(i) + "\n" for i in items))
    ours, theirs = [], []
    for r in range(repeats):
        ours.append(rayproc_import(root / f"{name}-rp-{r}.db", payload, len(items), root))
        theirs.append(baseline(root / f"{name}-base-{r}.db", items))
    n = len(items)
    return {"kind": name, "items": n, "rayproc_items_per_s": round(n / min(ours)),
            "baseline_items_per_s": round(n / min(theirs)), "ratio": round(min(theirs) / min(ours), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rpimport-") as tmp:
        root = Path(tmp)
        texts = [{"data": {"text": f"item {i}"}, "annotations": [{"result": []}] if i % 10 == 0 else []}
                 for i in range(args.items)]
        make_many(root / "images", args.images)
        images = [{"image": str(root / "images" / f"img_{i:04d}.png")} for i in range(args.images)]
        rows = [measure(root, "json", texts, args.repeats), measure(root, "images", images, args.repeats)]
    print("| items | count | rayproc importer (items/s) | plain hash + insert loop (items/s) | rayproc / loop |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kind']} | {r['items']:,} | {r['rayproc_items_per_s']:,} | {r['baseline_items_per_s']:,} | "
              f"{r['ratio']:.2f} |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
