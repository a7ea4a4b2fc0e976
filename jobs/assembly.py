"""A completed run's outputs, assembled from its committed part files.

``finalize`` runs once over every record, then every output file is written
atomically: ``features.jsonl`` (items that were processed), ``failures.jsonl``
(items that failed, with their reasons), the operators' own files, and
``result.json``. Names and places come from :mod:`jobs.layout`; the output path is a
server folder or a bucket prefix, and each file appears whole either way (see
:mod:`jobs.atomic`). Items the operators ask to have copied into the output (cleaning's
``output: copy``) are copied by :func:`copy_inputs`, from a folder or a bucket to a
folder or a bucket, before ``result.json`` is written: a result means every file is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from jobs import storage
from jobs.atomic import AtomicFile, dump_records, json_line, write_atomic
from jobs.layout import FAILURES_FILE, FEATURES_FILE, RESULT_FILE, RunLayout
from jobs.run_state import RunState
from jobs.sources import item_location
from jobs.status import ErrorType, TaskFailure
from operators.base import RecordTable
from operators.image_issues import PIXEL_DIGEST
from operators.pipeline import ERROR_CODE, ERROR_MSG, FAILED, ITEM, OK, STATUS, Pipeline

#: Failed items listed in ``result`` itself; every one is in the failures file.
MAX_FAILED_ITEMS_IN_RESULT = 100


def assemble(state: RunState, n_chunks: int, pipeline: Pipeline, root: str) -> dict:
    """Finalize the run's records and write every output file; returns the task's ``result``."""
    layout = state.layout
    # Two passes over the part files keep the driver's memory flat: the first feeds the
    # columns finalize reads, the second writes each record merged with the fields
    # finalize set on it, so no list of every record is ever held.
    table = RecordTable(state.stream(n_chunks), STATUS, OK, root=root, output_dir=str(layout.output_dir))
    copies: list[tuple[str, str]] = []
    with _readable_items(table, root):
        result, files = pipeline.finalize(table, copies=copies)
    failed_items: list[dict] = []
    try:
        copy_inputs(copies, root, layout)
        with AtomicFile(layout.features) as features, AtomicFile(layout.failures) as failures:
            for record, added in zip(state.stream(n_chunks), table.iter_added(), strict=True):
                status = record.get(STATUS)
                if status == OK:
                    out = features
                elif status == FAILED:
                    out = failures
                    if len(failed_items) < MAX_FAILED_ITEMS_IN_RESULT:
                        failed_items.append({ITEM: record[ITEM], ERROR_CODE: record[ERROR_CODE],
                                             ERROR_MSG: record[ERROR_MSG]})
                else:
                    continue
                record.update(added)
                out.write(json_line(record))
        for name, rows in files.items():
            write_atomic(layout.output(name), dump_records(rows))
        result["failed_items"] = failed_items
        result["outputs"] = {"features": FEATURES_FILE, "failures": FAILURES_FILE, "result": RESULT_FILE,
                             **{name.rsplit(".", 1)[0]: name for name in files}}
        write_atomic(layout.result, json.dumps(result, sort_keys=True, indent=2))
    except OSError as exc:
        raise TaskFailure(ErrorType.OUTPUT_ERROR, f"cannot write outputs: {exc}") from exc
    return result


def copy_inputs(copies: Sequence[tuple[str, str]], root: str, layout: RunLayout) -> None:
    """Each (item key, path under the output) copied from the input to the output: within one store a
    server-side copy, else one download or upload per item, several at once when a bucket is involved."""
    storage.copy_many([(storage.as_location(item_location(root, key)), layout.output(rel)) for key, rel in copies])


@contextmanager
def _readable_items(table: RecordTable, root: str) -> Iterator[None]:
    """Let finalize read item files (``table.item_path``) when the source is a bucket, for its time.

    Finalize reads only candidates: items that share a pixel digest (exact duplicates, confirmed against
    their bytes) and near-duplicate pairs (checked on their pictures). The exact candidates are fetched
    together, several at once, into a temporary folder; any other item finalize asks for is fetched there
    when it first does. So the cost follows the duplicates, not the dataset. An object that cannot be read
    leaves its candidate unconfirmed, as a vanished file does.
    """
    if not storage.is_object_uri(root):
        yield
        return
    ok = table.ok_index
    # Items without a digest (no image_issues in the pipeline) share the value None: no candidates.
    groups = [g for g in table.groups(PIXEL_DIGEST) if table.value(PIXEL_DIGEST, ok[g[0]]) is not None]
    keys = [table.value(ITEM, ok[i]) for i in sorted({i for group in groups for i in group})]
    with tempfile.TemporaryDirectory(prefix="rayproc-finalize-") as folder:
        fetched: set[str] = set()

        def local(key: str) -> str:  # a name of its own: an object's key never names a local path
            return os.path.join(folder, hashlib.sha256(key.encode()).hexdigest())

        def save(key: str, data: bytes | storage.ObjectError) -> None:
            fetched.add(key)
            if not isinstance(data, storage.ObjectError):
                with open(local(key), "wb") as fh:
                    fh.write(data)

        def locate(key: str) -> str:
            if key not in fetched:
                try:
                    save(key, storage.read_bytes(storage.ObjectUri.parse(item_location(root, key))))
                except (ValueError, storage.ObjectError):
                    fetched.add(key)  # unreadable: the path stays absent, and the candidate unconfirmed
            return local(key)

        uris = [storage.ObjectUri.parse(item_location(root, key)) for key in keys]
        for key, data in zip(keys, storage.fetch_many(uris), strict=True):
            save(key, data)
        table.locate = locate
        try:
            yield
        finally:
            table.locate = None
