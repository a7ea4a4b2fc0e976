"""The analysis report, opened in a real headless browser; and run logs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serve_app.report import BAR
from tests.conftest import Service

pytestmark = pytest.mark.ray
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def analysed(service: Service) -> dict:
    from tests.support.dataset import make_dataset

    folder = service.root / "inputs" / "report-dataset"
    make_dataset(folder)
    task_id = service.create(folder, name="report")
    return service.wait_status(task_id, 2, allowed={0, 1})


def test_report_page_and_chart_files(service: Service, analysed: dict) -> None:
    r = service.client.get(f"{service.tasks()}/{analysed['task_id']}/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert page.count("class='chart'") == len(analysed["result"]["features"])
    assert "Worst dark" in page and "dark.png" in page
    charts = Path(analysed["work_path"]["output_path"]) / "report"
    assert {p.stem for p in charts.glob("*.png")} >= {"brightness", "blur_score", "entropy"}
    with Image.open(charts / "brightness.png") as img:
        assert img.size == (480, 240)


def test_report_needs_a_completed_analysis_task(service: Service, folder: Path) -> None:
    from tests.support.images import make_many

    make_many(folder, 2)
    task_id = service.create(folder, template={"id": "sys_data_selection"})
    service.wait_status(task_id, 2, allowed={0, 1})
    r = service.client.get(f"{service.tasks()}/{task_id}/report")
    assert r.status_code == 400 and r.json()["error_code"] == "invalid_state"


def test_logs_of_a_run(service: Service, analysed: dict) -> None:
    r = service.client.get(f"{service.tasks()}/{analysed['task_id']}/logs")
    assert r.status_code == 200 and "finished: completed" in r.text
    assert service.client.get(f"{service.tasks()}/{analysed['task_id']}/logs?run=2").status_code == 404


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
def test_charts_render_in_a_headless_browser(service: Service, analysed: dict, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(service.client.get(f"{service.tasks()}/{analysed['task_id']}/report").text)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,1400",
         "--hide-scrollbars", page.as_uri()],
        check=True, capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    bars = (np.abs(pixels - np.array(BAR)).sum(axis=2) <= 30)
    assert bars.sum() > 5_000, "no chart bars were drawn on the page"
    rows_with_bars = np.nonzero(bars.any(axis=1))[0]
    assert rows_with_bars.max() - rows_with_bars.min() > 200  # several charts, not one stray mark
