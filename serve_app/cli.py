"""``rayproc`` command line."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

from jobs.db import redact
from serve_app.settings import LOOPBACK_HOSTS, Settings


#: ``rayproc serve``'s exit status when its Ray cluster went away (a supervisor restarts it: Restart=on-failure).
EXIT_RAY_LOST = 3


@click.group()
def main() -> None:
    """rayproc: image-dataset processing on a Ray cluster."""


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTP port (default 8000).")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Database and default work paths (default ~/.rayproc).")
@click.option("--ray-address", default=None, help="Join this Ray cluster instead of starting a local one.")
@click.option("--no-auth", is_flag=True, default=False,
              help="Development mode: no API tokens, every caller is an admin. Loopback addresses only.")
def serve(host: str | None, port: int | None, data_dir: Path | None, ray_address: str | None,
          no_auth: bool) -> None:
    """Start the service (and a local Ray head unless a cluster address is configured)."""
    overrides = {k: v for k, v in {"host": host, "port": port, "data_dir": data_dir,
                                   "ray_address": ray_address}.items() if v is not None}
    if no_auth:
        overrides["auth_enabled"] = False
    settings = Settings(**overrides)
    if not settings.auth_enabled and settings.host not in LOOPBACK_HOSTS:
        raise click.UsageError(
            f"refusing to bind {settings.host} without authentication: the no-auth development mode "
            "only listens on loopback addresses (127.0.0.1, ::1)")
    from serve_app import deployment
    from serve_app.private_files import FilesNotPrivate

    done = threading.Event()

    def on_signal(*_: object) -> None:
        done.set()

    # Installed before Ray starts, so Ctrl+C during start-up also shuts down cleanly.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    click.echo("starting Ray and the rayproc service ...", err=True)
    try:
        running = deployment.start(settings)
    except (deployment.LocalHeadConflict, FilesNotPrivate) as exc:
        raise click.ClickException(str(exc)) from None
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    click.echo(f"rayproc is serving at   {running.url}")
    click.echo(f"OpenAPI docs:           {running.docs_url}")
    click.echo(f"Ray dashboard:          {running.dashboard_url}")
    click.echo(f"database:               {redact(running.settings.database)}")
    click.echo(f"allowed roots:          {', '.join(running.settings.allowed_roots)}")
    if not running.settings.auth_enabled:
        click.echo("authentication:         DISABLED (development mode; every caller is an admin)")
    elif running.initial_token_file is not None:
        click.echo(f"authentication:         on; the first admin token is in {running.initial_token_file}")
        click.echo("                        (readable by you only): print it once with `rayproc initial-token`")
    else:
        click.echo("authentication:         on (Authorization: Token <token>)")
    click.echo("press Ctrl+C to stop", err=True)
    watch = deployment.RayWatch(running.gcs_address, running.settings.host, running.settings.port)
    while not done.wait(deployment.WATCH_INTERVAL_SECONDS):
        if watch.lost():
            click.echo(f"rayproc: lost the Ray cluster at {running.gcs_address} (it stopped or restarted; the API "
                       f"went with it). Exiting with status {EXIT_RAY_LOST} so that a supervisor starts the "
                       "service again; records are kept and settled on the next start.", err=True)
            # Not ray.shutdown(): with the cluster gone it can wait for good on a GCS that never answers.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(EXIT_RAY_LOST)
    click.echo("shutting down ...", err=True)
    deployment.stop()
    sys.exit(0)


def _accounts(data_dir: Path | None):
    from serve_app.accounts import Accounts

    settings = Settings(**({"data_dir": data_dir} if data_dir else {})).resolved()
    return Accounts(settings.database), settings


data_dir_option = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                               help="The service's data directory (default ~/.rayproc).")


def _run(fn) -> None:
    from serve_app.accounts import AccountError

    try:
        fn()
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None


@main.command("initial-token")
@data_dir_option
def initial_token(data_dir: Path | None) -> None:
    """Print the first admin token once, then delete the file that held it."""
    _, settings = _accounts(data_dir)
    path = settings.initial_token_file
    if not path.exists():
        raise click.ClickException(f"{path} does not exist: the token was already read (issue a new one with "
                                   "`rayproc tokens create admin`)")
    click.echo(path.read_text().strip())
    path.unlink()


@main.group()
def users() -> None:
    """Manage users."""


@users.command("create")
@click.argument("name")
@click.option("--admin", is_flag=True, help="A service administrator.")
@data_dir_option
def users_create(name: str, admin: bool, data_dir: Path | None) -> None:
    accounts, _ = _accounts(data_dir)
    _run(lambda: accounts.create_user(name, is_admin=admin))
    click.echo(f"created user {name}{' (admin)' if admin else ''}")


@users.command("list")
@data_dir_option
def users_list(data_dir: Path | None) -> None:
    accounts, _ = _accounts(data_dir)
    for user in accounts.users():
        click.echo(f"{user['name']}{'  admin' if user['is_admin'] else ''}")


@main.group()
def projects() -> None:
    """Manage projects and their members."""


@projects.command("create")
@click.argument("project_id")
@click.option("--name", default="")
@data_dir_option
def projects_create(project_id: str, name: str, data_dir: Path | None) -> None:
    from serve_app.errors import ServiceError, validate_resource_id

    try:
        validate_resource_id(project_id, "project")
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    accounts, _ = _accounts(data_dir)
    _run(lambda: accounts.create_project(project_id, name))
    click.echo(f"created project {project_id}")


@projects.command("add-member")
@click.argument("project_id")
@click.argument("user")
@click.option("--role", type=click.Choice(["viewer", "member"]), default="member", show_default=True)
@data_dir_option
def projects_add_member(project_id: str, user: str, role: str, data_dir: Path | None) -> None:
    accounts, _ = _accounts(data_dir)
    _run(lambda: accounts.set_role(project_id, user, role))
    click.echo(f"{user} is now {role} of {project_id}")


@projects.command("remove-member")
@click.argument("project_id")
@click.argument("user")
@data_dir_option
def projects_remove_member(project_id: str, user: str, data_dir: Path | None) -> None:
    accounts, _ = _accounts(data_dir)
    _run(lambda: accounts.remove_member(project_id, user))
    click.echo(f"{user} removed from {project_id}")


@main.group()
def tokens() -> None:
    """Issue, list and revoke API tokens."""


@tokens.command("create")
@click.argument("user")
@click.option("--name", default="", help="A label to recognise the token by.")
@data_dir_option
def tokens_create(user: str, name: str, data_dir: Path | None) -> None:
    """Issue a token and print it (only this once) on standard output."""
    accounts, _ = _accounts(data_dir)
    result: list = []
    _run(lambda: result.append(accounts.issue_token(user, name)))
    token_id, token = result[0]
    click.echo(f"token id {token_id} for {user} (shown once; store it now):", err=True)
    click.echo(token)


@tokens.command("list")
@data_dir_option
def tokens_list(data_dir: Path | None) -> None:
    accounts, _ = _accounts(data_dir)
    for t in accounts.tokens():
        click.echo(f"{t['token_id']}  {t['user']:<20} {'revoked' if t['revoked'] else 'active '}  {t['name']}")


@tokens.command("revoke")
@click.argument("token_id")
@data_dir_option
def tokens_revoke(token_id: str, data_dir: Path | None) -> None:
    accounts, _ = _accounts(data_dir)
    _run(lambda: accounts.revoke_token(token_id))
    click.echo(f"revoked {token_id}")


@main.command("sample-images")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--count", type=click.IntRange(1, 1_000_000), default=200, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def sample_images(folder: Path, count: int, seed: int) -> None:
    """Write COUNT small synthetic PNGs (noise at random levels, so some dark; every fifth blurred) to FOLDER to
    try rayproc on. The blurred ones are of middle brightness, so that each is blurry and nothing else."""
    import numpy as np
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        blurred = i % 5 == 1
        level = int(rng.integers(60, 200)) if blurred else int(rng.integers(20, 236))
        arr = np.clip(rng.normal(level, 40, (96, 128, 3)), 0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "RGB")
        if blurred:
            img = img.filter(ImageFilter.GaussianBlur(4))
        img.save(folder / f"sample_{i:06d}.png")
    click.echo(f"wrote {count} images to {folder.resolve()}")


def _add_user_commands() -> None:
    from rayproc_client.cli import COMMANDS

    for command in COMMANDS:
        main.add_command(command)


_add_user_commands()


if __name__ == "__main__":
    main()
