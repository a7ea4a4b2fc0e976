"""The analysis report: charts per feature (PNG, drawn with Pillow), issue counts and the worst examples.

The page is one self-contained HTML file (images inlined as data URIs), so it opens the same
from the API, from disk, or attached to a ticket. The charts are also written as PNG files to
the task's output path under ``report/``.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CHART_SIZE = (480, 240)
BAR = (59, 130, 246)
AXIS = (55, 65, 81)
WORST_PER_ISSUE = 6
THUMB = 96
REPORT_DIR = "report"


def _font() -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", 11)
    except OSError:
        return ImageFont.load_default()


def histogram_png(name: str, hist: dict) -> bytes:
    """A bar chart of one feature's histogram (bin centres on x, counts on y)."""
    w, h = CHART_SIZE
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font = _font()
    left, right, top, bottom = 44, w - 12, 24, h - 30
    draw.text((left, 4), name, fill=AXIS, font=font)
    counts = hist.get("counts") or []
    edges = hist.get("edges") or []
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS, width=1)
    if counts:
        peak = max(counts) or 1
        step = (right - left) / len(counts)
        for i, c in enumerate(counts):
            if c <= 0:
                continue
            x0 = left + i * step + 1
            y0 = min(bottom - 2, bottom - (bottom - top) * c / peak)
            draw.rectangle([x0, y0, x0 + max(step - 2, 1), bottom - 1], fill=BAR)
        draw.text((4, top - 6), str(peak), fill=AXIS, font=font)
        draw.text((4, bottom - 10), "0", fill=AXIS, font=font)
        if edges:
            draw.text((left, bottom + 6), f"{edges[0]:.3g}", fill=AXIS, font=font)
            draw.text((right - 40, bottom + 6), f"{edges[-1]:.3g}", fill=AXIS, font=font)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _thumbnail(path: Path) -> str | None:
    try:
        with Image.open(path) as img:
            img.thumbnail((THUMB, THUMB))
            buf = io.BytesIO()
            img.convert("RGB").save(buf, "PNG")
            return _data_uri(buf.getvalue())
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def worst_examples(output_dir: Path, input_root: Path) -> dict[str, list[tuple[str, float]]]:
    """The lowest-scoring flagged images of each issue type, from ``issues.jsonl``."""
    path = output_dir / "issues.jsonl"
    if not path.exists():
        return {}
    flagged: dict[str, list[tuple[str, float]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            for issue in row["issues"]:
                flagged.setdefault(issue, []).append((row["item"], row["scores"][issue]))
    return {issue: sorted(rows, key=lambda r: (r[1], r[0]))[:WORST_PER_ISSUE] for issue, rows in flagged.items()}


def write_charts(result: dict, output_dir: Path) -> dict[str, bytes]:
    """Draw every feature histogram and save them under ``<output>/report/``."""
    charts = {name: histogram_png(name, feature["histogram"])
              for name, feature in (result.get("features") or {}).items() if feature.get("histogram")}
    for name, key in (("box_area_ratio", "box_area_ratio"), ("box_aspect_ratio", "box_aspect_ratio")):
        box = (result.get("boxes") or {}).get(key)
        if box and box.get("histogram"):
            charts[name] = histogram_png(name, box["histogram"])
    folder = output_dir / REPORT_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, png in charts.items():
        (folder / f"{name}.png").write_bytes(png)
    return charts


def render(task: dict, input_root: Path) -> str:
    """The whole report page for a completed analysis task."""
    output_dir = Path(task["work_path"]["output_path"])
    result = task.get("result") or {}
    charts = write_charts(result, output_dir)
    issues = result.get("issues") or {}
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>rayproc report - {esc(task['name'])}</title>",
        "<style>body{font-family:sans-serif;margin:24px;color:#111}h1{font-size:20px}"
        ".charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #ddd}"
        "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}"
        ".thumbs{display:flex;gap:8px;flex-wrap:wrap}.thumbs figure{margin:0;font-size:11px;width:100px}</style>",
        "</head><body>",
        f"<h1>Analysis report: {esc(task['name'])}</h1>",
        f"<p>Task <code>{esc(task['task_id'])}</code> &middot; {result.get('processed_count', 0)} images analysed, "
        f"{result.get('failed_count', 0)} unreadable.</p>",
        "<h2>Features</h2><div class='charts' id='charts'>",
    ]
    for name, png in charts.items():
        parts.append(f"<img class='chart' alt='{esc(name)} histogram' src='{_data_uri(png)}' "
                     f"width='{CHART_SIZE[0]}' height='{CHART_SIZE[1]}'>")
    parts.append("</div>")
    counts = issues.get("counts") or {}
    if counts:
        parts.append("<h2>Issues</h2><table id='issues'><tr><th>issue</th><th>images</th><th>threshold</th></tr>")
        for issue, n in counts.items():
            threshold = (issues.get("thresholds") or {}).get(issue, "")
            parts.append(f"<tr><td>{esc(issue)}</td><td>{n}</td><td>{esc(str(threshold))}</td></tr>")
        parts.append("</table>")
        for issue, rows in worst_examples(output_dir, input_root).items():
            parts.append(f"<h3>Worst {esc(issue)}</h3><div class='thumbs'>")
            for item, score in rows:
                uri = _thumbnail(input_root / item)
                img = f"<img src='{uri}' alt='{esc(item)}'>" if uri else "(unreadable)"
                parts.append(f"<figure>{img}<figcaption>{esc(item)}<br>score {score:.3f}</figcaption></figure>")
            parts.append("</div>")
    failures = result.get("failures_by_reason") or {}
    if failures:
        parts.append("<h2>Unreadable files</h2><table>")
        parts.extend(f"<tr><td>{esc(k)}</td><td>{v}</td></tr>" for k, v in failures.items())
        parts.append("</table>")
    parts.append("</body></html>")
    return "".join(parts)
