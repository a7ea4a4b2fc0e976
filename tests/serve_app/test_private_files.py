"""The service's secrets on disk are readable by its user only: data directory 0700, database and Ray's cluster
token 0600, made so at start; a start that cannot make them so is refused with a clear message."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from serve_app.cli import main
from serve_app.private_files import FilesNotPrivate, protect_ray_token, protect_state, ray_token_file
from tests.conftest import Service
from tests.support.filesystems import needs_root, remount, small_tmpfs


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _world_readable_state(root: Path) -> tuple[Path, Path]:
    data = root / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    db = data / "rayproc.db"
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.write_bytes(b"x")
        os.chmod(path, 0o644)
    return data, db


@pytest.mark.ray
def test_the_service_started_with_its_data_directory_database_and_ray_token_private(service: Service) -> None:
    assert _mode(service.data_dir) == 0o700
    db = service.settings.db_path
    assert _mode(db) == 0o600
    token = ray_token_file()
    assert token is not None and token.exists(), "the test cluster runs with Ray's token auth"
    assert _mode(token) == 0o600
    if token.parent == Path.home() / ".ray":
        assert _mode(token.parent) & 0o077 == 0


def test_world_readable_state_is_made_private(tmp_path: Path) -> None:
    data, db = _world_readable_state(tmp_path)
    extra = tmp_path / "initial-admin-token"
    extra.write_text("secret")
    os.chmod(extra, 0o644)
    changed = protect_state(data, db, [extra, tmp_path / "absent"])
    assert _mode(data) == 0o700
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm"), extra):
        assert _mode(path) == 0o600, path
    assert set(changed) == {data, db, Path(f"{db}-wal"), Path(f"{db}-shm"), extra}
    assert protect_state(data, db, [extra]) == []  # already private: nothing to change


def test_ray_token_file_is_made_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = tmp_path / "ray-token"
    token.write_text("t")
    os.chmod(token, 0o644)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token))
    assert protect_ray_token() == [token]
    assert _mode(token) == 0o600


def test_a_symlinked_database_is_refused(tmp_path: Path) -> None:
    data, db = _world_readable_state(tmp_path)
    db.unlink()
    db.symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(FilesNotPrivate, match="symbolic link"):
        protect_state(data, db)


@needs_root
def test_state_owned_by_another_account_is_refused_and_rayproc_serve_says_why(tmp_path: Path) -> None:
    data, db = _world_readable_state(tmp_path)
    os.chown(db, 65534, 65534)  # nobody
    with pytest.raises(FilesNotPrivate, match="belongs to another account"):
        protect_state(data, db)
    # The command refuses before starting Ray, with the reason and a non-zero status.
    outcome = CliRunner().invoke(main, ["serve", "--data-dir", str(data), "--port", "1"])
    assert outcome.exit_code == 1, outcome.output
    assert "refusing to start" in outcome.output and str(db) in outcome.output
    assert "Traceback" not in outcome.output


@needs_root
def test_state_on_a_file_system_that_cannot_change_it_is_refused(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "mnt") as mnt:
        data, db = _world_readable_state(mnt)
        remount(mnt, "ro")
        try:
            with pytest.raises(FilesNotPrivate, match="cannot be made private") as refused:
                protect_state(data, db)
            assert str(data) in str(refused.value) and "0700" in str(refused.value)
        finally:
            remount(mnt, "rw")
