"""Analysis throughput and memory: rayproc against cleanvision and the JPEG decode limit, on this machine, in one run.

Throughput, over one folder of ``--images`` generated photo-like 640x480 JPEGs (seeded gradients, shapes, blur
and sensor-like noise, quality 90, so decoding costs what it costs for real photos):

``rayproc``
    A ``sys_data_analyse`` task with its default operators (``image_features``, ``image_issues``,
    ``box_features``) submitted over HTTP (``POST /v2/{project}/processor-tasks``, ``chunk_size`` ``--chunk-size``),
    timed from sending the POST to the first poll answer with ``status == 2`` (polled every ``--poll`` seconds; a
    poll of a running task makes the service ask Ray for the job's state, so fast polling takes CPU from the
    workers on a small machine). Also reported, from rayproc's own records: the rate over the later half of the
    chunk commits (after the job's new workers have started: what a long task sustains), the run's time from the runner's
    claim to its completed record, the time from the first poll that showed ``status == 1`` to the one that
    showed ``status == 2``, the steady rate of the chunk phase (the images committed after the first part file,
    over the time from the first to the last part file's commit; part files are
    ``<output>/.rayproc/parts/*.jsonl``, their modification times are the commits), and where the end-to-end
    time goes (job start, claim, manifest, first commit, last commit, completed record).
``cleanvision``
    ``Imagelab(data_path=folder).find_issues()`` with its defaults (every issue type, ``n_jobs`` = its own
    default, which is the core count here), timed around those two calls in a fresh interpreter.
``decode``
    Bare Pillow loops over the same files, in a fresh interpreter, in one process and in two
    (``multiprocessing.Pool(2)``, pool start-up included): ``full`` opens and fully decodes each image
    (``Image.open(p).load()``), the decode limit; ``draft`` does exactly what rayproc's decoder does before it
    builds its 128 px thumbnail (``img.draft("RGB", box)`` with the image's aspect and a longest side of 128,
    then ``load()``: libjpeg still decodes every coefficient but skips most of the inverse DCT, 1/4 scale for
    640x480), the lower bound for rayproc's own decoding.

``ray floor``
    A bare Ray job through the same Jobs API whose driver connects and runs two no-op tasks of one CPU each (so
    on two new workers, as a task's chunks are), timed from the submission until those tasks have returned.

Ratios: rayproc / cleanvision (goal >= 3) and rayproc / two-process ``full`` decode (goal >= 0.6), from the
medians, with the range of the per-round ratios; rayproc / two-process ``draft`` decode is reported beside them.
Also reported is a bound on what any task run as a Ray job with new workers could reach on this folder: the images
over (the Ray floor + the two-process ``draft`` decode's time), and that bound over the decode limit, which tells
whether the 0.6 goal is reachable at this folder size at all.

Memory, for each of ``--memory-sizes`` (default 2000 and 20000 320x240 JPEGs, the smaller folder being the first
images of the larger): one rayproc task while a thread samples every ``--sample`` seconds the benchmark's process
tree (the Ray head, its workers and the job drivers are all its descendants): ``VmRSS`` and ``VmHWM`` from
``/proc/<pid>/status`` of the task's job driver (the process whose command line holds ``jobs.runner`` and the task
id) and of every Ray worker seen running ``_chunk_on_node``, until the driver has exited. Both are fresh
processes for each task (Ray starts workers per job), so their ``VmHWM`` is the task's own peak: reported are the
driver's, the largest worker's, and the sum of the workers' peaks (an upper bound for what they held at once; the
largest sum of simultaneous ``VmRSS`` samples is in the JSON), plus the driver's largest sampled ``VmRSS`` before
the last chunk was committed, which tells the chunk phase from the final assembly of the outputs. Goal: the peaks
stay within 1.5x while the image count grows 10x.

Profile: after Ray is stopped, ``jobs.chunk.process_chunk`` runs in-process (fresh interpreter) over the first
``--profile-images`` images in chunks of ``--chunk-size``, with one BLAS thread as in a Ray worker
(``OMP_NUM_THREADS=1``), once unprofiled (best of 3) and once under cProfile, and the profile is split into decode,
the preview, the rest of rayproc's image loading (thumbnail, digest, histogram), ``image_features``, ``image_issues``,
``box_features`` and the rest.

How: a Ray head of the benchmark's own on free ports, one CPU per core, and the rayproc service deployed on it
in-process, as in ``benchmarks.bench_lifecycle`` (whose set-up helpers are used here, ``RAY_TMPDIR`` isolation
included). All images are generated once (seeded, in parallel) before Ray starts and are in the page cache for
every system. Each round runs rayproc, cleanvision and the decode loops back to back, reversing the order every
other round, after one discarded warm-up round over the first 256 images (the service, Ray's job agent and the
imports' files warm up; Ray starts new workers for every job, so every task pays for theirs). The temporary
folder is deleted after a good run and kept (logs included) after a failed one.

Run from the repository root:

    python -m benchmarks.bench_analysis [--images 2000] [--repeats 3] [--memory-sizes 2000,20000]

Prints Markdown tables to stdout and writes everything as JSON to ``benchmarks/out/analysis.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import multiprocessing
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from benchmarks.bench_lifecycle import (
    BARE_TERMINAL,
    COMPLETED,
    RAYPROC_TERMINAL,
    RUNNING,
    BareRay,
    Rayproc,
    Seen,
    isolate_ray,
    log,
    other_ray_clusters,
    start_head,
    start_service,
    stop_service,
)
from benchmarks.bench_lifecycle import machine as base_machine
from jobs.layout import RunLayout
from operators.image_io import PREVIEW_SIDE, draft_box
from operators.pipeline import THUMBNAIL_SIZE

REPO = Path(__file__).resolve().parent.parent
OUT_FILE = REPO / "benchmarks" / "out" / "analysis.json"
PHOTO_SIZE = (640, 480)
MEMORY_SIZE = (320, 240)
WARMUP_IMAGES = 256
MEMORY_SEED = 1_000_000  # the memory folders hold other images than the throughput folder
# rayproc asks libjpeg for the smallest scale whose longest side still covers its thumbnail and preview.
DRAFT_SIDE = max(THUMBNAIL_SIZE, PREVIEW_SIDE)
MIB = 2**20


# ----- images -------------------------------------------------------------------------------------


def photo(seed: int, size: tuple[int, int]) -> Image.Image:
    """A photo-like RGB image: a two-colour gradient at a random angle, 8-24 filled shapes, a little Gaussian
    blur, and Gaussian noise like a sensor's, so the JPEG holds real detail everywhere."""
    rng = np.random.default_rng(seed)
    w, h = size
    c0, c1 = rng.integers(0, 256, 3).astype(np.float32), rng.integers(0, 256, 3).astype(np.float32)
    angle = rng.uniform(0, np.pi)
    t = (np.arange(w, dtype=np.float32)[None, :] * np.float32(np.cos(angle))
         + np.arange(h, dtype=np.float32)[:, None] * np.float32(np.sin(angle)))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    img = Image.fromarray((c0 + (c1 - c0) * t[..., None]).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(8, 25))):
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        x1, y1 = x0 + int(rng.integers(w // 32, w // 2)), y0 + int(rng.integers(h // 24, h // 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.rectangle([x0, y0, x1, y1], fill=fill)
        elif kind == 1:
            draw.ellipse([x0, y0, x1, y1], fill=fill)
        else:
            draw.polygon([(int(rng.integers(x0, x1)), int(rng.integers(y0, y1)))
                          for _ in range(int(rng.integers(3, 7)))], fill=fill)
    radius = float(rng.uniform(0, 2.0))
    if radius > 0.3:
        img = img.filter(ImageFilter.GaussianBlur(radius))
    noise = rng.standard_normal((h, w, 3), dtype=np.float32) * np.float32(rng.uniform(2, 12))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8), "RGB")


def _write_photo(job: tuple[str, int, tuple[int, int]]) -> None:
    path, seed, size = job
    photo(seed, size).save(path, quality=90)


def write_photos(folder: Path, n: int, size: tuple[int, int], seed: int = 0) -> Path:
    """``n`` photo-like JPEGs ``img_00000.jpg``... in ``folder``, written by one process per core. Files that
    are already there are kept (``--inputs`` keeps a folder between runs; the same seed makes the same file)."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(str(folder / f"img_{i:05d}.jpg"), seed + i, size) for i in range(n)]
    jobs = [job for job in jobs if not os.path.exists(job[0])]
    with multiprocessing.Pool(len(os.sched_getaffinity(0))) as pool:
        for _ in pool.imap_unordered(_write_photo, jobs, chunksize=32):
            pass
    return folder


#: Debian's ``mate-backgrounds`` nature wallpapers (1280x1024 to 2560x1920 JPEG photos), as the detection
#: benchmark uses them.
WALLPAPERS = Path("/usr/share/backgrounds/mate/nature")
REAL_SIZE = (1024, 768)


def write_real_photos(folder: Path, n: int, size: tuple[int, int] = REAL_SIZE, seed: int = 0) -> Path:
    """``n`` real photos of ``size``: each a wallpaper of ``WALLPAPERS`` (in turn) scaled by a random factor
    that still covers ``size`` and cut at a random place, saved as JPEG quality 90. Kept in ``folder`` and
    reused when it already holds them."""
    import random

    names = [f"photo_{i:04d}.jpg" for i in range(n)]
    if folder.is_dir() and all((folder / name).exists() for name in names):
        return folder
    walls = sorted(WALLPAPERS.glob("*.jpg"))
    if not walls:
        raise SystemExit(f"no wallpapers in {WALLPAPERS}: install Debian's mate-backgrounds")
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    w, h = size
    sources = [Image.open(path).convert("RGB") for path in walls]
    for i, name in enumerate(names):
        img = sources[i % len(sources)]
        scale = rng.uniform(max(w / img.width, h / img.height), 1.0)
        scaled = img.resize((max(w, round(img.width * scale)), max(h, round(img.height * scale))),
                            Image.Resampling.LANCZOS)
        x, y = rng.randint(0, scaled.width - w), rng.randint(0, scaled.height - h)
        scaled.crop((x, y, x + w, y + h)).save(folder / name, quality=90)
    return folder


def link_first(source: Path, folder: Path, n: int) -> Path:
    """A folder of hard links to the first ``n`` images of ``source`` (same bytes, no copies)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in sorted(os.listdir(source))[:n]:
        os.link(source / name, folder / name)
    return folder


def image_paths(folder: Path) -> list[str]:
    return [str(folder / name) for name in sorted(os.listdir(folder))]


def folder_bytes(folder: Path) -> int:
    return sum(os.path.getsize(p) for p in image_paths(folder))


# ----- child processes: cleanvision, bare decode loops, the per-chunk profile ---------------------
# Each runs in a fresh interpreter (``python -m benchmarks.bench_analysis --child KIND ...``): no Ray threads in
# the process that forks the pools, and nothing of one measurement left in memory for the next.


def _decode_full(path: str) -> tuple[int, int]:
    with Image.open(path) as img:
        img.load()
        return img.size


def _decode_draft(path: str) -> tuple[int, int]:
    with Image.open(path) as img:
        img.draft("RGB", draft_box(*img.size, DRAFT_SIDE))
        img.load()
        return img.size


DECODERS = {"full": _decode_full, "draft": _decode_draft}


def child_decode(folder: Path, order: list[str]) -> dict:
    """Each of ``order`` (``full-1``, ``draft-2``...: loop and process count) over every image once."""
    paths = image_paths(folder)
    out = {}
    for name in order:
        kind, procs = name.rsplit("-", 1)
        fn = DECODERS[kind]
        t = time.perf_counter()
        if procs == "1":
            sizes = [fn(p) for p in paths]
        else:
            with multiprocessing.Pool(int(procs)) as pool:
                sizes = list(pool.imap_unordered(fn, paths, chunksize=32))
        seconds = time.perf_counter() - t
        out[name] = {"seconds": seconds, "images": len(paths), "images_per_s": len(paths) / seconds,
                     "decoded_pixels_per_image": statistics.fmean(w * h for w, h in sizes)}
    return out


def child_cleanvision(folder: Path) -> dict:
    from cleanvision import Imagelab
    from cleanvision.utils.utils import get_max_n_jobs

    n = len(image_paths(folder))
    t = time.perf_counter()
    lab = Imagelab(data_path=str(folder))
    lab.find_issues()
    seconds = time.perf_counter() - t
    counts = {str(r["issue_type"]): int(r["num_images"]) for _, r in lab.issue_summary.iterrows()}
    return {"seconds": seconds, "images": n, "images_per_s": n / seconds, "n_jobs": get_max_n_jobs(),
            "issue_counts": counts}


def _cum(st: dict, file_end: str, func: str) -> float:
    """Cumulative seconds of the profiled functions named ``func`` defined in a file ending ``file_end``."""
    return sum(v[3] for (f, _, name), v in st.items() if name == func and f.replace(os.sep, "/").endswith(file_end))


def _cum_from(st: dict, file_end: str, func: str, caller_file_end: str, caller: str) -> float:
    """Cumulative seconds of ``func`` when called directly by ``caller``."""
    total = 0.0
    for (f, _, name), v in st.items():
        if name == func and f.replace(os.sep, "/").endswith(file_end):
            for (cf, _, cname), cv in v[4].items():
                if cname == caller and cf.replace(os.sep, "/").endswith(caller_file_end):
                    total += cv[3]
    return total


def _timed(fn, *args, **kwargs) -> float:
    t = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t


def statistics_median(values: list[float]) -> float:
    return float(statistics.median(values))


def child_profile(folder: Path, n: int, chunk_size: int, rounds: int = 3) -> dict:
    """``process_chunk`` over the first ``n`` images and a bare draft-scale decode loop over the same files,
    interleaved, best of ``rounds`` each; then one cProfile'd run, split."""
    from jobs.catalog import parse_task_type, resolve_operators
    from jobs.chunk import process_chunk
    from operators.registry import default_registry

    specs = [s.to_json() for s in resolve_operators(parse_task_type("sys_data_analyse"), [], default_registry())]
    items = sorted(os.listdir(folder))[:n]
    chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
    root = str(folder)
    out_dir = tempfile.mkdtemp(prefix="rpprof-")

    def run() -> None:
        for chunk in chunks:
            records = process_chunk([], specs, root, chunk, [root], out_dir)
            assert all(r["status"] == "ok" for r in records), records[0]

    paths = [os.path.join(root, i) for i in items]

    def bare() -> None:
        for p in paths:
            _decode_draft(p)

    from operators import image_stats
    from operators.features import upscale_factors
    from operators.image_io import load_thumbnail

    def thumbnails() -> list:
        """What any analysis of the 128 px thumbnail pays before its first statistic: the decode, the thumbnail
        and the pixel digest (load_thumbnail), nothing else."""
        return [load_thumbnail(p, THUMBNAIL_SIZE, preview=False) for p in paths]

    decoded = thumbnails()
    rgb = np.stack([d.thumbnail for d in decoded])
    upscale = upscale_factors(np.array([d.width for d in decoded]), np.array([d.height for d in decoded]),
                              THUMBNAIL_SIZE)
    names = list(image_stats.STATISTICS)

    def statistics() -> None:
        for start in range(0, len(rgb), chunk_size):
            image_stats.compute(rgb[start:start + chunk_size], names, upscale=upscale[start:start + chunk_size])

    run()  # imports, first-call caches
    bare()
    plain, drafts, loads, passes = [], [], [], []
    for _ in range(rounds):  # interleaved, so a change of the host's load reaches all
        for fn, samples in ((bare, drafts), (run, plain), (thumbnails, loads), (statistics, passes)):
            t = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t)
    bare_draft = min(drafts)
    # Each statistic on its own (with the planes it needs) over the first chunk's thumbnails, as a share of the
    # bare decode of the same images timed just before it: the median over the rounds.
    first = rgb[:chunk_size]
    shares: dict[str, list[float]] = {name: [] for name in ["all", *names]}
    for _ in range(rounds):
        t = time.perf_counter()
        for p in paths[:len(first)]:
            _decode_draft(p)
        per_decode = (time.perf_counter() - t) / len(first)
        for name in shares:
            best = min(_timed(image_stats.compute, first, names if name == "all" else [name],
                              upscale=upscale[:len(first)]) for _ in range(3))
            shares[name].append(best / len(first) / per_decode)
    statistic_shares = {name: statistics_median(v) for name, v in shares.items()}

    prof = cProfile.Profile()
    prof.enable()
    run()
    prof.disable()
    st = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = _cum(st, "jobs/chunk.py", "process_chunk")
    load = _cum(st, "operators/image_io.py", "load_thumbnail")
    decode = _cum(st, "PIL/ImageFile.py", "load") + _cum_from(st, "PIL/Image.py", "open", "operators/image_io.py",
                                                                "load_thumbnail")
    preview = _cum(st, "operators/image_io.py", "_preview")
    stats = _cum(st, "operators/image_stats.py", "compute")  # every statistic, for both operators, in one pass
    features = _cum(st, "operators/analyse.py", "process_batch")
    issues = _cum(st, "operators/image_issues.py", "process_batch")
    boxes = _cum(st, "operators/box_features.py", "process_batch")
    feature_parts = {name: _cum(st, "operators/features.py", name)
                     for name in ("brightness", "contrast", "laplacian_variance", "saturation", "colourfulness",
                                  "entropy", "is_grayscale", "layout_descriptor", "edge_sharpness")}
    feature_parts["planes: luma"] = _cum(st, "operators/features.py", "luma")
    feature_parts["planes: perceived brightness"] = _cum(st, "operators/features.py", "hsp")
    feature_parts["planes: channel moments"] = _cum(st, "operators/features.py", "moments")
    issue_parts = {
        "perceptual_hash": _cum(st, "operators/hashing.py", "perceptual_hash_of_luma"),
        "edge_stats (64 px preview)": _cum(st, "operators/image_issues.py", "_edge_stats"),
        "brightness percentiles": _cum(st, "operators/features.py", "row_percentiles"),
    }
    in_features = min(stats, features)  # the pass runs inside the first operator that asks
    issue_parts["rest (hex strings, digests; the statistics are in the pass)"] = issues - (stats - in_features)
    stages = {
        "decode (Image.open + JPEG decode at draft scale)": decode,
        "64 px grayscale preview (Pillow bicubic)": preview,
        "rest of load_thumbnail (128 px thumbnail, pixel digest, histogram, checks)": load - decode - preview,
        "per-image statistics, one pass (image_stats.compute)": stats,
        "image_features.process_batch, besides the statistics": features - in_features,
        "image_issues.process_batch, besides the statistics": issues - (stats - in_features),
        "box_features.process_batch": boxes,
        "rest (batch stacking, records, rounding)": total - load - features - issues - boxes,
    }
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"images": len(items), "chunk_size": chunk_size, "unprofiled_seconds": min(plain),
            "unprofiled_images_per_s": len(items) / min(plain), "unprofiled_samples": plain,
            "bare_draft_decode_seconds": bare_draft, "bare_draft_samples": drafts,
            "load_thumbnail_seconds": min(loads), "statistics_pass_seconds": min(passes),
            "statistic_share_of_decode": statistic_shares,
            "ratio_to_bare_draft": min(plain) / bare_draft, "profiled_seconds": total,
            "stages": stages, "features": feature_parts, "issues": issue_parts,
            "top": _top(st, 15)}


def _top(st: dict, n: int) -> list[dict]:
    rows = sorted(st.items(), key=lambda kv: kv[1][2], reverse=True)[:n]
    return [{"function": f"{Path(f).name}:{line}:{name}", "tottime": v[2], "cumtime": v[3], "calls": v[1]}
            for (f, line, name), v in rows]


def run_child(kind: str, *args: str, env: dict[str, str] | None = None) -> dict:
    """``python -m benchmarks.bench_analysis --child KIND ARGS...`` in a fresh interpreter; its JSON answer."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        answer = Path(fh.name)
    try:
        proc = subprocess.run([sys.executable, "-m", "benchmarks.bench_analysis", "--child", kind, str(answer),
                               *args], cwd=REPO, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})})
        if proc.returncode != 0:
            raise RuntimeError(f"child {kind} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return json.loads(answer.read_text())
    finally:
        answer.unlink(missing_ok=True)


def child_main(argv: list[str]) -> int:
    kind, answer, *args = argv
    if kind == "decode":
        result = child_decode(Path(args[0]), args[1].split(","))
    elif kind == "cleanvision":
        result = child_cleanvision(Path(args[0]))
    elif kind == "profile":
        result = child_profile(Path(args[0]), int(args[1]), int(args[2]), int(args[3]) if len(args) > 3 else 3)
    else:
        raise SystemExit(f"unknown child {kind!r}")
    Path(answer).write_text(json.dumps(result))
    return 0


# ----- memory: sampling the process tree ----------------------------------------------------------


def _proc_tree(root_pid: int) -> set[int]:
    """``root_pid`` and every descendant."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(name))
    tree, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, []))
    return tree


def _status_kib(pid: int) -> tuple[int, int] | None:
    """``(VmRSS, VmHWM)`` in KiB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = {}
    for line in text.split(b"\n"):
        if line.startswith((b"VmRSS:", b"VmHWM:")):
            fields[line[:5]] = int(line.split()[1])
    return (fields[b"VmRSS"], fields[b"VmHWM"]) if len(fields) == 2 else None


class TreeSampler(threading.Thread):
    """Samples job drivers and Ray workers among this process's descendants every ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.halt = threading.Event()
        # per sample: (monotonic time, wall time, {pid: (rss_kib, hwm_kib)}), drivers and workers seen running chunks
        self.samples: list[tuple[float, float, dict[int, tuple[int, int]]]] = []
        self.drivers: dict[int, bytes] = {}  # pid -> command line
        self.chunk_pids: set[int] = set()
        self.lock = threading.Lock()

    def run(self) -> None:
        me = os.getpid()
        while not self.halt.is_set():
            t, wall = time.monotonic(), time.time()
            seen: dict[int, tuple[int, int]] = {}
            for pid in _proc_tree(me):
                if pid not in self.drivers and pid not in self.chunk_pids:
                    try:
                        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                    except OSError:
                        continue
                    # Ray workers are started per job and titled ray::<function> while they run a task.
                    if b"jobs.runner" in cmd:
                        self.drivers[pid] = cmd
                    elif cmd.startswith(b"ray::_chunk_on_node"):
                        self.chunk_pids.add(pid)
                    else:
                        continue
                mem = _status_kib(pid)
                if mem is not None:
                    seen[pid] = mem
            with self.lock:
                self.samples.append((t, wall, seen))
            self.halt.wait(max(0.0, self.interval - (time.monotonic() - t)))

    def driver_of(self, task_id: str) -> list[int]:
        return [pid for pid, cmd in self.drivers.items() if task_id.encode() in cmd.split(b"\0")]

    def alive(self, pids: list[int]) -> bool:
        with self.lock:
            return bool(self.samples) and any(pid in self.samples[-1][2] for pid in pids)

    def stop(self) -> None:
        self.halt.set()
        self.join()

    def summary(self, task_id: str, completed_seen_at: float, last_commit_wall: float) -> dict:
        drivers = self.driver_of(task_id)
        if not drivers:
            raise RuntimeError(f"the job driver of {task_id} (jobs.runner) was never sampled; sample more often")
        driver = [(t, wall, procs[pid]) for t, wall, procs in self.samples for pid in drivers if pid in procs]
        before_assembly = [rss for _, wall, (rss, _) in driver if wall < last_commit_wall]
        worker_rss: dict[int, int] = {}
        worker_hwm: dict[int, int] = {}
        rss_sum_peak = 0
        for _, _, procs in self.samples:
            total = 0
            for pid in self.chunk_pids & procs.keys():
                rss, hwm = procs[pid]
                worker_rss[pid] = max(worker_rss.get(pid, 0), rss)
                worker_hwm[pid] = max(worker_hwm.get(pid, 0), hwm)
                total += rss
            rss_sum_peak = max(rss_sum_peak, total)
        return {
            "samples": len(self.samples),
            "driver_pids": drivers,
            "driver_peak_hwm_mib": max(hwm for _, _, (_, hwm) in driver) / 1024,
            "driver_peak_rss_mib": max(rss for _, _, (rss, _) in driver) / 1024,
            # Before the last chunk was committed: what the driver held while chunks ran, before assembling outputs.
            "driver_peak_rss_before_last_commit_mib": max(before_assembly, default=0) / 1024,
            # Sampled after status 2 was seen, i.e. after the outputs were assembled: its VmHWM covers the run.
            "driver_sampled_after_completed": max(t for t, _, _ in driver) >= completed_seen_at,
            "driver_exited": not self.alive(drivers),
            "workers": len(self.chunk_pids),
            "worker_peak_hwm_mib": max(worker_hwm.values(), default=0) / 1024,
            "worker_hwm_sum_mib": sum(worker_hwm.values()) / 1024,
            "worker_peak_rss_mib": max(worker_rss.values(), default=0) / 1024,
            "worker_peak_rss_sum_mib": rss_sum_peak / 1024,
            "worker_hwm_each_mib": {str(pid): kib / 1024 for pid, kib in sorted(worker_hwm.items())},
        }


# ----- rayproc ------------------------------------------------------------------------------------


def wait_task(rp: Rayproc, task_id: str, interval: float, timeout: float) -> list[Seen]:
    seen: list[Seen] = []
    deadline = time.monotonic() + timeout
    while True:
        sent = time.monotonic()
        status, body = rp.read(task_id)
        seen.append(Seen(sent, time.monotonic(), status, body if status in RAYPROC_TERMINAL else None))
        if status in RAYPROC_TERMINAL:
            return seen
        if time.monotonic() > deadline:
            raise TimeoutError(f"task {task_id} still has status {status} after {timeout:.0f} s")
        time.sleep(interval)


def rayproc_analyse(rp: Rayproc, folder: Path, n: int, chunk_size: int, interval: float,
                    sampler: TreeSampler | None = None) -> dict:
    """One analysis task over ``folder``: submitted over HTTP, polled to completion, its records read back."""
    if sampler is not None:
        sampler.start()
    try:
        sent, sent_wall = time.monotonic(), time.time()
        task_id = rp.create(folder, execution={"chunk_size": chunk_size})
        posted = time.monotonic()
        seen = wait_task(rp, task_id, interval, timeout=120 + 0.1 * n)
        if sampler is not None:  # until the driver exits, so that its last VmHWM covers everything it did
            deadline = time.monotonic() + 30
            while sampler.alive(sampler.driver_of(task_id)) and time.monotonic() < deadline:
                time.sleep(sampler.interval)
    finally:
        if sampler is not None:
            sampler.stop()
    last = seen[-1]
    if last.status != COMPLETED:
        raise RuntimeError(f"task {task_id} ended with status {last.status}: {last.body}")
    body = last.body
    if body["processed_count"] != n or body["failed_count"] != 0:
        raise RuntimeError(f"task {task_id}: processed {body['processed_count']}, failed {body['failed_count']}, "
                           f"expected {n} processed")
    running = next((s for s in seen if s.status == RUNNING), None)
    run = rp.run_record(task_id)
    claim, end = run["start_time"] / 1000, run["end_time"] / 1000
    layout = RunLayout(body["work_path"]["output_path"])
    parts = sorted((p.stat().st_mtime_ns / 1e9, p) for p in layout.parts_dir.glob("*.jsonl"))
    manifest = layout.manifest.stat().st_mtime_ns / 1e9
    first_commit, last_commit = parts[0][0], parts[-1][0]
    with open(parts[0][1], encoding="utf-8") as fh:
        first_items = sum(1 for _ in fh)
    # The later half of the commits, once the job's workers have started: the steady rate of a long task.
    half = len(parts) // 2
    warm_images = 0
    for _, part in parts[half + 1:]:
        with open(part, encoding="utf-8") as fh:
            warm_images += sum(1 for _ in fh)
    warm_seconds = last_commit - parts[half][0] if len(parts) >= 4 else None
    total = last.at - sent
    out = {
        "task_id": task_id, "images": n, "chunks": len(parts),
        "seconds": total, "images_per_s": n / total,
        "post_call": posted - sent,
        "running_to_completed_seen": (last.at - running.at) if running else None,
        "runner_claim_to_completed": end - claim,
        "runner_images_per_s": n / (end - claim),
        "submit_to_claim": claim - sent_wall,
        "claim_to_manifest": manifest - claim,
        "manifest_to_first_commit": first_commit - manifest,
        "chunk_phase": last_commit - first_commit,
        "chunk_phase_images_per_s": (n - first_items) / (last_commit - first_commit) if len(parts) > 1 else None,
        "warm_seconds": warm_seconds,
        "warm_images_per_s": warm_images / warm_seconds if warm_seconds else None,
        "assemble_and_record": end - last_commit,
        "duration_seconds_field": body["duration_seconds"],
        "issue_counts": body["result"]["issues"]["counts"],
    }
    if sampler is not None:
        out["memory"] = sampler.summary(task_id, last.at, last_commit)
    shutil.rmtree(layout.output_dir, ignore_errors=True)  # outputs of 20,000 images add up; only the timings matter here
    return out


def ray_floor(bare: BareRay, root: Path) -> dict:
    """What any task run as a Ray job with workers of its own pays before its first image: a bare job through
    the same Jobs API whose driver connects and runs two no-op tasks (one CPU each, so two new workers), timed
    from the submission until those tasks have returned (the driver writes the time). Nothing is processed."""
    stamp = root / f"floor-{time.monotonic_ns()}"
    code = (f"import time, ray; ray.init(logging_level=30); f = ray.remote(num_cpus=1)(lambda: 0); "
            f"ray.get([f.remote() for _ in range(2)]); open(\"{stamp}\", \"w\").write(repr(time.time()))")
    sent = time.time()
    job_id = bare.submit(code)
    seen = bare.watch(job_id, lambda st, _: st in BARE_TERMINAL)
    if seen[-1].status != "SUCCEEDED":
        raise RuntimeError(f"the floor job {job_id} ended {seen[-1].status}")
    done = float(stamp.read_text())
    stamp.unlink()
    return {"seconds": done - sent, "job_id": job_id}


# ----- the run ------------------------------------------------------------------------------------


def one_round(index: int, rp: Rayproc, bare: BareRay, folder: Path, n: int, args: argparse.Namespace,
              root: Path, cleanvision_folder: Path | None = None) -> dict:
    """rayproc, cleanvision and the decode loops back to back; odd rounds run them in the opposite order.
    cleanvision may run on a part of the folder (``cleanvision_folder``): its rate is per image."""
    decode_order = ["full-1", "draft-1", "full-2", "draft-2"]
    steps = [
        ("rayproc", lambda: rayproc_analyse(rp, folder, n, args.chunk_size, args.poll)),
        ("ray_floor", lambda: ray_floor(bare, root)),
        ("cleanvision", lambda: run_child("cleanvision", str(cleanvision_folder or folder))),
        ("decode", lambda: run_child("decode", str(folder),
                                     ",".join(decode_order if index % 2 == 0 else decode_order[::-1]))),
    ]
    out: dict = {"host": {"load_1min": os.getloadavg()[0], "other_ray_clusters": other_ray_clusters(root)}}
    for name, fn in steps if index % 2 == 0 else steps[::-1]:
        out[name] = fn()
        if name == "decode":
            log("  decode: " + ", ".join(f"{k} {v['images_per_s']:.0f}/s" for k, v in out[name].items()))
        elif name == "ray_floor":
            log(f"  ray floor: {out[name]['seconds']:.2f} s")
        else:
            log(f"  {name}: {out[name]['images_per_s']:.1f} images/s")
        time.sleep(args.settle)
    return out


def measure(root: Path, args: argparse.Namespace) -> dict:
    """Generate the images, start Ray and the service under ``root``, run everything, stop Ray."""
    kept = args.inputs or root / "inputs"  # generated images; --inputs keeps them for the next run
    w, h = args.size
    photos = kept / f"photos-{w}x{h}"
    t = time.monotonic()
    log(f"writing {args.images} {w}x{h} JPEGs")
    write_photos(photos, args.images, args.size)
    if args.inputs is not None or len(image_paths(photos)) != args.images:
        # Hard links under root, the service's one allowed root (the first --images of a larger kept folder).
        photos = link_first(photos, root / "inputs" / "photos", args.images)
    warmup = link_first(photos, root / "inputs" / "warmup", WARMUP_IMAGES)
    cleanvision_folder = (photos if not args.cleanvision_images or args.cleanvision_images >= args.images
                          else link_first(photos, root / "inputs" / "cleanvision", args.cleanvision_images))
    sizes = sorted(args.memory_sizes)
    memory_folders = {}
    if sizes:
        mw, mh = args.memory_size
        log(f"writing {sizes[-1]} {mw}x{mh} JPEGs")
        # The same generator and seeds as the throughput photos when the size is theirs: the same files.
        largest = write_photos(kept / f"photos-{mw}x{mh}" if args.memory_size == args.size
                               else kept / f"mem-{mw}x{mh}", sizes[-1], args.memory_size,
                               seed=0 if args.memory_size == args.size else MEMORY_SEED)
        memory_folders = {n: link_first(largest, root / "inputs" / f"mem-{n}", n) for n in sizes}
    data = {"generation_seconds": time.monotonic() - t, "photo_bytes": folder_bytes(photos),
            "memory_bytes": {str(n): folder_bytes(f) for n, f in memory_folders.items()}}

    cluster = None
    try:
        isolate_ray(root)
        log(f"starting Ray and the service under {root}")
        cluster, dashboard_url = start_head(root)
        running = start_service(root, cluster, dashboard_url)
        token = running.initial_token_file.read_text().strip()
        with httpx.Client(base_url=running.url, timeout=120, headers={"Authorization": f"Token {token}"}) as client:
            rp = Rayproc(client, running.settings.db_path, args.poll)
            bare = BareRay(running.dashboard_url, args.poll)
            bare.wait_ready()
            rounds = []
            for i in range(args.warmup + args.repeats):
                warm = i < args.warmup
                log(f"warm-up {i + 1} ({WARMUP_IMAGES} images)" if warm else f"round {i - args.warmup + 1}/{args.repeats}")
                result = one_round(i, rp, bare, warmup if warm else photos, WARMUP_IMAGES if warm else args.images,
                                   args, root, None if warm else cleanvision_folder)
                if not warm:
                    rounds.append(result)
            memory = {}
            for n in sizes:
                log(f"memory: {n} images")
                memory[str(n)] = rayproc_analyse(rp, memory_folders[n], n, args.chunk_size, args.poll,
                                                 TreeSampler(args.sample))
                m = memory[str(n)]["memory"]
                log(f"  {memory[str(n)]['images_per_s']:.1f} images/s; driver peak {m['driver_peak_hwm_mib']:.0f} MiB,"
                    f" largest worker {m['worker_peak_hwm_mib']:.0f} MiB, workers' peaks summed "
                    f"{m['worker_hwm_sum_mib']:.0f} MiB")
    finally:
        stop_service(cluster)
    log(f"profiling process_chunk in-process over {args.profile_images} images")
    # One BLAS thread, as in a Ray worker with num_cpus=1 (Ray sets OMP_NUM_THREADS=1 there).
    profile = run_child("profile", str(photos), str(args.profile_images), str(args.chunk_size),
                        env={"OMP_NUM_THREADS": "1"})
    return {"data": data, "rounds": rounds, "memory": memory, "profile": profile}


# ----- summaries ----------------------------------------------------------------------------------


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "samples": values}


SYSTEMS = {
    "rayproc": ("rayproc, POST -> status 2 seen (end to end)", lambda r: r["rayproc"]),
    "rayproc_runner": ("rayproc, runner claim -> completed record", lambda r: {
        "seconds": r["rayproc"]["runner_claim_to_completed"], "images_per_s": r["rayproc"]["runner_images_per_s"]}),
    "rayproc_chunks": ("rayproc, chunk phase (first -> last part commit)", lambda r: {
        "seconds": r["rayproc"]["chunk_phase"], "images_per_s": r["rayproc"]["chunk_phase_images_per_s"]}),
    "rayproc_warm": ("rayproc, later half of the chunk commits (workers warm)", lambda r: {
        "seconds": r["rayproc"]["warm_seconds"], "images_per_s": r["rayproc"]["warm_images_per_s"]}),
    "cleanvision": ("cleanvision `find_issues()` (defaults, n_jobs 2)", lambda r: r["cleanvision"]),
    "full-1": ("Pillow full decode, 1 process", lambda r: r["decode"]["full-1"]),
    "draft-1": ("Pillow draft at rayproc's scale + decode, 1 process", lambda r: r["decode"]["draft-1"]),
    "full-2": ("Pillow full decode, 2 processes", lambda r: r["decode"]["full-2"]),
    "draft-2": ("Pillow draft at rayproc's scale + decode, 2 processes", lambda r: r["decode"]["draft-2"]),
}

RATIOS = {
    "rayproc / cleanvision": ("cleanvision", 9.0),
    "rayproc / 2-process full decode (the decode limit)": ("full-2", 0.6),
    "rayproc / 2-process draft decode (rayproc's own decoding alone)": ("draft-2", 0.75),
    "rayproc with warm workers / 2-process full decode": ("full-2", None),
}


BREAKDOWN = {
    "post_call": "the POST itself (task recorded, Ray job submitted)",
    "submit_to_claim": "POST sent -> runner claims the run (Ray starts the job driver)",
    "claim_to_manifest": "claim -> manifest written (imports, listing the folder)",
    "manifest_to_first_commit": "manifest -> first chunk committed (ray.init, new workers and their imports, "
                                "first chunk)",
    "chunk_phase": "first -> last chunk committed",
    "assemble_and_record": "last commit -> completed record (finalize, outputs)",
    "poll_slack": "completed record -> status 2 seen (polling)",
}


def breakdown(rounds: list[dict]) -> dict:
    """Medians (seconds) of where rayproc's end-to-end time goes."""
    out = {}
    for key in BREAKDOWN:
        if key == "poll_slack":
            values = [r["rayproc"]["seconds"] - r["rayproc"]["submit_to_claim"]
                      - r["rayproc"]["runner_claim_to_completed"] for r in rounds]
        else:
            values = [r["rayproc"][key] for r in rounds]
        out[key] = statistics.median(values)
    return out


def summarize(rounds: list[dict]) -> dict:
    systems = {}
    for key, (label, pick) in SYSTEMS.items():
        systems[key] = {"what": label, "seconds": stats([pick(r)["seconds"] for r in rounds]),
                        "images_per_s": stats([pick(r)["images_per_s"] for r in rounds])}
    ratios = {}
    for label, (other, goal) in RATIOS.items():
        mine = "rayproc_warm" if label.startswith("rayproc with warm workers") else "rayproc"
        per_round = [SYSTEMS[mine][1](r)["images_per_s"] / SYSTEMS[other][1](r)["images_per_s"] for r in rounds]
        of_medians = systems[mine]["images_per_s"]["median"] / systems[other]["images_per_s"]["median"]
        ratios[label] = {"of_medians": of_medians, "per_round": stats(per_round), "goal": goal,
                         "met": None if goal is None else of_medians >= goal}
    return {"systems": systems, "ratios": ratios, "rayproc_breakdown": breakdown(rounds), "bound": bound(rounds)}


def bound(rounds: list[dict]) -> dict:
    """The most images/s a task run as a Ray job with new workers could reach here: the Ray floor, then the
    images decoded at rayproc's own scale by two bare processes and nothing else done with them. Against the
    decode limit, it says which ratios are reachable at this folder size at all."""
    per_round = []
    for r in rounds:
        n = r["decode"]["draft-2"]["images"]
        best = n / (r["ray_floor"]["seconds"] + r["decode"]["draft-2"]["seconds"])
        per_round.append({"images_per_s": best, "of_decode_limit": best / r["decode"]["full-2"]["images_per_s"]})
    return {"floor_seconds": stats([r["ray_floor"]["seconds"] for r in rounds]),
            "images_per_s": stats([b["images_per_s"] for b in per_round]),
            "of_decode_limit": stats([b["of_decode_limit"] for b in per_round])}


def memory_summary(memory: dict) -> dict:
    if len(memory) < 2:
        return {}
    sizes = sorted(memory, key=int)
    small, large = memory[sizes[0]]["memory"], memory[sizes[-1]]["memory"]
    keys = ("driver_peak_hwm_mib", "worker_peak_hwm_mib", "worker_hwm_sum_mib")
    return {"images": [int(sizes[0]), int(sizes[-1])],
            "growth": {k: large[k] / small[k] for k in (*keys, "driver_peak_rss_before_last_commit_mib")},
            "goal": 1.5, "met": all(large[k] / small[k] <= 1.5 for k in keys)}


def source_commit() -> str | None:
    """The checked-out commit, read from ``.git`` (no git process)."""
    git = REPO / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:
        pass
    return None


def machine() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    import PIL
    from PIL import features

    try:
        cleanvision = version("cleanvision")
    except PackageNotFoundError:
        cleanvision = None
    return {**base_machine(), "pillow": PIL.__version__, "numpy": np.__version__, "cleanvision": cleanvision,
            "libjpeg_turbo": features.check_feature("libjpeg_turbo"),
            "libjpeg_turbo_version": features.version_feature("libjpeg_turbo")}


def markdown(summary: dict, memory: dict, mem_growth: dict, profile: dict, n: int, repeats: int,
             memory_size: tuple[int, int]) -> str:
    lines = [(f"| System ({n} images, {repeats} rounds) | median s | median images/s | min images/s "
              "| max images/s |"), "|---|---:|---:|---:|---:|"]
    for s in summary["systems"].values():
        ips = s["images_per_s"]
        lines.append(f"| {s['what']} | {s['seconds']['median']:.2f} | {ips['median']:.1f} | {ips['min']:.1f} "
                     f"| {ips['max']:.1f} |")
    lines += ["", "| Ratio (images/s) | of the medians | per round (min–max) | goal | met |", "|---|---:|---:|---:|---|"]
    for label, r in summary["ratios"].items():
        goal = "–" if r["goal"] is None else f">= {r['goal']:g}"
        met = "–" if r["met"] is None else ("yes" if r["met"] else "no")
        lines.append(f"| {label} | {r['of_medians']:.3f} | {r['per_round']['min']:.3f}–{r['per_round']['max']:.3f} "
                     f"| {goal} | {met} |")
    b = summary["bound"]
    lines += ["", "| Reachable by any task run as a Ray job with new workers (medians) | value |", "|---|---:|",
              f"| Ray floor: submit -> a bare job's two no-op tasks have run on new workers | "
              f"{b['floor_seconds']['median']:.2f} s |",
              f"| bound: {n} images / (floor + 2-process draft decode) | {b['images_per_s']['median']:.1f} images/s |",
              f"| bound / 2-process full decode (the highest decode-limit ratio reachable) | "
              f"{b['of_decode_limit']['median']:.3f} |"]
    lines += ["", "| Where rayproc's end-to-end time goes (medians) | s |", "|---|---:|"]
    for key, sec in summary["rayproc_breakdown"].items():
        lines.append(f"| {BREAKDOWN[key]} | {sec:.2f} |")
    if memory:
        lines += ["", (f"| Images ({memory_size[0]}x{memory_size[1]}) | task s | images/s | driver peak (VmHWM, MiB) | driver before the last "
                       "commit (sampled VmRSS, MiB) | largest worker peak (VmHWM, MiB) | sum of the workers' peaks "
                       "(VmHWM, MiB) | chunk workers |"),
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for size in sorted(memory, key=int):
            m, r = memory[size]["memory"], memory[size]
            lines.append(f"| {int(size):,} | {r['seconds']:.1f} | {r['images_per_s']:.1f} "
                         f"| {m['driver_peak_hwm_mib']:.0f} | {m['driver_peak_rss_before_last_commit_mib']:.0f} "
                         f"| {m['worker_peak_hwm_mib']:.0f} "
                         f"| {m['worker_hwm_sum_mib']:.0f} | {m['workers']} |")
        if mem_growth:
            g = mem_growth["growth"]
            lines.append(f"| growth ({mem_growth['images'][1] // mem_growth['images'][0]}x images) | | "
                         f"| {g['driver_peak_hwm_mib']:.2f}x | {g['driver_peak_rss_before_last_commit_mib']:.2f}x "
                         f"| {g['worker_peak_hwm_mib']:.2f}x "
                         f"| {g['worker_hwm_sum_mib']:.2f}x | |")
    total = profile["profiled_seconds"]
    lines += ["", (f"| `process_chunk` over {profile['images']} images, chunks of {profile['chunk_size']} "
                   f"(cProfile'd: {total:.2f} s; unprofiled best of 3: {profile['unprofiled_seconds']:.2f} s = "
                   f"{profile['unprofiled_images_per_s']:.1f} images/s on one core) | s | share |"), "|---|---:|---:|"]
    for name, sec in profile["stages"].items():
        lines.append(f"| {name} | {sec:.3f} | {sec / total:.0%} |")
    for group in ("features", "issues"):
        for name, sec in sorted(profile[group].items(), key=lambda kv: -kv[1]):
            lines.append(f"| &nbsp;&nbsp;{group}: {name} | {sec:.3f} | {sec / total:.0%} |")
    lines.append(f"| (bare draft+decode loop over the same images, unprofiled) | "
                 f"{profile['bare_draft_decode_seconds']:.3f} | |")
    return "\n".join(lines)


def cost_main(argv: list[str]) -> int:
    """``--cost``: the map stage's per-image cost on real 1024x768 photos, in-process, against a bare draft-scale
    decode of the same files (no Ray, no service)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_analysis --cost")
    p.add_argument("--images", type=int, default=200, help="real 1024x768 photos (default 200)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds, best of which is kept (default 3)")
    p.add_argument("--chunk-size", type=int, default=64)
    p.add_argument("--work", type=Path, default=Path("/tmp/rayproc-bench-cost"), help="where the photos are kept")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "cost.json")
    args = p.parse_args(argv)
    folder = write_real_photos(args.work / f"photos-{args.images}", args.images)
    load_before = os.getloadavg()
    # One BLAS thread, as in a Ray worker with num_cpus=1 (Ray sets OMP_NUM_THREADS=1 there).
    profile = run_child("profile", str(folder), str(args.images), str(args.chunk_size), str(args.rounds),
                        env={"OMP_NUM_THREADS": "1"})
    load_after = os.getloadavg()
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "command": "python -m benchmarks.bench_analysis --cost " + " ".join(argv),
              "source": {"commit": source_commit()}, "machine": machine(),
              "load_average_before": load_before, "load_average_after": load_after, "profile": profile}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    n = profile["images"]
    per_round = [a / b for a, b in zip(profile["unprofiled_samples"], profile["bare_draft_samples"], strict=True)]
    report["per_round_ratios"] = per_round
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"per-round ratios (the decode loop and process_chunk of one round, back to back): median "
          f"{statistics.median(per_round):.3f}, min {min(per_round):.3f}, max {max(per_round):.3f}")
    print(f"process_chunk over {n} real 1024x768 photos: best of {args.rounds} "
          f"{profile['unprofiled_seconds']:.3f} s ({[round(x, 3) for x in profile['unprofiled_samples']]}); "
          f"bare draft decode best {profile['bare_draft_decode_seconds']:.3f} s "
          f"({[round(x, 3) for x in profile['bare_draft_samples']]}); ratio {profile['ratio_to_bare_draft']:.3f}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"unprofiled, best of {args.rounds}, per image: bare draft decode "
          f"{profile['bare_draft_decode_seconds'] / n * 1e3:.3f} ms; load_thumbnail alone (decode, thumbnail, "
          f"digest) {profile['load_thumbnail_seconds'] / n * 1e3:.3f} ms "
          f"({profile['load_thumbnail_seconds'] / profile['bare_draft_decode_seconds']:.3f}x); the statistics pass "
          f"alone (every statistic of both operators) {profile['statistics_pass_seconds'] / n * 1e3:.3f} ms "
          f"({profile['statistics_pass_seconds'] / profile['bare_draft_decode_seconds']:.3f} of a decode); "
          f"process_chunk {profile['unprofiled_seconds'] / n * 1e3:.3f} ms")
    print("\n| statistic alone, with the planes it needs (median of the rounds) | share of a bare decode |\n"
          "|---|---:|")
    for name, share in sorted(profile["statistic_share_of_decode"].items(), key=lambda kv: -kv[1]):
        print(f"| {name} | {share:.1%} |")
    total = profile["profiled_seconds"]
    print(f"\n| cProfile'd run ({total:.2f} s) | s | ms per image | share |\n|---|---:|---:|---:|")
    for name, sec in profile["stages"].items():
        print(f"| {name} | {sec:.3f} | {sec / n * 1e3:.3f} | {sec / total:.0%} |")
    return 0


def _size(text: str) -> tuple[int, int]:
    w, h = (int(v) for v in text.lower().split("x"))
    return w, h


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_analysis", description=__doc__.split("\n")[0])
    p.add_argument("--images", type=int, default=2000, help="JPEGs for the throughput rounds (default 2000)")
    p.add_argument("--size", type=_size, default=PHOTO_SIZE, help="their size, WxH (default 640x480)")
    p.add_argument("--cleanvision-images", type=int, default=0,
                   help="cleanvision on the first N of them only (its rate is per image; default 0: all)")
    p.add_argument("--inputs", type=Path, default=None,
                   help="keep the generated images in this folder and reuse them (default: a temporary folder)")
    p.add_argument("--repeats", type=int, default=3, help="measured rounds (default 3)")
    p.add_argument("--warmup", type=int, default=1, help=f"discarded rounds over {WARMUP_IMAGES} images first "
                                                         "(default 1)")
    p.add_argument("--memory-sizes", type=lambda s: [int(x) for x in s.split(",") if x.strip()],
                   default=[2000, 20000], help="comma-separated image counts for the memory part "
                                               "(default 2000,20000; empty to skip)")
    p.add_argument("--memory-size", type=_size, default=MEMORY_SIZE,
                   help="their size, WxH (default 320x240; the --size of the throughput photos: the same files)")
    p.add_argument("--chunk-size", type=int, default=64, help="the tasks' execution.chunk_size (default 64)")
    p.add_argument("--poll", type=float, default=0.25,
                   help="seconds between status polls (default 0.25: each poll of a running task also asks Ray "
                        "for the job's state, CPU the two cores' workers would otherwise have)")
    p.add_argument("--sample", type=float, default=0.1, help="seconds between memory samples (default 0.1)")
    p.add_argument("--profile-images", type=int, default=200, help="images in the in-process profile (default 200)")
    p.add_argument("--settle", type=float, default=1.0, help="pause after each measurement (default 1.0 s)")
    p.add_argument("--out", type=Path, default=OUT_FILE, help=f"JSON output (default {OUT_FILE})")
    args = p.parse_args(argv)
    if args.images < WARMUP_IMAGES or args.profile_images > args.images:
        p.error(f"--images must be at least {WARMUP_IMAGES} and at least --profile-images")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child_main(argv[1:])
    if argv[:1] == ["--cost"]:
        return cost_main(argv[1:])
    args = parse_args(argv)
    started = dt.datetime.now(dt.timezone.utc)
    # Short: Ray's socket paths under it must stay within the 107-byte limit of Unix sockets.
    root = Path(tempfile.mkdtemp(prefix="rpbench-", dir="/tmp")).resolve()
    t0 = time.monotonic()
    try:
        results = measure(root, args)
    except BaseException:
        log(f"failed; kept {root} (inputs, rayproc data, Ray session logs) for inspection")
        raise
    shutil.rmtree(root, ignore_errors=True)

    summary = summarize(results["rounds"])
    mem_growth = memory_summary(results["memory"])
    report = {
        "date": started.isoformat(timespec="seconds"),
        "command": "python -m benchmarks.bench_analysis " + " ".join(argv),
        "wall_seconds": time.monotonic() - t0,
        "source": {"commit": source_commit()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "summary": summary,
        "memory_growth": mem_growth,
        "host": {"max_load_1min": max(r["host"]["load_1min"] for r in results["rounds"]),
                 "max_other_ray_clusters": max(r["host"]["other_ray_clusters"] for r in results["rounds"])},
        **results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(summary, results["memory"], mem_growth, results["profile"], args.images, args.repeats,
                   args.memory_size))
    log(f"wrote {args.out} after {report['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
