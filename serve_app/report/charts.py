"""Feature histograms drawn with Pillow: axes fitted to the data, ticks in the feature's unit.

Histograms are re-binned over the observed range of each feature (streamed from ``features.jsonl``, a
chunk at a time, so memory does not grow with the dataset); a feature whose values are all equal gets
a sentence instead of a one-bar chart.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TextIO

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from operators.analyse import (
    ASPECT_RATIO,
    BLUR_SCORE,
    BRIGHTNESS,
    COLOURFULNESS,
    CONTRAST,
    ENTROPY,
    FEATURE_COLUMNS,
    FILE_SIZE,
    HEIGHT,
    SATURATION,
    WIDTH,
)

CHART_SIZE = (480, 240)
BAR = (59, 130, 246)
AXIS = (55, 65, 81)
GRID = (229, 231, 235)
DEFAULT_BINS = 20
#: Lines of ``features.jsonl`` parsed per numpy step.
_CHUNK = 4096


@dataclass(frozen=True)
class Unit:
    """How one feature is labelled: its title, the unit on the axis, and the factor from stored values."""

    title: str
    unit: str = ""
    scale: float = 1.0


UNITS: dict[str, Unit] = {
    WIDTH: Unit("width", "px"),
    HEIGHT: Unit("height", "px"),
    ASPECT_RATIO: Unit("aspect ratio (width / height)"),
    FILE_SIZE: Unit("file size", "KB", 1 / 1024),
    BRIGHTNESS: Unit("brightness (0 black, 1 white)"),
    CONTRAST: Unit("contrast (std of luma)"),
    BLUR_SCORE: Unit("blur score (Laplacian variance, low = blurry)"),
    SATURATION: Unit("saturation (0 gray, 1 vivid)"),
    COLOURFULNESS: Unit("colourfulness (0 gray)"),
    ENTROPY: Unit("entropy", "bits"),
}


def unit_of(name: str) -> Unit:
    return UNITS.get(name, Unit(name))


def fmt(value: float, unit: str = "") -> str:
    """A number as a person reads it: 3 significant digits, thousands grouped, the unit after it."""
    if value is None or not math.isfinite(value):
        return "-"
    if value != 0 and (abs(value) >= 1e6 or abs(value) < 1e-3):
        text = f"{value:.3g}"
    elif abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif float(value).is_integer():
        text = f"{int(value)}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".rstrip()


def _font(size: int = 11) -> ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        return ImageFont.load_default()


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2 or 5 times a power of ten apart)."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = min((m * power for m in (1, 2, 5, 10)), key=lambda v: abs(v - raw))
    first = math.ceil(lo / step - 1e-9) * step
    ticks = []
    k = 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks


def histogram_png(name: str, counts: list[int], edges: list[float], *, unit: Unit | None = None) -> bytes:
    """A bar chart of one histogram: bins on x in the feature's unit, image counts on y."""
    unit = unit or unit_of(name)
    w, h = CHART_SIZE
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    font = _font()
    left, right, top, bottom = 52, w - 16, 26, h - 36
    title = unit.title + (f" [{unit.unit}]" if unit.unit else "")
    draw.text((left, 5), title, fill=AXIS, font=font)
    if counts and len(edges) == len(counts) + 1:
        peak = max(counts) or 1
        for t in sorted({*(t for t in nice_ticks(0, peak, 4) if t == int(t) and t < 0.8 * peak), peak}):
            y = bottom - (bottom - top) * t / peak
            draw.line([(left, y), (right, y)], fill=GRID)
            label = fmt(t)
            draw.text((left - 6 - draw.textlength(label, font=font), y - 6), label, fill=AXIS, font=font)
        lo, hi = edges[0] * unit.scale, edges[-1] * unit.scale
        span = (hi - lo) or 1.0
        step = (right - left) / len(counts)
        for i, c in enumerate(counts):
            if c <= 0:
                continue
            x0 = left + i * step + 1
            y0 = min(bottom - 2, bottom - (bottom - top) * c / peak)
            draw.rectangle([x0, y0, x0 + max(step - 2, 1), bottom - 1], fill=BAR)
        # The range's two ends, always labelled, and round values between them not crowding the ends.
        inner = [t for t in nice_ticks(lo, hi, 5) if 0.12 < (t - lo) / span < 0.88]
        for t in [lo, *inner, hi]:
            x = left + (right - left) * (t - lo) / span
            draw.line([(x, bottom), (x, bottom + 4)], fill=AXIS)
            label = fmt(t)
            tw = draw.textlength(label, font=font)
            draw.text((min(max(x - tw / 2, 0), w - tw - 1), bottom + 6), label, fill=AXIS, font=font)
        axis_label = f"{unit.unit or 'value'}; y: images"
        draw.text((right - draw.textlength(axis_label, font=font), h - 15), axis_label, fill=AXIS, font=font)
    draw.line([(left, top), (left, bottom), (right, bottom)], fill=AXIS, width=1)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


@dataclass
class FeatureChart:
    """What the page shows for one feature: a chart (``png``), or ``constant`` when every value is equal."""

    name: str
    stats: dict
    png: bytes | None = None
    constant: float | None = None


def _float_or_nan(value) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan


def rebinned(lines: Iterable[str], ranges: dict[str, tuple[float, float]], bins: int) -> dict[str, np.ndarray]:
    """Counts per feature over ``bins`` equal bins spanning each feature's own [min, max], over ``lines`` (those
    of ``features.jsonl``)."""
    counts = {name: np.zeros(bins, dtype=np.int64) for name in ranges}
    names = list(ranges)

    def add(rows: list[list[float]]) -> None:
        block = np.asarray(rows, dtype=np.float64)
        for j, name in enumerate(names):
            column = block[:, j]
            column = column[np.isfinite(column)]
            counts[name] += np.histogram(column, bins=bins, range=ranges[name])[0]

    rows: list[list[float]] = []
    for line in lines:
        record = json.loads(line)
        rows.append([_float_or_nan(record.get(name)) for name in names])
        if len(rows) >= _CHUNK:
            add(rows)
            rows = []
    if rows:
        add(rows)
    return counts


def feature_charts(features: dict, open_features: Callable[[], AbstractContextManager[TextIO | None]] | None
                   ) -> list[FeatureChart]:
    """One entry per feature in the task's ``result.features``, in the analysis's column order.
    ``open_features`` opens ``features.jsonl`` (None if it is absent): the histograms are drawn from it, else
    from those the task stored."""
    names = [n for n in FEATURE_COLUMNS if n in features] + [n for n in features if n not in FEATURE_COLUMNS]
    out: list[FeatureChart] = []
    ranges: dict[str, tuple[float, float]] = {}
    bins = DEFAULT_BINS
    for name in names:
        stats = features[name] or {}
        chart = FeatureChart(name, stats)
        out.append(chart)
        if not stats.get("count"):
            continue
        lo, hi = stats.get("min"), stats.get("max")
        if lo is not None and hi is not None and lo == hi:
            chart.constant = lo
        elif lo is not None and hi is not None:
            ranges[name] = (float(lo), float(hi))
            bins = len((stats.get("histogram") or {}).get("counts") or []) or bins
    counts: dict[str, np.ndarray] = {}
    if ranges and open_features is not None:
        with open_features() as lines:
            try:
                counts = rebinned(lines, ranges, bins) if lines is not None else {}
            except ValueError:
                counts = {}  # a damaged file: fall back on the histograms the task stored
    for chart in out:
        if chart.name in counts:
            lo, hi = ranges[chart.name]
            chart.png = histogram_png(chart.name, counts[chart.name].tolist(), np.linspace(lo, hi, bins + 1).tolist())
        elif chart.name in ranges:
            hist = _trimmed(chart.stats.get("histogram") or {})
            if hist is not None:
                chart.png = histogram_png(chart.name, *hist)
    return out


def _trimmed(hist: dict) -> tuple[list[int], list[float]] | None:
    """A stored histogram cut to the bins that hold images (its range may be a fixed one much wider)."""
    counts, edges = list(hist.get("counts") or []), list(hist.get("edges") or [])
    if not counts or len(edges) != len(counts) + 1:
        return None
    used = [i for i, c in enumerate(counts) if c]
    if not used:
        return None
    a, b = used[0], used[-1] + 1
    return counts[a:b], edges[a:b + 1]


def constant_sentence(charts: Iterable[FeatureChart], processed: int) -> list[tuple[str, str]]:
    """(feature names, sentence) for the constant features; width and height together when both are."""
    constant = {c.name: c.constant for c in charts if c.constant is not None}
    out = []
    if WIDTH in constant and HEIGHT in constant:
        w, h = constant.pop(WIDTH), constant.pop(HEIGHT)
        out.append((f"{WIDTH} {HEIGHT}", f"size: all {processed:,} images are {fmt(w)} x {fmt(h)} px"))
    for name, value in constant.items():
        unit = unit_of(name)
        out.append((name, f"{unit.title}: all {processed:,} images have {fmt(value * unit.scale, unit.unit)}"))
    return out
