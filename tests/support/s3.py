"""An S3-compatible server for tests: moto's standalone server on a loopback port.

:func:`configure_env` points the standard AWS variables at it before anything (the Ray
cluster, job drivers, workers) starts, so every process reaches the same store by
configuration alone, as it would reach MinIO, OBS or S3.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.cluster import free_port

#: The bucket the test service allows; OUTSIDE_BUCKET exists but is not an allowed root; ABSENT_BUCKET is an
#: allowed root that does not exist.
BUCKET = "rayproc-data"
OUTSIDE_BUCKET = "rayproc-elsewhere"
ABSENT_BUCKET = "rayproc-absent"
#: A fake key pair: moto accepts any.
ACCESS_KEY, SECRET_KEY = "testing-access-key", "testing-secret-key-never-logged"


def configure_env(port: int) -> None:
    os.environ.update({
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    })


@contextmanager
def moto_server(port: int, *, start_timeout: float = 30.0) -> Iterator[str]:
    """Run ``python -m moto.server`` on ``127.0.0.1:port`` until the block ends; yields its URL."""
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {proc.returncode}")
            try:
                httpx.get(f"{url}/moto-api/", timeout=1.0)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto server did not answer on {url} within {start_timeout} s") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def s3_client():
    import boto3

    return boto3.client("s3")


def upload_folder(folder: Path, bucket: str, prefix: str) -> list[str]:
    """Every file under ``folder`` as ``s3://bucket/prefix/<relative path>``; returns the relative keys."""
    client = s3_client()
    keys = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        client.put_object(Bucket=bucket, Key=f"{prefix}/{rel}", Body=path.read_bytes())
        keys.append(rel)
    return keys
