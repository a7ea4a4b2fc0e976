"""Task reports: drawn from fixtures with known properties, checked in the page, in a real headless browser
(what the DOM holds and what the pixels show), over bucket sources; and run logs."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from serve_app import report
from serve_app.report import BAR, CHART_SIZE, MAX_GROUPS, WORST_PER_ISSUE
from serve_app.report.charts import fmt, nice_ticks
from tests.conftest import Service
from tests.support import images, s3
from tests.support.dataset import make_dataset, run_direct

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)")
#: The colour of the background of tests.support.dataset.scene(): only the near-duplicate pictures have it.
SCENE_BLUE = np.array([90, 120, 160])
#: make_dataset's items that are read and have at least one issue.
FLAGGED = 9


# ----- helpers ----------------------------------------------------------------------------------------------


def direct_task(folder: Path, template: str, operator_params: list[dict], out: Path, name: str = "t",
                source: Path | None = None) -> dict:
    """A task view as the service hands it to the report, for a template run in-process (no Ray)."""
    result, files, records = run_direct(folder, template, operator_params, out, source=source)
    # What the assembly writes: the readable items' records, the failed ones, and the operators' files.
    with open(out / "features.jsonl", "w") as ok, open(out / "failures.jsonl", "w") as failed:
        for record in records:
            (ok if record["status"] == "ok" else failed).write(json.dumps(record, default=str) + "\n")
    for file_name, rows in files.items():
        (out / file_name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    result["failed_items"] = [{k: r[k] for k in ("item", "error_code", "error_msg")} for r in records
                              if r["status"] != "ok"]
    result["outputs"] = {"features": "features.jsonl", "failures": "failures.jsonl",
                         **{n.rsplit(".", 1)[0]: n for n in files}}
    return {"task_id": "t-1", "name": name, "template": {"id": template, "operator_params": operator_params},
            "work_path": {"output_path": str(out)}, "result": result, "create_time": 1_764_600_000_000,
            "duration_seconds": 3.5, "data_source": {"type": "OBS", "source": str(folder)}}


class Figures(HTMLParser):
    """Each thumbnail figure in a page (enclosing section id, item, img src or None), and the text inside
    each element that has an id."""

    VOID = {"img", "br", "meta", "hr", "input", "link"}

    def __init__(self) -> None:
        super().__init__()
        self.figures: list[dict] = []
        self.text: dict[str, str] = {}
        self._open: list[tuple[str, str]] = []  # (tag, id) of the elements we are inside

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "figure":
            sections = [ident for t, ident in self._open if t == "section"]
            self.figures.append({"section": sections[-1] if sections else "", "item": a["data-item"], "src": None})
        if tag == "img" and "thumb" in (a.get("class") or "") and self.figures:
            self.figures[-1]["src"] = a["src"]
        if tag not in self.VOID:
            self._open.append((tag, a.get("id") or ""))
            if a.get("id"):
                self.text.setdefault(a["id"], "")

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, ident in self._open:
            if ident:
                self.text[ident] += data


def parse(page: str) -> Figures:
    parser = Figures()
    parser.feed(page)
    return parser


def decoded(src: str) -> np.ndarray:
    head, data = src.split(",", 1)
    assert head == "data:image/jpeg;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")).astype(int)


def browse(page_html: str, tmp_path: Path, height: int = 4200) -> tuple[str, np.ndarray]:
    """The page opened in headless Chromium, offline: its DOM as parsed, and a screenshot's pixels."""
    page = tmp_path / "report.html"
    page.write_text(page_html, encoding="utf-8")
    shot = tmp_path / "shot.png"
    common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars", f"--window-size=1280,{height}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    subprocess.run([*common, f"--screenshot={shot}", page.as_uri()], check=True, capture_output=True, timeout=120)
    return dom, np.asarray(Image.open(shot).convert("RGB")).astype(int)


def dark_blocks(pixels: np.ndarray, w: int = 80, h: int = 56) -> int:
    """How many disjoint w x h windows are at least 95% near-black (a dark thumbnail; text is too thin)."""
    mask = (pixels.max(axis=2) < 40).astype(np.int64)
    s = np.pad(mask.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    sums = s[h:, w:] - s[:-h, w:] - s[h:, :-w] + s[:-h, :-w]
    hits = np.argwhere(sums >= 0.95 * w * h)
    found: list[tuple[int, int]] = []
    for y, x in hits:
        if all(abs(y - fy) >= h or abs(x - fx) >= w for fy, fx in found):
            found.append((int(y), int(x)))
    return len(found)


def blue_columns(pixels: np.ndarray) -> list[tuple[int, int]]:
    """Runs of screen columns holding the scene's blue background (each run: one drawn thumbnail)."""
    mask = (np.abs(pixels - SCENE_BLUE).max(axis=2) <= 24)
    cols = mask.sum(axis=0) >= 15
    runs, start = [], None
    for x, on in enumerate([*cols, False]):
        if on and start is None:
            start = x
        elif not on and start is not None:
            runs.append((start, x))
            start = None
    return [r for r in runs if r[1] - r[0] >= 30]


# ----- the page, drawn in-process from fixtures with known properties (no Ray) ----------------------------


def test_headline_thresholds_and_worst_examples(tmp_path: Path) -> None:
    props = make_dataset(tmp_path / "ds")
    task = direct_task(tmp_path / "ds", "sys_data_analyse", [], tmp_path / "out")
    page = report.render(task, tmp_path / "ds")
    doc = parse(page)
    headline = doc.text["headline"]
    assert "15 of 16 items read (93.8%), 1 unreadable (6.2%)." in headline
    assert f"{FLAGGED} images (60.0% of those read) have at least one issue" in headline
    assert "1 dark" in headline and "2 exact_duplicates" in headline
    assert FLAGGED == sum(p not in ("normal", "corrupt") for p in props.values())
    # Each issue says its threshold and which side is flagged; the known item is its worst example.
    assert "score < 0.32" in doc.text["issues"]
    assert "below 0.32" in doc.text["issue-dark"]
    by_section = {}
    for f in doc.figures:
        by_section.setdefault(f["section"], []).append(f)
    for issue, item in (("dark", "dark.png"), ("light", "light.png"), ("blurry", "blurry.png"),
                        ("odd_aspect_ratio", "wide.png"), ("grayscale", "gray.png")):
        figures = by_section[f"issue-{issue}"]
        assert [f["item"] for f in figures] == [item]
        assert figures[0]["src"] is not None
    assert decoded(by_section["issue-dark"][0]["src"]).mean() < 30  # the thumbnail is of the dark image
    assert decoded(by_section["issue-light"][0]["src"]).mean() > 220
    # Duplicate groups as strips, with the members of each known group.
    assert [f["item"] for f in by_section["issue-exact_duplicates"]] == ["dup_a.png", "dup_b.png"]
    assert [f["item"] for f in by_section["issue-near_duplicates"]] == ["near_a.png", "near_b.jpg"]
    # Parameters in force, links to the run's files, the unreadable file and why.
    assert "truncated" in doc.text["failures"] and "broken.png" in page
    assert "href='files/features.jsonl'" in page and "href='files/issues.jsonl'" in page
    assert "href='files/failures.jsonl'" in page
    assert "<script" not in page and "http://" not in page and "https://" not in page


def test_augmentation_report_shows_the_steps_and_each_original_beside_its_copies(tmp_path: Path) -> None:
    make_dataset(tmp_path / "ds")
    steps = [{"name": "hflip", "probability": 1.0}]
    task = direct_task(tmp_path / "ds", "sys_data_augmentation",
                       [{"id": "data_augmentation", "params": {"steps": steps, "copies": 2}}], tmp_path / "out")
    doc = parse(report.render(task, tmp_path / "ds", operators=[
        ("data_augmentation", {"steps": steps, "copies": 2})]))
    assert "Made 30 augmented images from 15 items (2 per item); 0 boxes dropped" in doc.text["headline"]
    assert "hflip" in doc.text["steps"]
    strips = [doc.figures[i:i + 3] for i in range(0, len(doc.figures), 3)]
    assert len(strips) == report.MAX_AUGMENTED_SHOWN  # capped: 15 originals made copies
    for original, *copies in strips:
        assert not original["item"].startswith("augmented/")
        assert [c["item"] for c in copies] == [f"augmented/{Path(original['item']).stem}__aug{i}.png"
                                               for i in range(2)]
        # The copies are drawn from the output folder, and they are the original mirrored.
        assert original["src"] is not None and all(c["src"] is not None for c in copies)
        before, after = decoded(original["src"]), decoded(copies[0]["src"])
        assert np.abs(after - before[:, ::-1]).mean() < 0.5 * np.abs(after - before).mean()


def test_charts_fit_the_data_and_a_constant_feature_is_a_sentence(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    # Brightness 0.39 .. 0.55 only: the stored histogram's fixed 0..1 range would squash it into a few bins.
    for i, level in enumerate(range(100, 141, 4)):
        images.save(images.flat(level, size=(128, 96)), folder / f"flat_{i:02d}.png")
    task = direct_task(folder, "sys_data_analyse", [{"id": "image_features", "params": {}}], tmp_path / "out")
    stored = task["result"]["features"]["brightness"]["histogram"]["counts"]
    assert sum(1 for c in stored if c) <= 4
    page = report.render(task, folder)
    n = len(list(folder.iterdir()))
    assert f"size: all {n} images are 128 x 96 px" in page
    assert "alt='width histogram'" not in page and "alt='height histogram'" not in page
    chart = tmp_path / "out" / report.REPORT_DIR / "brightness.png"
    pixels = np.asarray(Image.open(chart).convert("RGB")).astype(int)
    bar_columns = np.flatnonzero((np.abs(pixels - np.array(BAR)).sum(axis=2) <= 30).any(axis=0))
    # Over the data's own range the bars reach from the left end of the plot to the right end.
    assert bar_columns.max() - bar_columns.min() > 0.8 * (CHART_SIZE[0] - 68)
    assert pixels.shape[:2] == (CHART_SIZE[1], CHART_SIZE[0])


def test_axis_numbers_are_readable() -> None:
    assert nice_ticks(0.0423, 0.978) == [0.2, 0.4, 0.6, 0.8]
    assert nice_ticks(0, 13_496, 5) == [0, 2000, 4000, 6000, 8000, 10_000, 12_000]
    assert fmt(48_213 / 1024, "KB") == "47.1 KB" and fmt(13496.2) == "13,496" and fmt(128.0, "px") == "128 px"


def test_hostile_names_are_escaped_and_nothing_loads_from_outside(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    hostile = "'><script>alert(1)<img src=x onerror=alert(2)>\"&amp;.png"  # a file name holds no '/'
    images.save(images.flat(3), folder / hostile)
    images.save(images.flat(3), folder / "copy of it.png")  # an exact duplicate: the name shows in a strip too
    images.save(images.noise(1), folder / "plain.png")
    task = direct_task(folder, "sys_data_analyse", [], tmp_path / "out", name="<b onmouseover=x>name</b>")
    page = report.render(task, folder)
    assert "<script" not in page and "<img src=x" not in page
    assert "<b onmouseover" not in page
    assert page.count(report.esc(hostile)) >= 3  # worst dark example, duplicate strip, caption text
    doc = parse(page)
    assert hostile in [f["item"] for f in doc.figures if f["section"] == "issue-dark"]
    assert "http://" not in page and "https://" not in page and "src='/" not in page


def test_the_page_stays_bounded_for_a_huge_dataset(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    n = 20_000
    with open(out / "issues.jsonl", "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"item": f"img_{i:06d}.png", "issues": ["dark", "blurry"],
                                 "scores": {"dark": (i * 7919 % n) / n, "blurry": 0.5}}) + "\n")
    with open(out / "features.jsonl", "w") as fh:
        for i in range(n):
            fh.write(json.dumps({"item": f"img_{i:06d}.png", "width": 64 + i % 50, "brightness": i / n}) + "\n")
    groups = [[f"img_{2 * g:06d}.png", f"img_{2 * g + 1:06d}.png"] for g in range(100)]
    stats = {"count": n, "min": 0.0, "max": (n - 1) / n, "median": 0.5, "mean": 0.5,
             "histogram": {"counts": [n // 20] * 20, "edges": list(np.linspace(0, 1, 21))}}
    result = {"item_count": n, "processed_count": n, "failed_count": 0,
              "features": {"brightness": stats, "width": {**stats, "min": 64, "max": 113}},
              "issues": {"counts": {"dark": n, "blurry": n, "exact_duplicates": 2 * len(groups)},
                         "thresholds": {"dark": 0.32, "blurry": 0.68}, "images_with_issues": n,
                         "exact_duplicate_groups": groups, "exact_duplicate_group_count": 4000},
              "outputs": {"features": "features.jsonl", "issues": "issues.jsonl"}}
    task = {"task_id": "t", "name": "big", "template": {"id": "sys_data_analyse"},
            "work_path": {"output_path": str(out)}, "result": result}
    page = report.render(task, tmp_path / "no-such-folder")
    doc = parse(page)
    dark = [f["item"] for f in doc.figures if f["section"] == "issue-dark"]
    # The worst examples are the lowest scores in the whole file, capped; the groups are capped too.
    assert dark == sorted((f"img_{i:06d}.png" for i in range(n)), key=lambda k: int(k[4:10]) * 7919 % n
                          )[:WORST_PER_ISSUE]
    assert len([f for f in doc.figures if f["section"] == "issue-exact_duplicates"]) == 2 * MAX_GROUPS
    assert "4,000 groups" in doc.text["issue-exact_duplicates"]
    assert len(doc.figures) <= 2 * WORST_PER_ISSUE + 2 * MAX_GROUPS
    assert len(page) < 200_000


# ----- through the service, on the real Ray cluster --------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(service: Service) -> Path:
    folder = service.root / "inputs" / "report-dataset"
    make_dataset(folder)
    return folder


@pytest.fixture(scope="module")
def analysed(service: Service, dataset: Path) -> dict:
    task_id = service.create(dataset, name="report")
    return service.wait_status(task_id, 2, allowed={0, 1})


@pytest.mark.ray
def test_report_page_chart_files_and_output_links(service: Service, analysed: dict) -> None:
    tasks = service.tasks()
    r = service.client.get(f"{tasks}/{analysed['task_id']}/report")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "15 of 16 items read (93.8%)" in page
    charts = Path(analysed["work_path"]["output_path"]) / "report"
    assert {p.stem for p in charts.glob("*.png")} >= {"brightness", "blur_score", "entropy"}
    assert page.count("class='chart'") == len(list(charts.glob("*.png")))
    # The page's links resolve (relative to the report URL) to the files route, which serves the listed files.
    out = Path(analysed["work_path"]["output_path"])
    for name in ("features.jsonl", "issues.jsonl", "failures.jsonl"):
        assert f"href='files/{name}'" in page
        got = service.client.get(f"{tasks}/{analysed['task_id']}/files/{name}")
        assert got.status_code == 200 and got.content == (out / name).read_bytes()
    for bad in ("..%2Fresult.json", "manifest.json", ".rayproc", "report", "%2Fetc%2Fpasswd"):
        got = service.client.get(f"{tasks}/{analysed['task_id']}/files/{bad}")
        # Not listed, or not a bare name: a 404, or the id rules' 400 when the path folds into the task id.
        assert got.status_code in (400, 404), (bad, got.text)
        assert got.json()["error_code"] in ("not_found", "invalid_resource_id"), (bad, got.text)
    assert service.client_for(None).get(f"{tasks}/{analysed['task_id']}/files/features.jsonl").status_code == 401


@pytest.mark.ray
def test_cleaning_validation_and_selection_reports(service: Service, dataset: Path) -> None:
    created = {
        "cleaning": service.create(dataset, template={"id": "sys_data_cleaning", "operator_params": [
            {"id": "data_cleaning", "params": {"drop_issues": ["dark"], "drop_near_duplicates": True}}]}),
        "validation": service.create(dataset, template={"id": "sys_data_validation"}),
        "selection": service.create(dataset, template={"id": "sys_data_selection", "operator_params": [
            {"id": "data_selection", "params": {"method": "top_k", "count": 3}}]}),
    }
    # Created with the others so that they run together.
    augmented = service.create(dataset, template={"id": "sys_data_augmentation"})
    pages = {}
    for kind, task_id in created.items():
        service.wait_status(task_id, 2, allowed={0, 1})
        r = service.client.get(f"{service.tasks()}/{task_id}/report")
        assert r.status_code == 200, r.text
        pages[kind] = parse(r.text)

    cleaning = pages["cleaning"]
    assert "Kept 12 of 16 items (75.0%); removed 4 (25.0%)." in cleaning.text["headline"]
    removed = {f["item"]: f["section"] for f in cleaning.figures if f["section"].startswith("removed-")}
    assert removed == {"broken.png": "removed-corrupt", "dark.png": "removed-issue",
                       "dup_b.png": "removed-exact_duplicate_of", "dup_a.png": "removed-exact_duplicate_of",
                       "near_b.jpg": "removed-near_duplicate_of", "near_a.png": "removed-near_duplicate_of"}
    # The rules in force, defaults filled, say why.
    assert '"drop_near_duplicates": true' in cleaning.text["params"] and '"drop_corrupt": true' in cleaning.text["params"]

    validation = pages["validation"]
    assert "15 of 16 items are valid (93.8%); 1 have findings (6.2%)." in validation.text["headline"]
    assert [f["item"] for f in validation.figures if f["section"] == "finding-truncated"] == ["broken.png"]

    selection = pages["selection"]
    assert "Selected 3 of 15 readable items (20.0%) by method top_k." in selection.text["headline"]
    chosen = [f for f in selection.figures if f["src"] is not None and f["section"] == ""]
    assert len(chosen) == 3 and "rank 1 of 15" in selection.text["selected"]

    service.wait_status(augmented, 2, allowed={0, 1})
    r = service.client.get(f"{service.tasks()}/{augmented}/report")
    assert r.status_code == 200, r.text
    augmentation = parse(r.text)
    assert "Made 30 augmented images from 15 items (2 per item)" in augmentation.text["headline"]
    assert "hflip" in augmentation.text["steps"] and "color_jitter" in augmentation.text["steps"]  # defaults
    made = [f for f in augmentation.figures if f["item"].startswith("augmented/")]
    assert len(made) == 2 * report.MAX_AUGMENTED_SHOWN and all(f["src"] is not None for f in made)


@pytest.mark.ray
@needs_chromium
def test_report_in_a_headless_browser(service: Service, analysed: dict, tmp_path: Path) -> None:
    page = service.client.get(f"{service.tasks()}/{analysed['task_id']}/report").text
    dom, pixels = browse(page, tmp_path)
    doc = parse(dom)
    # What the browser built: the headline's counts and the thumbnails of the known examples.
    assert "15 of 16 items read (93.8%), 1 unreadable (6.2%)." in doc.text["headline"]
    shown = {(f["section"], f["item"]) for f in doc.figures if f["src"]}
    assert {("issue-dark", "dark.png"), ("issue-near_duplicates", "near_a.png"),
            ("issue-near_duplicates", "near_b.jpg"), ("issue-exact_duplicates", "dup_a.png")} <= shown
    # What it drew: chart bars over several charts, the dark example, and the near-duplicate strip's two
    # pictures side by side (only they have the scene's blue).
    bars = (np.abs(pixels - np.array(BAR)).sum(axis=2) <= 30)
    assert bars.sum() > 5_000, "no chart bars were drawn on the page"
    rows_with_bars = np.nonzero(bars.any(axis=1))[0]
    assert rows_with_bars.max() - rows_with_bars.min() > 200
    assert dark_blocks(pixels) == 1
    assert len(blue_columns(pixels)) == 2


@pytest.mark.ray
def test_report_over_a_bucket_source(service: Service, s3_server: str, tmp_path: Path) -> None:
    make_dataset(tmp_path / "ds")
    s3.upload_folder(tmp_path / "ds", s3.BUCKET, "report-dataset")
    task = service.wait_status(service.create(f"s3://{s3.BUCKET}/report-dataset", template={
        "id": "sys_data_analyse"}), 2, allowed={0, 1})
    r = service.client.get(f"{service.tasks()}/{task['task_id']}/report")
    assert r.status_code == 200, r.text
    doc = parse(r.text)
    assert "15 of 16 items read (93.8%)" in doc.text["headline"]
    thumbs = {(f["section"], f["item"]): f["src"] for f in doc.figures}
    # The thumbnails were read from the bucket: the dark example is dark, the light one light, and the exact
    # duplicates' strip shows the same noise picture twice.
    assert decoded(thumbs[("issue-dark", "dark.png")]).mean() < 30
    assert decoded(thumbs[("issue-light", "light.png")]).mean() > 220
    a, b = (decoded(thumbs[("issue-exact_duplicates", item)]) for item in ("dup_a.png", "dup_b.png"))
    assert a.std() > 40 and np.abs(a - b).max() == 0


@pytest.mark.ray
def test_logs_of_a_run(service: Service, analysed: dict) -> None:
    r = service.client.get(f"{service.tasks()}/{analysed['task_id']}/logs")
    assert r.status_code == 200 and "finished: completed" in r.text
    assert service.client.get(f"{service.tasks()}/{analysed['task_id']}/logs?run=2").status_code == 404


def test_thumbnails_read_nothing_outside_the_tasks_root(tmp_path: Path) -> None:
    from serve_app.report.thumbs import thumbnails

    images.save(images.noise(1), tmp_path / "outside.png")
    images.save(images.noise(2), tmp_path / "root" / "inside.png")
    got = thumbnails(str(tmp_path / "root"), ["inside.png", "../outside.png", "missing.png"])
    assert got["inside.png"] is not None and decoded(got["inside.png"]).shape[1] == images.SIZE[0]
    assert got["../outside.png"] is None and got["missing.png"] is None


def test_hostile_labels_in_a_validation_report_are_escaped(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    images.save(images.noise(1), folder / "a.png")
    images.save(images.noise(2), folder / "b.png")
    label = "<script>alert('x')</script>"
    manifest = folder / "list.jsonl"
    manifest.write_text("\n".join(json.dumps({"image": name, "label": lab})
                                  for name, lab in (("a.png", label), ("b.png", "cat"))) + "\n")
    task = direct_task(folder, "sys_data_validation", [{"id": "data_validation", "params": {
        "allowed_labels": ["cat"]}}], tmp_path / "out", source=manifest)  # the manifest's labels reach the findings
    page = report.render(task, folder)
    doc = parse(page)
    assert "1 of 2 items are valid (50.0%)" in doc.text["headline"]
    figures = [f for f in doc.figures if f["section"].startswith("finding-")]
    assert [f["item"] for f in figures] == ["a.png"] and figures[0]["src"] is not None
    assert "<script" not in page and report.esc(label) in page
