"""The one place that reads configuration (``RAYPROC_*`` environment variables)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from jobs.db import is_database_url
from jobs.storage import is_object_uri, normalise

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Settings(BaseSettings):
    """Service settings. Every field can be set as ``RAYPROC_<FIELD>`` in the environment."""

    # hide_input_in_errors: a refused database_url must not be echoed with its password.
    model_config = SettingsConfigDict(env_prefix="RAYPROC_", extra="forbid", hide_input_in_errors=True)

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".rayproc",
                           description="Holds the SQLite database and default work paths.")
    ray_address: str | None = Field(None, description="Existing cluster to join (e.g. 'auto'); unset starts a local head.")
    dashboard_url: str = Field("http://127.0.0.1:8265", description="Ray dashboard / Jobs API address.")
    dashboard_public_url: str | None = Field(
        None, description="The Ray dashboard's address as admins reach it, for the links in tasks' runs "
                          "(default: dashboard_url).")
    dashboard_port: int = Field(8265, ge=1, le=65535, description="Port of a locally started Ray head's dashboard.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    allowed_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated folders, and s3://bucket[/prefix] (or obs://) locations, that sources "
                    "and work paths must lie under. Default: the data directory and the directory the service "
                    "was started from.")
    operator_plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated modules that register extra operators.")
    auth_enabled: bool = Field(True, description="Require API tokens. False is a development mode, "
                                                 "allowed only on a loopback address.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest accepted request body.")
    max_import_bytes: int = Field(64 * 1_048_576, ge=1024, description="Largest accepted import body or file.")
    max_import_items: int = Field(1_000_000, ge=1, description="Most items in one import request.")
    default_chunk_size: int = Field(32, ge=1, le=10_000, description="Items per Ray task.")
    stop_grace_seconds: float = Field(10.0, ge=1.0, le=600.0,
                                      description="How long a stopped run may take to commit chunks in flight.")
    reconcile_interval_seconds: float = Field(2.0, gt=0, le=300)
    max_running_tasks: int | None = Field(
        None, ge=1, le=10_000,
        description="Most runs handed to Ray at once, cluster-wide; more wait in the queue. Default: the cluster's "
                    "CPU count (a small task runs inside its driver on one CPU, so fewer leaves CPUs idle, while "
                    "more only starts more job drivers than the cluster runs at once).")
    max_running_per_project: int | None = Field(
        None, ge=1, le=10_000, description="Most runs handed to Ray at once for one project. Default: no limit "
                                           "beyond the cluster's.")
    dispatch_interval_seconds: float = Field(
        1.0, gt=0, le=300, description="How often queued runs are looked at besides creates, resumes and stops "
                                       "(slots also free when runs end).")
    max_run_attempts: int = Field(
        3, ge=1, le=20, description="Runs a task gets in all after infrastructure failures (job_died, "
                                    "cluster_error, ray_unavailable) before it stays failed; 1 never retries.")
    retry_backoff_seconds: float = Field(
        5.0, ge=0, le=3600, description="Wait before the first automatic retry; it doubles for each later one, "
                                        "up to retry_backoff_max_seconds.")
    retry_backoff_max_seconds: float = Field(300.0, ge=0, le=86_400)
    ray_call_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Deadline of a Jobs API call that changes something (submit, stop); "
                                        "one that passes it answers 503.")
    ray_read_timeout_seconds: float = Field(
        0.5, gt=0, le=60, description="Deadline of a Jobs API call made to answer a read (a task's or a list's "
                                      "status, logs, /healthz); past it the read answers from the database and "
                                      "the background pass settles the record.")
    ray_job_retention_seconds: float = Field(
        86_400.0, ge=0, description="How long after a run ended its Ray job record is deleted (Ray keeps every "
                                    "record for good, which slows its dashboard); the run's log is kept under "
                                    "the task's work path first. 0 deletes it as soon as the log is kept.")
    archive_interval_seconds: float = Field(
        30.0, gt=0, le=3600, description="How often ended runs' logs are kept and old Ray job records deleted.")
    metrics_interval_seconds: float = Field(
        5.0, gt=0, le=300, description="How often the metrics read from the database (tasks by status, queue "
                                       "depth, ended runs, items) are refreshed for Ray's metrics export.")
    log_follow_max_seconds: float = Field(
        3600.0, gt=0, le=86_400, description="Longest a followed log (GET .../logs?follow=true) streams; the "
                                             "client asks again to go on.")
    log_follow_max_bytes: int = Field(
        16 * 1_048_576, ge=1024, description="Most bytes one followed log stream sends (what a slow reader "
                                             "can leave queued in the service is bounded by it).")
    max_ongoing_requests: int = Field(64, ge=1, le=10_000,
                                      description="Requests the API replica serves at once.")
    cluster_address: str | None = Field(
        None, description="GCS address of the cluster the job drivers must join (set by `rayproc serve` from "
                          "the cluster it started or joined), so a driver never joins another Ray on its host.")
    idempotency_ttl_seconds: float = Field(86_400.0, ge=60, description="How long a create's Idempotency-Key "
                                           "and its answer are kept (per project).")
    database_url: SecretStr | None = Field(
        None, description="postgresql://user:password@host:port/dbname: keep every record in this PostgreSQL "
                          "database (created and upgraded at start) instead of the SQLite file in the data "
                          "directory; then job drivers may run on any node. Never logged or shown.")
    api_replicas: int = Field(1, ge=1, le=64, description="Serve replicas of the API; more than 1 needs "
                                                          "database_url (replicas on several nodes share it).")

    @field_validator("database_url")
    @classmethod
    def _postgres_only(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not is_database_url(value.get_secret_value()):
            raise ValueError("database_url must be a postgresql:// URL")  # the value is not echoed: a secret
        return value

    @model_validator(mode="after")
    def _replicas_need_postgres(self) -> Settings:
        if self.api_replicas > 1 and self.database_url is None:
            raise ValueError(f"api_replicas={self.api_replicas} needs RAYPROC_DATABASE_URL (PostgreSQL): "
                             "replicas cannot share the embedded SQLite file; set it or use one replica")
        return self

    @field_validator("allowed_roots", "operator_plugins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @property
    def db_path(self) -> Path:
        return self.data_dir / "rayproc.db"

    @property
    def database(self) -> str:
        """What every table set opens (see :class:`jobs.db.Database`): the PostgreSQL URL, else the SQLite file."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return str(self.db_path)

    @property
    def initial_token_file(self) -> Path:
        return self.data_dir / "initial-admin-token"

    @property
    def default_work_root(self) -> Path:
        return self.data_dir / "work"

    def resolved(self) -> Settings:
        """Absolute paths and default roots filled in, ready to hand to another process."""
        data_dir = self.data_dir.expanduser().resolve()
        roots = self.allowed_roots or [str(data_dir), os.getcwd()]
        roots = [normalise(r) if is_object_uri(r) else str(Path(r).expanduser().resolve()) for r in roots]
        if not any(data_dir == Path(r) or Path(r) in data_dir.parents for r in roots):
            roots.append(str(data_dir))  # the service writes work paths and source manifests there
        return self.model_copy(update={"data_dir": data_dir, "allowed_roots": roots})
