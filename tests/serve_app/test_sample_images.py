"""`rayproc sample-images` writes what its help text promises, and the default analysis finds it."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from serve_app.cli import main
from tests.support.dataset import run_direct


def test_every_blurred_sample_is_flagged_blurry_and_no_other(tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    outcome = CliRunner().invoke(main, ["sample-images", str(folder), "--count", "40"])
    assert outcome.exit_code == 0, outcome.output
    assert "every fifth blurred" in " ".join(main.commands["sample-images"].help.split())
    result, files, _ = run_direct(folder, "sys_data_analyse", [], tmp_path / "out")
    blurry = {row["item"] for row in files["issues.jsonl"] if "blurry" in row["issues"]}
    assert blurry == {f"sample_{i:06d}.png" for i in range(40) if i % 5 == 1}
    assert result["issues"]["counts"]["dark"] > 0
