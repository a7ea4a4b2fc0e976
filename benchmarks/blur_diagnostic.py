"""Where the default blur score stands on the detection benchmark's set: which images it misses or flags, and
what each threshold would trade.

    python -m benchmarks.blur_diagnostic [--work /tmp/rayproc-bench-detection] [--threshold 0.68] [--measures]
                                         [--noise LEVELS]

Reads the labelled set ``benchmarks.bench_detection`` built and cached under ``--work`` (run that first) and
scores its clean and blurred images exactly as the pipeline does (``load_thumbnail`` to the 128 px thumbnail,
then ``features.edge_sharpness`` with the thumbnail's enlargement of small images). Prints, as Markdown:

- recall per blur strength and the share of clean images flagged, for a sweep of thresholds;
- recall and false flags by kind of picture (photo, product shot, graphic) and size (under 128 px or not);
- the blurred images of the mildest strength the threshold misses and the clean images it flags, each with its
  score and an estimate of its edge width: ``sigma`` in thumbnail pixels of the Gaussian blur whose step would
  have the image's median steepness (the steepest one-pixel step of an edge over its whole rise, taken only at
  the steepest point of each edge, ``1 / (sigma sqrt(2 pi))``). A clean image wider than the blurred ones cannot
  be told apart from them by how sharp its edges are.

With ``--measures``, the other no-reference measures tried against the default on the same images, each with
its threshold set where 2% of the clean images are flagged, and on two halves of the set (the threshold set on
one half, applied to the other; and over random halvings, against the default at as many clean images flagged on
the held-out half), alone and combined with the default (flag when either says blurry, or when both
do, the two thresholds chosen together for at most 2%): scikit-image's ``measure.blur_effect`` (Crete-Roffet et
al.'s re-blur metric) on the thumbnail and on the decoded image, the same principle with a Gaussian re-blur at the
image's own pixels and as the drop of the default score when the thumbnail is re-blurred, and two ratios of fine
to coarser energy. With ``--noise``, every image (clean and blurred)
gets Gaussian noise at its own size before its thumbnail is made, as a camera's sensor adds noise after the lens
blurs: the set's blur was applied to finished pictures and removed their noise with their detail, which a
measure of fine energy reads as blur.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from operators import features as F
from operators.image_io import load_rgb, load_rgb_view, load_thumbnail
from operators.image_issues import BLURRY_THRESHOLDS, RAYPROC

BLURRED = ("blurry_k1.0", "blurry_k1.5", "blurry_k2.5")
SWEEP = (0.56, 0.60, 0.64, 0.68, 0.70, 0.72, 0.74, 0.76, 0.80, 0.85)
SIDE = 128
#: Random halvings of the set for the held-out comparison of ``--measures`` (each used both ways round).
SPLITS = 8


def edge_width(gray: np.ndarray, factor: int) -> float:
    """The blur sigma (thumbnail pixels, over ``factor`` for an enlarged small image) whose blurred step is as
    steep as this image's median edge; inf when it has no edge."""
    window = 7 * factor
    half = window // 2
    ratios = []
    for view in (gray[::2, :], gray[:, ::2].T):
        view = np.ascontiguousarray(view)
        step = cv2.copyMakeBorder(cv2.absdiff(view[:, 1:], view[:, :-1]), 0, 0, 0, 1, cv2.BORDER_CONSTANT, value=0)
        span = np.ones((1, 2 * half + 2), np.uint8)
        rise = cv2.subtract(cv2.dilate(view, span, anchor=(half, 0)), cv2.erode(view, span, anchor=(half, 0)))
        peak = cv2.dilate(step, np.ones((1, 2 * half + 1), np.uint8))
        floor = max(4, int(0.3 * int(view.max()) - 0.3 * int(view.min())))
        at = (step == peak) & (step > 0) & (rise >= floor)
        ratios.append(step[at].astype(np.float64) / rise[at])
    r = np.concatenate(ratios)
    if r.size < 16:
        return float("inf")
    return float(1.0 / (np.sqrt(2 * np.pi) * np.median(r)) / factor)


def noisy_thumbnail(path: str, noise: float, rng: np.random.Generator, out: np.ndarray) -> tuple[int, int]:
    """The image decoded whole, with Gaussian noise of ``noise`` levels added at its own size (as a camera's
    sensor adds it after the lens's blur), area-resampled into ``out``; its size."""
    rgb = np.asarray(load_rgb(path), dtype=np.float32)
    rgb = np.clip(rgb + rng.normal(0.0, noise, rgb.shape), 0, 255).astype(np.uint8)
    cv2.resize(rgb, (out.shape[1], out.shape[0]), dst=out, interpolation=cv2.INTER_AREA)
    return rgb.shape[1], rgb.shape[0]


def score_set(work: Path, noise: float = 0.0) -> list[dict]:
    labels = json.loads((work / "labels.json").read_text())
    rows = [e for e in labels if e["label"] == "clean" or e["label"] in BLURRED]
    thumbs = np.empty((len(rows), SIDE, SIDE, 3), dtype=np.uint8)
    sizes = []
    rng = np.random.default_rng(0)
    for i, e in enumerate(rows):
        e["path"] = str(work / "images" / e["name"])
        if noise > 0:
            sizes.append(noisy_thumbnail(e["path"], noise, rng, thumbs[i]))
            continue
        d = load_thumbnail(e["path"], SIDE, preview=False, out=thumbs[i])
        sizes.append((d.width, d.height))
    dims = np.array(sizes)
    factors = F.upscale_factors(dims[:, 0], dims[:, 1], SIDE)
    scores = F.edge_sharpness(thumbs, factors)
    gray = F.Planes(thumbs).gray
    for i, e in enumerate(rows):
        e.update(score=float(scores[i]), width=int(dims[i, 0]), height=int(dims[i, 1]),
                 sigma=edge_width(gray[i], int(factors[i].max())), gray=gray[i], factors=factors[i])
    return rows


def report(rows: list[dict], threshold: float) -> str:
    score = np.array([r["score"] for r in rows])
    label = np.array([r["label"] for r in rows])
    clean = label == "clean"
    lines = ["| threshold | clean images flagged | " + " | ".join(f"recall {b[7:]}" for b in BLURRED) + " |",
             "|---:|---:|" + "---:|" * len(BLURRED)]
    for t in sorted({*SWEEP, threshold}):
        recall = " | ".join(f"{np.mean(score[label == b] < t):.3f}" for b in BLURRED)
        lines.append(f"| {t:.2f} | {np.mean(score[clean] < t):.3f} ({int(np.sum(score[clean] < t))}) | {recall} |")
    groups: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
    for r in rows:
        size = "small (<128 px)" if max(r["width"], r["height"]) < SIDE else "128 px or more"
        groups[(r["label"], r["kind"], size)].append(r["score"] < threshold)
    lines += ["", f"| label | kind | size | n | flagged at {threshold:.2f} |", "|---|---|---|---:|---:|"]
    for key in sorted(groups):
        lines.append(f"| {' | '.join(key)} | {len(groups[key])} | {np.mean(groups[key]):.3f} |")

    def listing(title: str, chosen: list[dict]) -> list[str]:
        out = ["", f"{title} ({len(chosen)}):", "", "| image | kind | size | score | edge width (sigma, px) |",
               "|---|---|---|---:|---:|"]
        out += [f"| {r['name']} | {r['kind']} | {r['width']}x{r['height']} | {r['score']:.3f} | {r['sigma']:.2f} |"
                for r in chosen]
        return out

    mild = [r for r in rows if r["label"] == BLURRED[0]]
    lines += listing(f"{BLURRED[0]} missed at {threshold:.2f}",
                     sorted((r for r in mild if r["score"] >= threshold), key=lambda r: -r["score"]))
    lines += listing(f"clean images flagged at {threshold:.2f}",
                     sorted((r for r in rows if r["label"] == "clean" and r["score"] < threshold),
                            key=lambda r: r["score"]))
    widths = np.array([r["sigma"] for r in mild])
    clean_widths = np.array([r["sigma"] for r in rows if r["label"] == "clean"])
    clean_widths = clean_widths[np.isfinite(clean_widths)]
    widths = widths[np.isfinite(widths)]
    lines += ["", f"Edge width of {BLURRED[0]} (images without edges left out), against the {clean_widths.size} "
                  "clean images':", ""]
    for name, q in (("median", 50), ("25th percentile", 25), ("10th percentile", 10)):
        at = float(np.percentile(widths, q))
        lines.append(f"- {name} sigma {at:.2f} px; clean images at least that wide: "
                     f"{np.mean(clean_widths >= at):.3f} ({int(np.sum(clean_widths >= at))})")
    return "\n".join(lines)


def reblur_loss(gray: np.ndarray, sigma: float) -> float:
    """Crete-Roffet's principle with a Gaussian re-blur: per axis, the share of the one-pixel variation a
    re-blur of ``sigma`` along that axis removes (``sum max(0, |d I| - |d blur(I)|) / sum |d I|``), averaged
    over the two axes; a sharp image loses much of it, a blurred one little."""
    x = gray.astype(np.float32)
    kernel = cv2.getGaussianKernel(2 * int(np.ceil(3 * sigma)) + 1, sigma).astype(np.float32)
    one = np.ones((1, 1), np.float32)
    losses = []
    for axis in (0, 1):
        soft = cv2.sepFilter2D(x, cv2.CV_32F, kernel if axis == 1 else one, one if axis == 1 else kernel,
                               borderType=cv2.BORDER_REFLECT)
        sharp, blurred = np.abs(np.diff(x, axis=axis)), np.abs(np.diff(soft, axis=axis))
        losses.append(float(np.maximum(sharp - blurred, 0).sum() / max(float(sharp.sum()), 1e-6)))
    return float(np.mean(losses))


def laplacian_over_gradient(gray: np.ndarray) -> float:
    """Energy of the 4-neighbour Laplacian over that of the one-pixel differences."""
    x = gray.astype(np.float32)
    lap = cv2.Laplacian(x, cv2.CV_32F, ksize=1)[1:-1, 1:-1]
    grad = float(np.square(np.diff(x, axis=0)).sum() + np.square(np.diff(x, axis=1)).sum())
    return float(np.square(lap).sum() / max(grad, 1e-6))


def band_ratio(gray: np.ndarray, fine: float = 0.7, coarse: float = 2.0) -> float:
    """Energy of the finest band (the image less its Gaussian blur of ``fine``) over the next band's (that blur
    less the blur of ``coarse``): a difference of Gaussians at two scales."""
    x = gray.astype(np.float32)
    a = cv2.GaussianBlur(x, (0, 0), fine, borderType=cv2.BORDER_REFLECT)
    b = cv2.GaussianBlur(x, (0, 0), coarse, borderType=cv2.BORDER_REFLECT)
    return float(np.square(x - a).sum() / max(float(np.square(a - b).sum()), 1e-6))


def other_measures(rows: list[dict]) -> dict[str, np.ndarray]:
    """Each measure tried against the default, as a score where lower is blurrier. "Own pixels" is the
    thumbnail with a small image's repeated pixels taken once (every ``factor``-th)."""
    from skimage.measure import blur_effect  # the bench extra

    def own(r: dict) -> np.ndarray:
        fx, fy = (int(v) for v in r["factors"])
        return r["gray"][::fy, ::fx]

    decoded = []
    for r in rows:  # as the near-duplicate views are decoded: a JPEG at draft scale of at least 256 px
        rgb = load_rgb_view(r["path"], 64)
        decoded.append(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))  # (noise, if asked, is on the thumbnail only)
    gray = np.stack([r["gray"] for r in rows])
    factors = np.stack([r["factors"] for r in rows])
    soft = np.stack([cv2.GaussianBlur(g, (0, 0), 1.5 * float(fx), sigmaY=1.5 * float(fy),
                                      borderType=cv2.BORDER_REFLECT) for g, (fx, fy) in zip(gray, factors)])

    def as_rgb(g: np.ndarray) -> np.ndarray:  # equal channels: their luma is the gray itself
        return np.repeat(g[..., None], 3, axis=3)

    return {
        "edge sharpness less that of the thumbnail re-blurred (sigma 1.5 px)":
            F.edge_sharpness(as_rgb(gray), factors) - F.edge_sharpness(as_rgb(soft), factors),
        "1 - blur_effect, thumbnail, h = 11": np.array([1 - blur_effect(r["gray"], h_size=11) for r in rows]),
        "1 - blur_effect, thumbnail, h = 3": np.array([1 - blur_effect(r["gray"], h_size=3) for r in rows]),
        "1 - blur_effect, decoded (>= 256 px), h = 11": np.array([1 - blur_effect(g, h_size=11) for g in decoded]),
        "1 - blur_effect, decoded (>= 256 px), h = 5": np.array([1 - blur_effect(g, h_size=5) for g in decoded]),
        "Gaussian re-blur (sigma 0.7), own pixels": np.array([reblur_loss(own(r), 0.7) for r in rows]),
        "Gaussian re-blur (sigma 1.0), own pixels": np.array([reblur_loss(own(r), 1.0) for r in rows]),
        "Laplacian / gradient energy, own pixels": np.array([laplacian_over_gradient(own(r)) for r in rows]),
        "difference of Gaussians, band 0-0.7 / 0.7-2.0, own pixels": np.array([band_ratio(own(r)) for r in rows]),
    }


def _at_rate(score: np.ndarray, clean: np.ndarray, rate: float) -> float:
    """The threshold under which at most ``rate`` of the clean images score."""
    ordered = np.sort(score[clean])
    return float(ordered[min(int(np.floor(rate * ordered.size)), ordered.size - 1)])


def _fit_pair(a: np.ndarray, b: np.ndarray, label: np.ndarray, fit: np.ndarray, both: bool,
              rate: float) -> tuple[float, float]:
    """Thresholds ``(ta, tb)`` for flagging when ``a < ta`` or (``both``) and ``b < tb``, chosen on the images
    ``fit`` for the highest recall at the mildest strength (then the next) with at most ``rate`` clean flagged."""
    clean = (label == "clean") & fit
    budget = int(np.floor(rate * clean.sum()))
    best: tuple = (-1.0,)
    grid_a = np.unique(np.quantile(a[clean], np.linspace(0.0, 0.3 if both else rate, 61)))
    grid_b = np.unique(np.quantile(b[clean], np.linspace(0.0, 0.6 if both else rate, 121)))
    for ta in grid_a:
        for tb in grid_b:
            flag = ((a < ta) & (b < tb)) if both else ((a < ta) | (b < tb))
            if flag[clean].sum() > budget:
                continue
            recall = tuple(float(flag[(label == s) & fit].mean()) for s in BLURRED[:2])
            if recall > best[:2]:
                best = (*recall, float(ta), float(tb))
    return best[2], best[3]


def compare(rows: list[dict], rate: float = 0.02) -> str:
    """Recall at ``rate`` clean images flagged for each measure, alone and with the default, in-sample and
    across two halves of the set (every other image)."""
    label = np.array([r["label"] for r in rows])
    clean = label == "clean"
    default = np.array([r["score"] for r in rows])
    half = np.arange(len(rows)) % 2 == 0
    everything = np.ones(len(rows), dtype=bool)

    def recall(flag: np.ndarray, where: np.ndarray) -> str:
        return " / ".join(f"{flag[(label == s) & where].mean():.3f}" for s in BLURRED)

    def crossed(flags_from) -> str:  # flags_from(fit) -> flags; judged on the other half
        out = []
        for fit in (half, ~half):
            flag, other = flags_from(fit), ~fit
            out.append(f"{flag[clean & other].mean():.3f}, {flag[(label == BLURRED[0]) & other].mean():.3f}")
        return "; ".join(out)

    rng = np.random.default_rng(0)
    draws = [rng.random(len(rows)) < 0.5 for _ in range(SPLITS)]

    def matched(flags_from) -> str:
        """Over random halvings, each way round: the rule's recall at k1.0 on the other half, against the
        default's there with at most as many clean images flagged (so a rule gains nothing by flagging more)."""
        ours, theirs = [], []
        for draw in draws:
            for fit in (draw, ~draw):
                flag, other = flags_from(fit), ~fit
                ordered = np.sort(default[clean & other])
                cut = ordered[min(int(flag[clean & other].sum()), ordered.size - 1)]
                ours.append(flag[(label == BLURRED[0]) & other].mean())
                theirs.append((default[(label == BLURRED[0]) & other] < cut).mean())
        gain = np.array(ours) - np.array(theirs)
        return f"{np.mean(ours):.3f} / {np.mean(theirs):.3f} ({int(np.sum(gain > 0))} of {gain.size})"

    lines = ["| measure | rule | clean flagged | recall k1.0 / k1.5 / k2.5 | halves: clean flagged, k1.0 | "
             "held out, k1.0: rule / default at as many clean flags, its best threshold there (rule ahead in) |",
             "|---|---|---:|---:|---|---:|"]

    def alone(name: str, s: np.ndarray) -> None:
        flag = s < _at_rate(s, clean, rate)
        lines.append(f"| {name} | alone | {flag[clean].mean():.3f} | {recall(flag, everything)} | "
                     f"{crossed(lambda fit: s < _at_rate(s, clean & fit, rate))} | "
                     f"{matched(lambda fit: s < _at_rate(s, clean & fit, rate))} |")

    alone("edge sharpness (the default)", default)
    for name, s in other_measures(rows).items():
        alone(name, s)
        for both in (False, True):
            def flags(fit, s=s, both=both):
                ta, tb = _fit_pair(default, s, label, fit, both, rate)
                return ((default < ta) & (s < tb)) if both else ((default < ta) | (s < tb))
            flag = flags(everything)
            lines.append(f"| {name} | {'and' if both else 'or'} the default | {flag[clean].mean():.3f} | "
                         f"{recall(flag, everything)} | {crossed(flags)} | {matched(flags)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/rayproc-bench-detection"))
    parser.add_argument("--threshold", type=float, default=BLURRY_THRESHOLDS[RAYPROC])
    parser.add_argument("--measures", action="store_true",
                        help="also compare the other measures tried, alone and with the default")
    parser.add_argument("--noise", type=float, default=0.0,
                        help="add Gaussian noise of this many levels to every image (clean and blurred) at its own "
                             "size before the thumbnail, as a camera adds it after the blur (images decoded whole)")
    args = parser.parse_args(argv)
    if not (args.work / "labels.json").exists():
        parser.error(f"no labelled set under {args.work}: run benchmarks.bench_detection first")
    rows = score_set(args.work, args.noise)
    print(report(rows, args.threshold))
    if args.measures:
        print("\n" + compare(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
