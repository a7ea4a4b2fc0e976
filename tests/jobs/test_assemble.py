"""A task's assembly (finalize, then every output file) from committed part files, without images.

The expected outputs in ``data/assembly_outputs.jsonl`` were written by the assembly
that held every record as a dict, before the record table became columnar and the
outputs streamed: what a task writes must not change with how the driver holds it.
They are checked in full for 24 records and by SHA-256 for 5,000. To record new ones
after an intended change of an operator's output, run ``python -m tests.jobs.test_assemble``.
"""

from __future__ import annotations

import gc
import hashlib
import itertools
import json
import tracemalloc
from pathlib import Path

import pytest

from jobs.catalog import build_pipeline
from jobs.assembly import assemble
from jobs.layout import RunLayout
from jobs.run_state import RunState
from operators.registry import default_registry
from tests.support.records import CASES, synthetic_records

EXPECTED = Path(__file__).parent / "data" / "assembly_outputs.jsonl"
SMALL, LARGE = 24, 5000
LARGE_CASES = ("analyse", "cleaning", "validation", "augmentation", "selection_stratified")
ROOT = "/data/images"
FEATURES, FAILURES = "features.jsonl", "failures.jsonl"


def _commit(folder: Path, n: int, chunk_size: int) -> tuple[RunState, int]:
    """Part files of ``n`` synthetic records, as a run commits them."""
    state = RunState(RunLayout(folder), chunk_size)
    records = synthetic_records(n)
    n_chunks = 0
    while chunk := list(itertools.islice(records, chunk_size)):
        state.commit(n_chunks, chunk)
        n_chunks += 1
    return state, n_chunks


def _image_files(root: Path, n: int) -> str:
    """Stand-in files for the ok items: exact-duplicate candidates are confirmed against the files, and
    files whose bytes are equal (here: exactly when the records' pixel digests are) are duplicates."""
    for record in synthetic_records(n):
        if record["status"] == "ok":
            path = root / record["item"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(record["pixel_digest"])
    return str(root)


def _assemble_case(folder: Path, case: str, n: int, chunk_size: int) -> dict:
    root = _image_files(folder / "images", n)
    state, n_chunks = _commit(folder, n, chunk_size)
    return assemble(state, n_chunks, build_pipeline(CASES[case], default_registry()), root)


def _outputs(folder: Path) -> dict[str, str]:
    """Each output file's text; the items' absolute paths (rows passed on to a next task name them)
    are written as if the images lay under ``ROOT``, so the text does not depend on the temporary folder."""
    images = str(folder / "images")
    return {p.name: p.read_text(encoding="utf-8").replace(images, ROOT) for p in sorted(folder.iterdir())
            if p.is_file()}


def _by_file(n: int) -> dict[str, list[dict]]:
    """The records each of features.jsonl and failures.jsonl starts from, as the part files hold them."""
    records = [json.loads(json.dumps(r)) for r in synthetic_records(n)]
    return {FEATURES: [r for r in records if r["status"] == "ok"],
            FAILURES: [r for r in records if r["status"] == "failed"]}


def _line(row: dict) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n"


def _expected() -> dict:
    """{(case, records): {file: text, or {"sha256": ...}}} from the expected-outputs file. Lines of
    features.jsonl and failures.jsonl are stored as the fields finalize added to the record."""
    out: dict = {}
    records = _by_file(SMALL)
    with open(EXPECTED, encoding="utf-8") as fh:
        for line in fh:
            entry = json.loads(line)
            files = out.setdefault((entry["case"], entry["records"]), {})
            name = entry["file"]
            if "sha256" in entry:
                files[name] = {"sha256": entry["sha256"]}
            elif "result" in entry:
                files[name] = json.dumps(entry["result"], sort_keys=True, indent=2)
            elif "added" in entry:
                text = files.get(name, "")
                files[name] = text + _line({**records[name][text.count("\n")], **entry["added"]})
            else:
                files[name] = files.get(name, "") + (_line(entry["row"]) if "row" in entry else "")
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_outputs_are_byte_for_byte_those_of_the_list_of_dicts_assembly(tmp_path: Path, case: str) -> None:
    # Chunks of 5, where the expected outputs came from one chunk: chunking must not show.
    result = _assemble_case(tmp_path, case, SMALL, chunk_size=5)
    expected = _expected()[(case, SMALL)]
    outputs = _outputs(tmp_path)
    assert sorted(outputs) == sorted(expected)
    for name, text in expected.items():
        assert outputs[name] == text, f"{case}: {name} differs"
    assert json.loads(outputs["result.json"]) == result


@pytest.mark.parametrize("case", LARGE_CASES)
def test_thousands_of_records_assemble_to_the_same_bytes(tmp_path: Path, case: str) -> None:
    _assemble_case(tmp_path, case, LARGE, chunk_size=32)
    expected = _expected()[(case, LARGE)]
    outputs = _outputs(tmp_path)
    assert sorted(outputs) == sorted(expected)
    for name, digest in expected.items():
        assert hashlib.sha256(outputs[name].encode("utf-8")).hexdigest() == digest["sha256"], f"{case}: {name}"


def _traced_peak(folder: Path, n: int) -> int:
    """Peak bytes traced while assembling an analysis of ``n`` records (its part files already written)."""
    folder.mkdir()
    state, n_chunks = _commit(folder, n, 32)
    pipeline = build_pipeline(CASES["analyse"], default_registry())
    gc.collect()
    tracemalloc.start()
    try:
        assemble(state, n_chunks, pipeline, ROOT)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _dict_bytes_per_record(n: int) -> float:
    """What holding ``n`` of these records as dicts costs per record: the floor of the old assembly."""
    lines = [json.dumps(r) for r in synthetic_records(n)]
    gc.collect()
    tracemalloc.start()
    try:
        held = [json.loads(line) for line in lines]
        return tracemalloc.get_traced_memory()[0] / len(held)
    finally:
        tracemalloc.stop()


def test_assembly_memory_per_record_is_a_fraction_of_a_dict(tmp_path: Path) -> None:
    """Finalize needs every item's numbers at once (histograms, percentiles, duplicate groups),
    so the assembly's memory is linear in the items, on top of a fixed part for the blocks it
    reads at a time; what the columnar table bounds is the slope. These records cost about
    4.4 KiB each as dicts, the least the list-of-dicts assembly held (it peaked at ~10 KiB a
    record); assembled now they cost about 0.6 KiB each: ~0.45 KiB of columns (numbers at 8
    bytes, text as UTF-8) plus finalize's scores and duplicate-search arrays. The bound, a fifth
    of a dict, allows for allocator noise and still fails on any return to one object per item.
    It makes 10x the records cost ~5.5x the traced peak here (~0.55 MB at 400 records, ~3.0 MB
    at 4,000: sizes kept small because tracing slows the assembly several times), and keeps a
    ~140 MiB driver under 1.1x its peak for 10x the images.
    """
    _traced_peak(tmp_path / "warm", 64)  # first-use imports and caches are not per record
    n = 400
    small, large = _traced_peak(tmp_path / "small", n), _traced_peak(tmp_path / "large", 10 * n)
    per_record = (large - small) / (9 * n)
    as_dicts = _dict_bytes_per_record(n)
    print(f"assembly peak: {small} B at {n} records, {large} B at {10 * n}; {per_record:.0f} B per record "
          f"(as dicts: {as_dicts:.0f} B per record)")
    assert per_record < as_dicts / 5


def _write_expected(path: Path = EXPECTED) -> None:
    """Record the current assembly's outputs as the expected ones (see the module docstring)."""
    import tempfile

    lines = []
    records = _by_file(SMALL)
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            folder = Path(tmp) / f"{case}-small"
            folder.mkdir()
            _assemble_case(folder, case, SMALL, chunk_size=SMALL)
            for name, text in _outputs(folder).items():
                head = {"case": case, "records": SMALL, "file": name}
                if name.endswith(".json"):
                    lines.append({**head, "result": json.loads(text)})
                    continue
                lines.append(head)
                for i, row in enumerate(text.splitlines(keepends=True)):
                    if name not in records:
                        lines.append({**head, "row": json.loads(row)})
                        continue
                    record, value = records[name][i], json.loads(row)
                    added = {k: v for k, v in value.items() if k not in record or _line(record[k]) != _line(v)}
                    assert _line({**record, **added}) == row, f"{case}: {name} line {i} is not its record + fields"
                    lines.append({**head, "added": added})
        for case in LARGE_CASES:
            folder = Path(tmp) / f"{case}-large"
            folder.mkdir()
            _assemble_case(folder, case, LARGE, chunk_size=32)
            lines.extend({"case": case, "records": LARGE, "file": name,
                          "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()}
                         for name, text in _outputs(folder).items())
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps(line, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n"
                            for line in lines), encoding="utf-8")


if __name__ == "__main__":
    _write_expected()
