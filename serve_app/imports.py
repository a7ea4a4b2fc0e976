"""Imports (Label Studio's asynchronous import) and datasets with versions."""

from __future__ import annotations

import csv
import io
import json
import math
import secrets
from datetime import datetime, timezone
from pathlib import Path

from jobs import launcher as L
from jobs.datasets import ACTIVE_IMPORT, DEFAULT_DATASET, Datasets, ImportNotFound, ImportNotStaged
from jobs.sources import PathNotAllowed as _PathNotAllowed
from jobs.sources import resolve_location, resolve_within
from jobs.storage import ObjectError, is_object_uri
from jobs.store import now_ms
from serve_app import errors as E
from serve_app.ray_errors import ray_errors, ray_reason
from serve_app.settings import Settings

FILE_FORMATS = (".json", ".jsonl", ".csv")
MAX_FAILURES_SHOWN = 1000
#: Label Studio splits one ``preannotated_from_fields`` value on any of these.
FIELD_SEPARATORS = (",", ";", "|")
MAX_PREANNOTATED_FIELDS = 50


def iso_time(ms: int | None) -> str | None:
    """Epoch milliseconds as an ISO 8601 UTC time, as Label Studio sends times."""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat() if ms else None


def numeric_id(value: str, kind: str) -> int:
    """Label Studio's ids (imports, tasks) are numbers: anything else is a 400, before any lookup."""
    if not (value.isascii() and value.isdigit()) or len(value) > 18:  # "²" is a digit to str.isdigit
        raise E.InvalidResourceId(f"{kind} ID must be a number, got {value!r}")
    return int(value)


def parse_field_names(values: list[str]) -> list[str]:
    """``preannotated_from_fields``, repeated or separated as Label Studio separates it; order kept."""
    names: list[str] = []
    for value in values:
        for sep in FIELD_SEPARATORS[1:]:
            value = value.replace(sep, FIELD_SEPARATORS[0])
        names.extend(n.strip() for n in value.split(FIELD_SEPARATORS[0]) if n.strip())
    names = list(dict.fromkeys(names))
    if len(names) > MAX_PREANNOTATED_FIELDS:
        raise E.InvalidParameter(f"preannotated_from_fields: at most {MAX_PREANNOTATED_FIELDS} fields")
    if any(len(n) > 128 for n in names):
        raise E.InvalidParameter("preannotated_from_fields: a field name has at most 128 characters")
    return names


def parse_items_json(raw: bytes) -> list | dict:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise E.InvalidRequest(f"malformed JSON: {exc}") from None


def parse_items_file(name: str, raw: bytes) -> list:
    """An uploaded JSON, JSON Lines or CSV file -> list of items."""
    suffix = Path(name or "").suffix.lower()
    if suffix not in FILE_FORMATS:
        raise E.UnsupportedMediaType(f"unknown file format {suffix or '(none)'!r}; upload one of "
                                     f"{', '.join(FILE_FORMATS)}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise E.InvalidRequest(f"{name}: not UTF-8 text") from None
    if suffix == ".json":
        return parse_items_json(raw)  # type: ignore[return-value]
    if suffix == ".csv":
        return [dict(row) for row in csv.DictReader(io.StringIO(text))]
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise E.InvalidRequest(f"{name}: line {number} is not JSON: {exc.msg}") from None
    return items


class ImportService:
    def __init__(self, settings: Settings, datasets: Datasets, launcher: L.JobLauncher,
                 read_launcher: L.JobLauncher | None = None) -> None:
        self.settings = settings
        self.datasets = datasets
        self.launcher = launcher
        #: Asks Ray on behalf of reads, with the short read deadline.
        self.read_launcher = read_launcher or launcher

    # ----- import ------------------------------------------------------------------------

    def check_items(self, items: object) -> list[dict]:
        if not isinstance(items, list):
            raise E.InvalidRequest("the body must be a JSON list of items (objects), or {\"folder\": ...}")
        if not items:
            raise E.InvalidRequest("the list of items is empty")
        if len(items) > self.settings.max_import_items:
            raise E.PayloadTooLarge(f"{len(items)} items in one import; the limit is {self.settings.max_import_items}")
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise E.InvalidRequest(f"item {i} is not a JSON object; nothing was imported")
        return items

    def folder_spec(self, body: dict) -> dict:
        unknown = set(body) - {"folder", "recursive", "metadata_sheet"}
        if unknown:
            raise E.InvalidRequest(f"unknown fields {sorted(unknown)}; a folder import takes folder, recursive, "
                                   "metadata_sheet")
        folder = body.get("folder")
        if not isinstance(folder, str):
            raise E.InvalidRequest("folder: give a server-side folder path or an s3:// prefix")
        try:
            location = resolve_location(folder, self.settings.allowed_roots)
        except _PathNotAllowed as exc:
            raise E.PathNotAllowed(f"folder: {exc}") from None
        except FileNotFoundError:
            raise E.InvalidParameter(f"folder: does not exist: {folder!r}") from None
        except ObjectError as exc:
            raise E.InvalidParameter(f"folder: cannot read {folder!r}: {exc.message}") from None
        # A bucket prefix is a folder by definition; a server path must be one.
        if not is_object_uri(location) and not Path(location).is_dir():
            raise E.InvalidParameter(f"folder: not a folder: {folder!r}")
        spec = {"__folder__": location, "recursive": bool(body.get("recursive", True))}
        sheet = body.get("metadata_sheet")
        if sheet is not None:
            if not isinstance(sheet, str) or Path(sheet).suffix.lower() != ".csv":
                raise E.UnsupportedMediaType("metadata_sheet: give a .csv file with a file_name column")
            try:
                spec["metadata_sheet"] = str(resolve_within(sheet, self.settings.allowed_roots))
            except _PathNotAllowed as exc:
                raise E.PathNotAllowed(f"metadata_sheet: {exc}") from None
            except FileNotFoundError:
                raise E.InvalidParameter(f"metadata_sheet: does not exist: {sheet!r}") from None
        return spec

    def create(self, project_id: str, *, items: list[dict] | None = None, folder: dict | None = None,
               dataset: str = DEFAULT_DATASET, return_task_ids: bool = False, commit_to_project: bool = True,
               preannotated_from_fields: list[str] | None = None) -> int:
        """Record the import and submit its Ray job; answers the import's id.

        With ``commit_to_project=False`` the items are checked and staged, and become the project's
        only when :meth:`commit` is called (Label Studio's reimport)."""
        ds = self.datasets.ensure_dataset(project_id, dataset)
        payload_dir = self.settings.data_dir / "imports"
        payload_dir.mkdir(parents=True, exist_ok=True)
        payload = payload_dir / f"{secrets.token_hex(8)}.jsonl"
        rows = [folder] if folder is not None else items or []
        with open(payload, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        import_id = self.datasets.create_import(project_id, ds["dataset_id"], str(payload),
                                                len(items) if items is not None else -1, return_task_ids,
                                                commit_to_project=commit_to_project,
                                                preannotated_from_fields=preannotated_from_fields)
        run_id = f"rayproc-import-{import_id}-{secrets.token_hex(3)}"
        entrypoint = L.importer_entrypoint(db_path=self.settings.database, import_id=import_id,
                                           allowed_roots=self.settings.allowed_roots)
        try:
            with ray_errors():
                # The payload is a file in the head's data directory: the driver stays on the head.
                self.launcher.submit(run_id=run_id, entrypoint=entrypoint, metadata={
                    "rayproc_import_id": str(import_id), "rayproc_project_id": project_id,
                    "rayproc_dataset_id": ds["dataset_id"]}, env_vars=L.database_env(self.settings.database))
        except BaseException:
            self.datasets.delete_import(import_id)  # nothing half-imported
            payload.unlink(missing_ok=True)
            raise
        self.datasets.set_import_job(import_id, run_id)
        return import_id

    def get(self, project_id: str, import_id: str) -> dict:
        record = self.datasets.get_import(numeric_id(import_id, "import"), project_id)
        if record is None:
            raise E.NotFound(f"import {import_id} not found")
        if record["status"] in ACTIVE_IMPORT and record["ray_job_id"]:
            self._reconcile(record)
            record = self.datasets.get_import(int(import_id), project_id) or record
        return _import_view(record)

    def _reconcile(self, record: dict) -> None:
        try:
            state = self.read_launcher.state(record["ray_job_id"])
        except L.RayJobNotFound:
            state = L.RayJobState("FAILED", "Ray has no record of the import job")
        except (L.RayUnavailable, L.RayJobError):
            return
        if state.is_terminal():
            self.datasets.finish_import(record["import_id"], "failed",
                                        f"the import job ended ({state.status}) without finishing: "
                                        f"{ray_reason(state.message)}")

    def commit(self, project_id: str, import_ids: list[int]) -> dict:
        """Commit staged imports (Label Studio's reimport of their file uploads), all or none.

        Answers Label Studio's reimport shape: counts created, ``duration`` in whole seconds."""
        started = now_ms()
        try:
            created = self.datasets.commit_imports(project_id, import_ids)
        except ImportNotFound as exc:
            raise E.NotFound(str(exc)) from None
        except ImportNotStaged as exc:
            raise E.InvalidState(str(exc)) from None
        return {"task_count": created["task_count"], "annotation_count": created["annotation_count"],
                "prediction_count": created["prediction_count"],
                "duration": _whole_seconds(now_ms() - started), "file_upload_ids": list(dict.fromkeys(import_ids)),
                "found_formats": {}, "data_columns": []}

    # ----- datasets ----------------------------------------------------------------------

    def dataset(self, project_id: str, dataset_id: str) -> dict:
        E.validate_resource_id(dataset_id, "dataset")
        ds = self.datasets.dataset(project_id, dataset_id)
        if ds is None:
            raise E.NotFound(f"dataset {dataset_id!r} not found")
        return ds

    def version(self, project_id: str, dataset_id: str, version_id: str) -> dict:
        self.dataset(project_id, dataset_id)
        E.validate_resource_id(version_id, "version")
        version = self.datasets.version(dataset_id, version_id)
        if version is None:
            raise E.NotFound(f"version {version_id!r} not found in dataset {dataset_id!r}")
        return version

    def source_manifest(self, project_id: str, dataset_id: str, version_id: str | None) -> tuple[Path, dict | None]:
        """Write a dataset (or one of its versions) as a JSON Lines manifest a task can read."""
        self.dataset(project_id, dataset_id)
        version = self.version(project_id, dataset_id, version_id) if version_id else None
        out = self.settings.data_dir / "sources" / f"{dataset_id}-{version_id or 'head'}-{secrets.token_hex(4)}.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as fh:
            for line in manifest_lines(self.datasets.iter_items(dataset_id, version_id)):
                fh.write(line)
        return out, version


def manifest_lines(items) -> object:
    """Items as manifest lines: ``{"image", "label", "boxes", "item_id"}``; text-only items keep their id."""
    for item in items:
        row: dict = {"item_id": item["id"]}
        if item["image"]:
            row["image"] = item["image"]
        for key in ("label", "boxes"):
            if key in item["data"]:
                row[key] = item["data"][key]
        yield json.dumps(row, ensure_ascii=False) + "\n"


def _whole_seconds(ms: int) -> int:
    return math.ceil(max(0, ms) / 1000)


def _import_view(r: dict) -> dict:
    finished = r["finished_at"]
    staged = not r["commit_to_project"]
    view = {
        "id": r["import_id"],
        "project": r["project_id"],
        "dataset_id": r["dataset_id"],
        "status": r["status"],
        "total": r["total"] if r["total"] >= 0 else None,
        "task_count": r["task_count"],
        "annotation_count": r["annotation_count"],
        "prediction_count": r["prediction_count"],
        "failed_count": r["failed_count"],
        "failures": r["failures"][:MAX_FAILURES_SHOWN],
        # Whole seconds from the request to the last item recorded, queueing for Ray included.
        "duration": _whole_seconds(finished - r["created_at"]) if finished else None,
        "created_at": iso_time(r["created_at"]),
        "started_at": iso_time(r["started_at"]),
        "finished_at": iso_time(finished),
        "updated_at": iso_time(r["updated_at"]),
        "commit_to_project": not staged,
        "committed_at": iso_time(r["committed_at"]),
        "preannotated_from_fields": r["preannotated_from_fields"],
        # A staged import is committed by reimporting it: it is its own (only) file upload.
        "file_upload_ids": [r["import_id"]] if staged else [],
        "error": r["error"],
        "ray_job_id": r["ray_job_id"],
    }
    if r["task_ids"] is not None:
        view["task_ids"] = r["task_ids"]
    return view


def export_name(dataset_id: str, version: dict) -> str:
    return f"{dataset_id}-{version['name']}.jsonl"
