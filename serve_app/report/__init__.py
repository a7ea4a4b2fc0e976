"""A completed task's report: one self-contained HTML page a person can hand to a colleague.

What it shows, by template:

- every task: a headline in counts and percentages, the source, date, duration, template and the
  parameters in force; the unreadable files by reason; links to the run's output files;
- analysis (and the features any other template computed): a histogram per feature over its own
  observed range, in its unit (px, KB, bits), or a sentence when the feature is constant; per issue
  type the threshold and which side is flagged, the worst examples as thumbnails, duplicate groups
  as strips of thumbnails;
- cleaning: what was removed, counted by reason, with examples (a duplicate next to the item it
  duplicates);
- validation: the findings by code, with examples and their messages;
- selection: the method, how many were chosen, the first choices with their reasons;
- augmentation: the steps in force, how many images were made and boxes dropped, and strips of
  originals beside the copies made of them (read from the task's output folder).

The page is one file (charts are PNG, thumbnails small JPEG, both inlined as data URIs; no script,
no remote asset, a Content-Security-Policy that forbids loading any), so it opens the same from the
API, from disk, or attached to a ticket. Every name and label in it is user data and goes through
``html.escape``. It stays bounded for huge datasets: output files are streamed once, examples are
capped, there is no per-image row. The charts are also written under ``<output>/report/``.

Links to output files are relative (``files/<name>``): from the API's report URL
(``.../processor-tasks/{id}/report``) they resolve to the authenticated
``.../processor-tasks/{id}/files/{name}`` route, which serves only the files the task's
``result.outputs`` lists. ``rayproc report`` rewrites them to that route's absolute URL in the copy it saves.

The run's files are read through its :class:`~jobs.layout.RunLayout`, so the output folder may be a server
path or a bucket prefix (``s3://...``) alike. A file ``result.outputs`` lists that is gone is a 404, one
that is not text a 400, a store that cannot be read a 503 (:class:`OutputFiles`); a file it does not list
(an older result) is drawn without.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from jobs.layout import FEATURES_FILE, RunLayout
from operators.data_augmentation import AUGMENTED_FILE
from serve_app import errors as E
from operators.data_cleaning import REMOVED_FILE
from operators.data_selection import SELECTED_FILE
from operators.data_validation import FINDINGS_FILE
from operators.base import TaskType
from operators.image_issues import ISSUES_FILE
from serve_app.report.charts import (
    BAR,
    CHART_SIZE,
    FeatureChart,
    constant_sentence,
    feature_charts,
    fmt,
    unit_of,
)
from serve_app.report.thumbs import THUMB, data_uri, thumbnails

__all__ = ["BAR", "CHART_SIZE", "REPORT_DIR", "TEMPLATES", "WORST_PER_ISSUE", "render"]

REPORT_DIR = "report"
#: Caps that keep the page's size independent of the dataset's.
WORST_PER_ISSUE = 6
MAX_GROUPS = 8
MAX_GROUP_MEMBERS = 6
EXAMPLES_PER_REASON = 6
MAX_SELECTED_SHOWN = 12
MAX_FAILED_SHOWN = 10
MAX_AUGMENTED_SHOWN = 8
#: Where the page links the run's files (see the module docstring).
FILES_HREF = "files/"

#: The templates a report is drawn for, with the page's title.
TEMPLATES = {
    TaskType.ANALYSE.value: "Feature analysis", TaskType.CLEANING.value: "Data cleaning",
    TaskType.VALIDATION.value: "Data validation", TaskType.SELECTION.value: "Data selection",
    TaskType.AUGMENTATION.value: "Data augmentation",
}

# Issue types as ``image_issues`` scores them: lower is worse, flagged below the threshold.
# (what the score is, how the threshold reads for a person)
ISSUE_TEXT = {
    "dark": ("99th percentile of perceived brightness", "flagged when it is below {t}: even the brightest "
             "pixels are dim"),
    "light": ("1 - the 5th percentile of perceived brightness", "flagged when it is below {t}: even the "
              "darkest pixels are near white"),
    "blurry": ("edge sharpness in [0, 1]", "flagged when it is below {t}"),
    "low_information": ("entropy / 10 bits (at most 1)", "flagged when it is below {t}: flat, nearly empty "
                        "images"),
    "odd_aspect_ratio": ("short side / long side", "flagged when it is below {t}"),
    "odd_size": ("how close sqrt(width x height) is to the dataset's usual sizes", "flagged when it is below "
                 "{t}: far outside the interquartile range"),
    "grayscale": ("1 for colour images, 0 for those stored in a grayscale mode", "flagged when it is 0"),
}
DUPLICATES = {"exact_duplicates": ("exact_duplicate_groups", "exact_duplicate_group_count",
                                   "identical decoded pixels"),
              "near_duplicates": ("near_duplicate_groups", "near_duplicate_group_count",
                                  "the same picture resized, re-encoded or re-toned")}

CSS = (
    "body{font-family:sans-serif;margin:24px;color:#111;max-width:1100px}h1{font-size:22px}"
    "h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}"
    ".headline{font-size:16px;background:#f3f4f6;padding:10px 14px;border-radius:6px}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #ddd}"
    "table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;"
    "vertical-align:top}.num{text-align:right}"
    ".thumbs{display:flex;gap:8px;flex-wrap:wrap}"
    f".thumbs figure,.strip figure{{margin:0;font-size:11px;width:{THUMB + 8}px;overflow-wrap:anywhere}}"
    f".thumb{{display:block;width:{THUMB}px;height:{THUMB}px;object-fit:contain;background:#eee}}"
    f".missing{{display:flex;width:{THUMB}px;height:{THUMB}px;background:#eee;align-items:center;"
    "justify-content:center;color:#666}"
    ".strip{display:flex;gap:4px;align-items:flex-start;margin-bottom:10px;padding:4px;border:1px solid #ddd;"
    "width:max-content}pre{background:#f9fafb;padding:8px;overflow-x:auto}.note{color:#555}"
)
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} " + (word if n == 1 else words or word + "s")


def pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


@dataclass(frozen=True)
class Thumb:
    """A thumbnail of one item, drawn once every wanted item has been read. ``made``: the key is a file the
    task wrote, relative to its output folder (an augmented copy), rather than an input item."""

    key: str
    caption: str = ""
    made: bool = False


Parts = list  # of str | Thumb


# ----- reading the run's files (streamed once, bounded) ------------------------------------------------


class OutputFiles:
    """The run's output files the report reads, by their key in ``result.outputs`` (streamed once each).

    Errors are the API's: a listed file that is missing is :class:`NotFound`, one that is not UTF-8 text
    :class:`InvalidState`, a store that fails to answer :class:`StorageUnavailable`. A file the result does not
    list (an older release's result) may be absent: its section is drawn without examples."""

    def __init__(self, layout: RunLayout, outputs: dict) -> None:
        self.layout = layout
        self.outputs = outputs

    def name(self, key: str, default: str) -> str:
        return self.outputs.get(key, default)

    @contextmanager
    def open(self, key: str, default: str) -> Iterator[TextIO | None]:
        """The file as text lines, or None if it is absent and not listed."""
        name = self.name(key, default)
        with ExitStack() as stack:
            try:
                fh = stack.enter_context(self.layout.open_output(name))
            except (FileNotFoundError, IsADirectoryError):
                if key in self.outputs:
                    raise E.NotFound(f"the task's output file {name!r} is missing from {self.layout.output_dir}; "
                                     "the report cannot be drawn without it") from None
                fh = None
            except OSError as exc:
                raise self._unreadable(name, exc) from None
            try:
                yield fh
            except UnicodeDecodeError:
                raise E.InvalidState(f"the task's output file {name!r} is not UTF-8 text; the report cannot "
                                     "read it") from None
            except OSError as exc:
                raise self._unreadable(name, exc) from None

    def _unreadable(self, name: str, exc: OSError) -> E.StorageUnavailable:
        # The layout's errors name the object and the store's answer, never credentials.
        return E.StorageUnavailable(f"the task's output file {name!r} cannot be read from "
                                    f"{self.layout.output_dir}: {exc}")

    def rows(self, key: str, default: str) -> Iterator[dict]:
        """The file's JSON Lines records (a damaged line is skipped); nothing if it is absent and not listed."""
        with self.open(key, default) as fh:
            if fh is None:
                return
            for line in fh:
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError:
                        continue


def worst_examples(rows: Iterable[dict], issue_types: list[str], n: int = WORST_PER_ISSUE
                   ) -> dict[str, list[tuple[float, str]]]:
    """The ``n`` lowest-scoring flagged items of each issue type among ``rows`` (``issues.jsonl``'s records), as
    (score, item), worst first (ties: by item). Memory stays at a few times ``n`` per type whatever the file's
    length."""
    kept: dict[str, list[tuple[float, str]]] = {t: [] for t in issue_types}
    for row in rows:
        scores = row.get("scores") or {}
        for issue in row.get("issues") or ():
            rows = kept.get(issue)
            if rows is None:
                continue
            rows.append((float(scores.get(issue, 0.0)), str(row.get("item"))))
            if len(rows) >= 4 * n:
                rows.sort()
                del rows[n:]
    return {t: sorted(rows)[:n] for t, rows in kept.items() if rows}


# ----- drawing ------------------------------------------------------------------------------------------


def _figure(uri: str | None, key: str, caption: str) -> str:
    img = (f"<img class='thumb' src='{uri}' alt='{esc(key)}' width='{THUMB}' height='{THUMB}'>" if uri
           else "<span class='missing'>(no preview)</span>")
    cap = esc(key) + (f"<br>{esc(caption)}" if caption else "")
    return f"<figure data-item='{esc(key)}'>{img}<figcaption>{cap}</figcaption></figure>"


def _table(rows: list[tuple], head: tuple, table_id: str = "") -> str:
    ident = f" id='{esc(table_id)}'" if table_id else ""
    out = [f"<table{ident}><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"]
    for row in rows:
        out.append("<tr>" + "".join(f"<td class='num'>{esc(v)}</td>" if isinstance(v, (int, float))
                                    else f"<td>{esc(v)}</td>" for v in row) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _meta(task: dict, operators: list[tuple[str, dict]]) -> str:
    created = task.get("create_time")
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(created / 1000)) if created else "-"
    duration = task.get("duration_seconds")
    source = (task.get("data_source") or {}).get("source", "")
    template = (task.get("template") or {}).get("id", "")
    rows = [("task", task.get("task_id", "")), ("source", source), ("created", date),
            ("duration", f"{duration:.1f} s" if isinstance(duration, (int, float)) else "-"),
            ("template", template)]
    params = "".join(f"<h3>{esc(name)}</h3><pre>{esc(json.dumps(p, indent=1, sort_keys=True))}</pre>"
                     for name, p in operators)
    return (f"<table id='meta'>{''.join(f'<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>' for k, v in rows)}"
            f"</table><details open id='params'><summary>Parameters in force</summary>{params}</details>")


def _feature_section(result: dict, files: OutputFiles) -> tuple[str, list[FeatureChart]]:
    features = result.get("features") or {}
    if not features:
        return "", []
    charts = feature_charts(features, lambda: files.open("features", FEATURES_FILE))
    processed = int(result.get("processed_count") or 0)
    parts = ["<h2>Features</h2>"]
    constants = constant_sentence(charts, processed)
    if constants:
        parts.append("<ul id='constant-features'>" + "".join(
            f"<li data-features='{esc(names)}'>{esc(text)}</li>" for names, text in constants) + "</ul>")
    parts.append("<div class='charts' id='charts'>")
    for chart in charts:
        if chart.png is not None:
            parts.append(f"<img class='chart' alt='{esc(chart.name)} histogram' "
                         f"src='{data_uri(chart.png, 'image/png')}' width='{CHART_SIZE[0]}' "
                         f"height='{CHART_SIZE[1]}'>")
    parts.append("</div>")
    stats_rows = []
    for chart in charts:
        s, unit = chart.stats, unit_of(chart.name)
        if s.get("count"):
            stats_rows.append((chart.name, *(fmt(s[k] * unit.scale, unit.unit) if isinstance(s.get(k), (int, float))
                                             else "-" for k in ("min", "median", "mean", "max"))))
    if stats_rows:
        parts.append("<details><summary>Summary statistics</summary>"
                     + _table(stats_rows, ("feature", "min", "median", "mean", "max")) + "</details>")
    grayscale = result.get("grayscale_count")
    if grayscale is not None:
        parts.append(f"<p>{grayscale:,} of {processed:,} images ({pct(grayscale, processed)}) have gray content "
                     "(all three channels equal).</p>")
    return "".join(parts), charts


def _issues_section(result: dict, files: OutputFiles) -> Parts:
    issues = result.get("issues") or {}
    counts = issues.get("counts") or {}
    if not counts:
        return []
    processed = int(result.get("processed_count") or 0)
    thresholds = issues.get("thresholds") or {}
    parts: Parts = ["<h2>Issues</h2>", _table(
        [(name, n, pct(n, processed), _threshold_text(name, thresholds)) for name, n in counts.items()],
        ("issue", "images", "of analysed", "threshold"), "issues")]
    combos = issues.get("by_combination") or {}
    if combos:
        parts.append("<details><summary>Most frequent combinations</summary>"
                     + _table(list(combos.items()), ("issues together", "images")) + "</details>")
    wanted = [t for t in counts if t in ISSUE_TEXT and counts[t]]
    worst = worst_examples(files.rows("issues", ISSUES_FILE), wanted) if wanted else {}
    for issue, rows in worst.items():
        what, rule = ISSUE_TEXT[issue]
        t = thresholds.get(issue)
        parts.append(f"<section class='issue' id='issue-{esc(issue)}'><h3>{esc(issue)}: "
                     f"{plural(counts[issue], 'image')}</h3><p class='note'>Score: {esc(what)}; {esc(rule.format(t=fmt(t)))}. "
                     f"{'The lowest score' if len(rows) == 1 else f'The {len(rows)} lowest scores'}:</p><div class='thumbs'>")
        parts.extend(Thumb(item, f"score {score:.3f}") for score, item in rows)
        parts.append("</div></section>")
    for issue, (groups_key, count_key, what) in DUPLICATES.items():
        groups = issues.get(groups_key) or []
        if not groups:
            continue
        total = int(issues.get(count_key) or len(groups))
        parts.append(f"<section class='issue' id='issue-{esc(issue)}'><h3>{esc(issue)}: {plural(total, 'group')}, "
                     f"{plural(counts.get(issue, 0), 'image')}</h3><p class='note'>{esc(what)}"
                     + (f"; the first {min(MAX_GROUPS, len(groups))} groups" if total > MAX_GROUPS else "")
                     + ".</p>")
        for group in groups[:MAX_GROUPS]:
            parts.append("<div class='strip'>")
            parts.extend(Thumb(item) for item in group[:MAX_GROUP_MEMBERS])
            if len(group) > MAX_GROUP_MEMBERS:
                parts.append(f"<p>and {len(group) - MAX_GROUP_MEMBERS:,} more</p>")
            parts.append("</div>")
        parts.append("</section>")
    return parts


def _threshold_text(issue: str, thresholds: dict) -> str:
    if issue in ISSUE_TEXT:
        t = thresholds.get(issue)
        return "stored in a grayscale mode" if issue == "grayscale" else f"score < {fmt(t)}"
    if issue == "near_duplicates":
        keys = ("near_duplicate_distance", "near_duplicate_similarity", "near_duplicate_difference")
        return ", ".join(f"{k.removeprefix('near_duplicate_')} {fmt(thresholds[k])}" for k in keys
                         if k in thresholds)
    return "identical pixels" if issue == "exact_duplicates" else ""


def _cleaning_section(result: dict, files: OutputFiles) -> Parts:
    cleaning = result.get("cleaning") or {}
    by_reason = cleaning.get("removed_by_reason") or {}
    total = int(cleaning.get("kept_count", 0)) + int(cleaning.get("removed_count", 0))
    parts: Parts = ["<h2>Removed</h2>", _table(
        [(reason, n, pct(n, total)) for reason, n in by_reason.items()], ("reason", "items", "of all"),
        "removed")]
    examples: dict[str, list[dict]] = {}
    for row in files.rows("removed", REMOVED_FILE):
        category = str(row.get("reason", "")).split(":", 1)[0]
        bucket = examples.setdefault(category, [])
        if len(bucket) < EXAMPLES_PER_REASON:
            bucket.append(row)
        if all(len(examples.get(r, [])) >= EXAMPLES_PER_REASON for r in by_reason):
            break
    for category, rows in examples.items():
        parts.append(f"<section class='removed' id='removed-{esc(category)}'><h3>{esc(category)}: "
                     f"{plural(by_reason.get(category, len(rows)), 'item')}</h3>")
        if category.endswith("_duplicate_of"):
            for row in rows:
                original = str(row["reason"]).split(":", 1)[1].strip()
                parts.extend(["<div class='strip'>", Thumb(str(row.get("item")), "removed"),
                              Thumb(original, "kept"), "</div>"])
        else:
            parts.append("<div class='thumbs'>")
            parts.extend(Thumb(str(row.get("item")), str(row.get("reason", ""))) for row in rows)
            parts.append("</div>")
        parts.append("</section>")
    return parts


def _validation_section(result: dict, files: OutputFiles) -> Parts:
    validation = result.get("validation") or {}
    by_code = validation.get("findings_by_code") or {}
    parts: Parts = ["<h2>Findings</h2>", _table(list(by_code.items()), ("finding", "count"), "findings")]
    examples: dict[str, list[tuple[str, str]]] = {}
    for row in files.rows("findings", FINDINGS_FILE):
        for finding in row.get("findings") or ():
            bucket = examples.setdefault(str(finding.get("code")), [])
            if len(bucket) < EXAMPLES_PER_REASON:
                bucket.append((str(row.get("item")), str(finding.get("message", ""))))
        if all(len(examples.get(c, [])) >= EXAMPLES_PER_REASON for c in by_code):
            break
    for code, rows in examples.items():
        parts.append(f"<section class='finding' id='finding-{esc(code)}'><h3>{esc(code)}: "
                     f"{by_code.get(code, len(rows)):,}</h3><div class='thumbs'>")
        parts.extend(Thumb(item, message) for item, message in rows)
        parts.append("</div></section>")
    return parts


def _selection_section(result: dict, files: OutputFiles) -> Parts:
    selection = result.get("selection") or {}
    count = int(selection.get("selected_count", 0))
    parts: Parts = ["<h2>Selected</h2>"]
    rows = []
    for row in files.rows("selected", SELECTED_FILE):
        rows.append(row)
        if len(rows) >= MAX_SELECTED_SHOWN:
            break
    if rows:
        shown = f"The first {len(rows)}" if count > len(rows) else f"All {len(rows)}"
        parts.append(f"<p class='note'>{shown} of {count:,}, in the file's order, with why each was chosen:</p>"
                     "<div class='thumbs' id='selected'>")
        parts.extend(Thumb(str(r.get("item")), str(r.get("selection_reason", ""))) for r in rows)
        parts.append("</div>")
    return parts


def _augmentation_section(result: dict, files: OutputFiles, operators: list[tuple[str, dict]]) -> Parts:
    steps = next((p.get("steps") or [] for name, p in operators if name == "data_augmentation"), [])
    parts: Parts = ["<h2>Steps</h2><p class='note'>Applied in this order to every copy, each with its "
                    "probability; boxes move with the pixels.</p>", _table(
        [(i + 1, s.get("name", ""), s.get("probability", 1.0), json.dumps(s.get("params") or {}, sort_keys=True))
         for i, s in enumerate(steps)], ("step", "transform", "probability", "params"), "steps")]
    made: dict[str, list[dict]] = {}
    for row in files.rows("augmented", AUGMENTED_FILE):
        source = str(row.get("source_item", ""))
        if source not in made and len(made) >= MAX_AUGMENTED_SHOWN:
            break
        made.setdefault(source, []).append(row)
    if made:
        total = int((result.get("augmentation") or {}).get("inputs", len(made)))
        shown = f"The first {len(made)}" if total > len(made) else f"All {len(made)}"
        parts.append(f"<h2>Copies</h2><p class='note'>{shown} of {total:,} items, each beside the copies "
                     "made of it:</p><div id='augmented'>")
        for source, rows in made.items():
            parts.extend(["<div class='strip'>", Thumb(source, "original")])
            for i, row in enumerate(rows):
                boxes = row.get("boxes")
                caption = f"copy {i + 1}" + ("" if boxes is None else f", {plural(len(boxes), 'box', 'boxes')}")
                parts.append(Thumb(str(row.get("image", "")), caption, made=True))
            parts.append("</div>")
        parts.append("</div>")
    return parts


def _headline(template: str, result: dict) -> str:
    processed = int(result.get("processed_count") or 0)
    failed = int(result.get("failed_count") or 0)
    items = int(result.get("item_count") or processed + failed)
    lines = []
    if template == TaskType.CLEANING.value:
        c = result.get("cleaning") or {}
        kept, removed = int(c.get("kept_count", 0)), int(c.get("removed_count", 0))
        lines.append(f"Kept {kept:,} of {kept + removed:,} items ({pct(kept, kept + removed)}); removed "
                     f"{removed:,} ({pct(removed, kept + removed)}).")
    elif template == TaskType.VALIDATION.value:
        v = result.get("validation") or {}
        valid, invalid = int(v.get("valid_count", 0)), int(v.get("invalid_count", 0))
        lines.append(f"{valid:,} of {valid + invalid:,} items are valid ({pct(valid, valid + invalid)}); "
                     f"{invalid:,} have findings ({pct(invalid, valid + invalid)}).")
    elif template == TaskType.SELECTION.value:
        s = result.get("selection") or {}
        chosen, candidates = int(s.get("selected_count", 0)), int(s.get("candidates", 0))
        lines.append(f"Selected {chosen:,} of {candidates:,} readable items ({pct(chosen, candidates)}) "
                     f"by method {s.get('method', '?')}.")
    elif template == TaskType.AUGMENTATION.value:
        a = result.get("augmentation") or {}
        inputs, outputs, dropped = (int(a.get(k, 0)) for k in ("inputs", "outputs", "boxes_dropped"))
        lines.append(f"Made {plural(outputs, 'augmented image')} from {plural(inputs, 'item')}"
                     + (f" ({outputs / inputs:g} per item)" if inputs else "")
                     + f"; {plural(dropped, 'box', 'boxes')} dropped as they left the image.")
    lines.append(f"{processed:,} of {items:,} items read ({pct(processed, items)}), {failed:,} unreadable "
                 f"({pct(failed, items)}).")
    issues = result.get("issues") or {}
    if issues.get("counts"):
        flagged = int(issues.get("images_with_issues", 0))
        found = [f"{n:,} {name}" for name, n in issues["counts"].items() if n]
        lines.append(f"{flagged:,} images ({pct(flagged, processed)} of those read) have at least one issue"
                     + (": " + ", ".join(found) if found else "") + ".")
    return "<div class='headline' id='headline'>" + "".join(f"<p>{esc(line)}</p>" for line in lines) + "</div>"


def _failures_section(result: dict) -> str:
    by_reason = result.get("failures_by_reason") or {}
    if not by_reason:
        return ""
    failed = int(result.get("failed_count") or sum(by_reason.values()))
    shown = (result.get("failed_items") or [])[:MAX_FAILED_SHOWN]
    return ("<h2>Unreadable files</h2>" + _table(list(by_reason.items()), ("reason", "files"), "failures")
            + (f"<p class='note'>The first {len(shown)} of {failed:,}:</p>"
               + _table([(f.get("item", ""), f.get("error_code", ""), f.get("error_msg", "")) for f in shown],
                        ("file", "reason", "message")) if shown else ""))


def _files_section(outputs: dict, layout: RunLayout) -> str:
    names = [n for n in outputs.values() if isinstance(n, str)]
    if not names:
        return ""
    links = "".join(f"<li><a href='{esc(FILES_HREF + name)}'>{esc(name)}</a></li>" for name in names)
    return (f"<h2>Output files</h2><ul id='files'>{links}</ul><p class='note'>In the task's output folder "
            f"<code>{esc(layout.output_dir)}</code>.</p>")


def render(task: dict, input_root: str | Path, *, operators: list[tuple[str, dict]] | None = None) -> str:
    """The whole report page for a completed task. ``input_root``: the folder or ``s3://`` prefix the task's
    items are relative to; ``operators``: (id, params) in force, defaults filled."""
    layout = RunLayout(task["work_path"]["output_path"])
    result = task.get("result") or {}
    outputs = result.get("outputs") or {}
    template = (task.get("template") or {}).get("id", "")
    if operators is None:
        operators = [(op.get("id", ""), op.get("params") or {})
                     for op in (task.get("template") or {}).get("operator_params") or []]
    files = OutputFiles(layout, outputs)
    feature_html, charts = _feature_section(result, files)
    write_charts(charts, layout)
    body: Parts = [
        f"<h1>{esc(TEMPLATES.get(template, template))} report: {esc(task.get('name', ''))}</h1>",
        _headline(template, result), _meta(task, operators)]
    if template == TaskType.CLEANING.value:
        body += _cleaning_section(result, files)
    elif template == TaskType.VALIDATION.value:
        body += _validation_section(result, files)
    elif template == TaskType.SELECTION.value:
        body += _selection_section(result, files)
    elif template == TaskType.AUGMENTATION.value:
        body += _augmentation_section(result, files, operators)
    body += _issues_section(result, files)
    body += [feature_html, _failures_section(result), _files_section(outputs, layout)]
    wanted = [p for p in body if isinstance(p, Thumb)]
    thumbs = {(False, k): uri for k, uri in thumbnails(str(input_root), [p.key for p in wanted if not p.made]).items()}
    thumbs.update({(True, k): uri for k, uri in
                   thumbnails(str(layout.output_dir), [p.key for p in wanted if p.made]).items()})
    page = "".join(_figure(thumbs.get((p.made, p.key)), p.key, p.caption) if isinstance(p, Thumb) else p
                   for p in body)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta http-equiv='Content-Security-Policy' content=\"{_CSP}\">"
            f"<title>rayproc report - {esc(task.get('name', ''))}</title><style>{CSS}</style></head><body>"
            f"{page}</body></html>")


def write_charts(charts: list[FeatureChart], layout: RunLayout) -> None:
    """Save every chart as ``<output>/report/<feature>.png``, in the output folder or bucket prefix (best
    effort: the page has them inline)."""
    drawn = [c for c in charts if c.png is not None]
    if not drawn:
        return
    folder = layout.output_dir / REPORT_DIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for chart in drawn:
            (folder / f"{chart.name}.png").write_bytes(chart.png)
    except OSError:
        pass
