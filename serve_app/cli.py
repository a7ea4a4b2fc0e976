"""``rayproc`` command line."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from serve_app.settings import LOOPBACK_HOSTS, Settings


@click.group()
def main() -> None:
    """rayproc: image-dataset processing on a Ray cluster."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTP port (default 8000).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Database and default work paths (default ~/.rayproc).")
@click.option("--ray-address", default=None, help="Join this Ray cluster instead of starting a local one.")
def serve(host: str | None, port: int | None, data_dir: Path | None, ray_address: str | None) -> None:
    """Start the service (and a local Ray head unless a cluster address is configured)."""
    overrides = {k: v for k, v in {"host": host, "port": port, "data_dir": data_dir,
                                   "ray_address": ray_address}.items() if v is not None}
    settings = Settings(**overrides)
    if settings.host not in LOOPBACK_HOSTS:
        raise click.UsageError(
            f"refusing to bind {settings.host}: this release has no API authentication, so it only "
            "listens on loopback addresses (127.0.0.1, ::1)")
    from serve_app import deployment

    done = threading.Event()

    def on_signal(*_: object) -> None:
        done.set()

    # Installed before Ray starts, so Ctrl+C during start-up also shuts down cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    click.echo("starting Ray and the rayproc service ...", err=True)
    try:
        running = deployment.start(settings)
    except deployment.LocalHeadConflict as exc:
        raise click.ClickException(str(exc)) from None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    click.echo(f"rayproc is serving at   {running.url}")
    click.echo(f"OpenAPI docs:           {running.docs_url}")
    click.echo(f"Ray dashboard:          {running.dashboard_url}")
    click.echo(f"database:               {running.settings.db_path}")
    click.echo(f"allowed roots:          {', '.join(running.settings.allowed_roots)}")
    click.echo("press Ctrl+C to stop", err=True)
    done.wait()
    click.echo("shutting down ...", err=True)
    deployment.stop()
    sys.exit(0)


@main.command("sample-images")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(1, 1_000_000), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def sample_images(folder: Path, count: int, seed: int) -> None:
    """Write COUNT small synthetic PNGs (some dark, some bright, some blurred) to FOLDER to try rayproc on."""
    import numpy as np
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        level = int(rng.integers(20, 236))
        arr = np.clip(rng.normal(level, 40, (96, 128, 3)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "RGB")
        if i % 5 == 1:
            img = img.filter(ImageFilter.GaussianBlur(4))
        img.save(folder / f"sample_{i:06d}.png")
    click.echo(f"wrote {count} images to {folder.resolve()}")


if __name__ == "__main__":
    main()
