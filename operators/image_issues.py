"""Issue detection for analysis: cleanvision's issue types, each with a score per image and a threshold.

Every issue has a score in [0, 1] where lower is worse, and an image has the
issue when its score is under the threshold, as in cleanvision 0.3.7. Two
profiles: ``rayproc`` (the default) measures blur by the sharpness of the
image's edges and confirms near duplicates by the correlation of their layouts
and a check of the candidates' files (``docs/blur.md``); ``cleanvision`` uses
cleanvision's own blur score and pHash grouping, flag for flag
(``docs/cleanvision-parity.md``). Every other issue is the same in both.
"""

from __future__ import annotations

import functools
import weakref
from collections import OrderedDict
from typing import Annotated, ClassVar, Literal

import cv2
import numpy as np
from PIL import Image
from pydantic import Field

from operators import duplicates as D
from operators import features as F
from operators import hashing as H
from operators import image_stats as S
from operators.analyse import ASPECT_RATIO, ENTROPY, GRAYSCALE, HEIGHT, WIDTH
from operators.base import (
    Finalized,
    ImageBatch,
    Operator,
    PerItem,
    RecordTable,
    StrictParams,
    TaskType,
)
from operators.image_io import full_pixel_digest, gray_view_of, load_gray_view, load_rgb_view
from operators.pipeline import ITEM

DARK = "dark"
LIGHT = "light"
BLURRY = "blurry"
LOW_INFORMATION = "low_information"
ODD_ASPECT_RATIO = "odd_aspect_ratio"
ODD_SIZE = "odd_size"
GRAYSCALE_ISSUE = "grayscale"
EXACT_DUPLICATES = "exact_duplicates"
NEAR_DUPLICATES = "near_duplicates"
ISSUE_TYPES = (DARK, LIGHT, BLURRY, LOW_INFORMATION, ODD_ASPECT_RATIO, ODD_SIZE, GRAYSCALE_ISSUE, EXACT_DUPLICATES,
               NEAR_DUPLICATES)

# Per-item raw properties this operator computes in the map stage.
BRIGHTNESS_P99 = "brightness_p99"
BRIGHTNESS_P05 = "brightness_p05"
EDGE_STD = "edge_std"
GRAY_HIST_STD = "gray_histogram_std"
PHASH = "phash"
SHARPNESS = "sharpness"
LAYOUT = "layout"
LAYOUT_HASH = "layout_hash"
LAYOUT_HASH_BRIGHT = "layout_hash_bright"
PIXEL_DIGEST = "pixel_digest"
ISSUES = "issues"
SCORES = "issue_scores"
ISSUES_FILE = "issues.jsonl"
MAX_GROUPS_IN_RESULT = 100

RAYPROC = "rayproc"
CLEANVISION = "cleanvision"
IssueProfile = Literal["rayproc", "cleanvision"]
#: Default blurry threshold per profile: on ``sharpness`` (rayproc) or cleanvision's blur score.
BLURRY_THRESHOLDS = {RAYPROC: 0.68, CLEANVISION: 0.29}
#: Defaults of the ``rayproc`` profile's near-duplicate checks (``docs/blur.md``).
DEFAULT_SIMILARITY = 0.9
DEFAULT_DIFFERENCE = 0.15

class ImageIssues(Operator):
    """Flags image issues, each with a score per image (lower is worse) and a threshold you can set per task.

    Issue types: ``dark`` (99th percentile of perceived brightness < 0.32),
    ``light`` (5th percentile > 0.95), ``blurry``, ``low_information`` (entropy
    < 3 bits), ``odd_aspect_ratio`` (short side / long side < 0.35), ``odd_size``
    (sqrt(area) far outside the dataset's interquartile range), ``grayscale``
    (stored in a grayscale mode), ``exact_duplicates`` (identical decoded pixels)
    and ``near_duplicates``, grouped without comparing all pairs.

    ``issue_profile`` chooses how blur and near duplicates are found:

    - ``rayproc`` (default): ``blurry`` when the sharpness of the image's edges
      (in [0, 1], measured only where there are edges, so flat backgrounds,
      graphics, text and small images are judged by their edges) is under
      ``blurry_threshold`` (default 0.68); near duplicates are images whose
      layout hashes are within ``near_duplicate_distance`` bits, whose
      16x16 layouts correlate at least ``near_duplicate_similarity`` and whose
      64x64 gray views, once their tones are matched, differ nowhere by more
      than ``near_duplicate_difference`` (the views are decoded again for
      candidate pairs only): resized, re-encoded, brightened, darkened and
      grayscale copies are found, look-alike drawings that differ in a line or
      a letter are not grouped. Copies cropped by up to about 10% of each side
      are found by a search of 225 crop windows of each picture's layout,
      confirmed on the files by matching the copy to its picture; copies brightened
      until their highlights clip, by a search of each picture's layout
      brightened and clipped, confirmed against its colours brightened alike.
    - ``cleanvision``: cleanvision 0.3.7's blur score (edge strength of a 64 px
      preview, threshold 0.29) and pHash within ``near_duplicate_distance`` bits.

    Output: ``issues.jsonl`` (per image: its issues and scores) and, in
    ``result.issues``, counts per issue type, the thresholds used and the
    duplicate groups.
    """

    name = "image_issues"
    task_type = TaskType.ANALYSE
    requires = ("image_features",)
    # EDGE_STD and GRAY_HIST_STD only with the cleanvision profile.
    columns: ClassVar[tuple[str, ...]] = (BRIGHTNESS_P99, BRIGHTNESS_P05, EDGE_STD, GRAY_HIST_STD, PHASH,
                                          SHARPNESS, LAYOUT, LAYOUT_HASH, LAYOUT_HASH_BRIGHT, PIXEL_DIGEST)
    statistics: ClassVar[tuple[str, ...]] = (S.BRIGHTNESS_PERCENTILES, S.PHASH, S.LAYOUT, S.BRIGHT_LAYOUT,
                                             S.SHARPNESS)

    class Params(StrictParams):
        issue_profile: IssueProfile = Field(
            RAYPROC, description="How blur and near duplicates are found: 'rayproc' (edge sharpness, confirmed "
                                 "layout matches) or 'cleanvision' (cleanvision 0.3.7's scores, flag for flag).")
        dark_threshold: Annotated[float, Field(ge=0, le=1)] = 0.32
        light_threshold: Annotated[float, Field(ge=0, le=1)] = 0.05
        blurry_threshold: Annotated[float | None, Field(
            ge=0, le=1, description="Flag blurry below this score; default 0.68 (rayproc) or 0.29 (cleanvision). "
                                    "Higher finds milder blur and flags more sharp images: on the detection "
                                    "benchmark (rayproc) 0.68 finds 0.56 of a one-pixel blur of a 128 px view "
                                    "with 1.9% of sharp images flagged, 0.76 finds 0.92 with 4.3%.")
        ] = None
        low_information_threshold: Annotated[float, Field(ge=0, le=1)] = 0.3
        odd_aspect_ratio_threshold: Annotated[float, Field(ge=0, le=1)] = 0.35
        odd_size_iqr_factor: Annotated[float, Field(gt=0, le=100)] = 3.0
        near_duplicate_distance: Annotated[int, Field(
            ge=0, le=16, description="Max differing hash bits (layout hash, or pHash for 'cleanvision').")] = 4
        near_duplicate_similarity: Annotated[float, Field(
            ge=-1, le=1, description="Min correlation of two images' 16x16 layouts for them to be near "
                                     "duplicates (profile 'rayproc').")] = DEFAULT_SIMILARITY
        near_duplicate_difference: Annotated[float, Field(
            ge=0, le=100, description="Max local difference of two near duplicates' 64x64 gray views, "
                                      "after matching their tones (profile 'rayproc'; 0 is the same picture).")
        ] = DEFAULT_DIFFERENCE
        grayscale_by_content: bool = Field(
            False, description="Also flag colour-mode images whose three channels are equal.")

    @property
    def needs_previews(self) -> bool:
        return self.params.issue_profile == CLEANVISION  # cleanvision's blur score is taken on its 64 px preview

    def process_batch(self, batch: ImageBatch) -> dict[str, list]:
        p99, p05 = batch.statistic(S.BRIGHTNESS_PERCENTILES).T
        hashes = batch.statistic(S.PHASH)
        layout = batch.statistic(S.LAYOUT)
        out: dict[str, list] = {}
        if self.needs_previews:
            edge, hist = zip(*(_edge_stats(p) for p in batch.previews), strict=True)
            out = {EDGE_STD: list(edge), GRAY_HIST_STD: list(hist)}
        return {
            **out, BRIGHTNESS_P99: p99, BRIGHTNESS_P05: p05,
            PHASH: [H.hash_to_hex(h) for h in hashes],
            SHARPNESS: batch.statistic(S.SHARPNESS),
            LAYOUT: H.layout_to_hex(layout), LAYOUT_HASH: [H.hash_to_hex(h) for h in H.similarity_hash(layout)],
            LAYOUT_HASH_BRIGHT: [H.hash_to_hex(h) for h in H.similarity_hash(batch.statistic(S.BRIGHT_LAYOUT))],
            PIXEL_DIGEST: list(batch.digests),
        }

    @property
    def blurry_threshold(self) -> float:
        """The threshold in force: the one asked for, else the profile's default."""
        p = self.params
        return BLURRY_THRESHOLDS[p.issue_profile] if p.blurry_threshold is None else p.blurry_threshold

    def blurry_scores(self, table: RecordTable) -> np.ndarray:
        if self.params.issue_profile == CLEANVISION:
            return blurry_score(table.column(EDGE_STD), table.column(GRAY_HIST_STD))
        return table.column(SHARPNESS)

    def duplicate_groups(self, table: RecordTable) -> tuple[list[list[int]], list[list[int]]]:
        """Exact and near-duplicate groups of ok-item positions; a near group equal to an exact group is
        left out (it says nothing more)."""
        exact = confirmed_exact_groups(table)
        p = self.params
        near = near_duplicate_groups(table, p.issue_profile, p.near_duplicate_distance,
                                     p.near_duplicate_similarity, p.near_duplicate_difference)
        return exact, [g for g in near if g not in exact]

    def finalize(self, table: RecordTable) -> Finalized:
        p = self.params
        n = table.ok_count
        # Duplicates first, while no per-item scores exist yet: the search is the largest step.
        exact, near = self.duplicate_groups(table)
        scores = {
            DARK: table.column(BRIGHTNESS_P99),
            LIGHT: 1.0 - table.column(BRIGHTNESS_P05),
            BLURRY: self.blurry_scores(table),
            LOW_INFORMATION: np.minimum(0.1 * table.column(ENTROPY), 1.0),
            ODD_ASPECT_RATIO: np.minimum(table.column(ASPECT_RATIO), 1.0 / np.maximum(table.column(ASPECT_RATIO),
                                                                                        1e-12)),
            ODD_SIZE: odd_size_score(np.sqrt(table.column(WIDTH) * table.column(HEIGHT)), p.odd_size_iqr_factor),
        }
        thresholds = {DARK: p.dark_threshold, LIGHT: p.light_threshold, BLURRY: self.blurry_threshold,
                      LOW_INFORMATION: p.low_information_threshold, ODD_ASPECT_RATIO: p.odd_aspect_ratio_threshold,
                      ODD_SIZE: 0.5}
        flags = {name: scores[name] < thresholds[name] for name in scores}
        modes = table.values("mode")
        gray_mode = np.array([m in ("L", "LA", "1", "I", "I;16", "F") for m in modes], dtype=bool)
        if p.grayscale_by_content:
            gray_mode |= np.array([bool(g) for g in table.values(GRAYSCALE)], dtype=bool)
        flags[GRAYSCALE_ISSUE] = gray_mode
        scores[GRAYSCALE_ISSUE] = (~gray_mode).astype(np.float64)

        for name, groups in ((EXACT_DUPLICATES, exact), (NEAR_DUPLICATES, near)):
            score = np.ones(n)
            for group in groups:
                score[group] = 1.0 / len(group)
            scores[name] = score
            flags[name] = score < 1.0

        # Per item, only bits and scores are held; each item's issue list and score dict
        # are built when its line is written.
        bits = np.zeros(n, dtype=np.int64)
        for k, name in enumerate(ISSUE_TYPES):
            bits |= flags[name].astype(np.int64) << k
        graded = np.empty((n, len(ISSUE_TYPES)))
        for k, name in enumerate(ISSUE_TYPES):
            graded[:, k] = scores.pop(name)  # one copy at a time, not all nine twice over
        issues_of = PerItem(n, lambda i: list(_issue_names(int(bits[i]))))
        scores_of = PerItem(n, lambda i: dict(zip(ISSUE_TYPES, [round(v, 6) for v in graded[i].tolist()],
                                                  strict=True)))
        table.set(ISSUES, issues_of)
        table.set(SCORES, scores_of)
        rows = ({ITEM: key, ISSUES: issues_of[i], "scores": scores_of[i]}
                for i, key in enumerate(table.iter_values(ITEM)))
        with_issues = bits[bits != 0]
        combinations, first, sizes = np.unique(with_issues, return_index=True, return_counts=True)
        # Most frequent first, ties in order of first appearance (as Counter.most_common orders them).
        top = np.lexsort((first, -sizes))[:20]
        counts = {name: int(flags[name].sum()) for name in ISSUE_TYPES}
        summary = {
            "counts": counts,
            "thresholds": {**thresholds, "near_duplicate_distance": p.near_duplicate_distance,
                           **({"near_duplicate_similarity": p.near_duplicate_similarity,
                               "near_duplicate_difference": p.near_duplicate_difference}
                              if p.issue_profile == RAYPROC else {})},
            "exact_duplicate_groups": [_keys(table, g) for g in exact[:MAX_GROUPS_IN_RESULT]],
            "near_duplicate_groups": [_keys(table, g) for g in near[:MAX_GROUPS_IN_RESULT]],
            "exact_duplicate_group_count": len(exact),
            "near_duplicate_group_count": len(near),
            "images_with_issues": int(with_issues.size),
            "by_combination": {",".join(_issue_names(int(combinations[k]))): int(sizes[k]) for k in top},
        }
        return Finalized(summary={"issues": summary}, files={ISSUES_FILE: rows})


def _keys(table: RecordTable, group: list[int]) -> list[str]:
    """The item keys of a group of ok-item positions."""
    return [table.value(ITEM, int(table.ok_index[i])) for i in group]


@functools.lru_cache(maxsize=1 << len(ISSUE_TYPES))
def _issue_names(bits: int) -> tuple[str, ...]:
    return tuple(name for k, name in enumerate(ISSUE_TYPES) if bits >> k & 1)


_CONFIRMED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def confirmed_exact_groups(table: RecordTable) -> list[list[int]]:
    """Groups of ok items (positions, as in ``table.values``) whose decoded pixels are identical.

    Candidates share the digest taken at decode time (JPEGs at draft scale); each candidate
    group is confirmed against the files (``operators.duplicates.confirm_exact_groups``) once
    per table, however many operators ask. Without a ``root`` to find the files the
    candidates are returned as they are."""
    if table in _CONFIRMED:
        return _CONFIRMED[table]
    candidates = table.groups(PIXEL_DIGEST)
    if table.root is not None and candidates:
        members = sorted({i for group in candidates for i in group})
        paths: dict[int, str] = {i: table.item_path(table.value(ITEM, table.ok_index[i])) for i in members}
        confirmed = D.confirm_exact_groups(candidates, paths, _file_digest, full_pixel_digest)
    else:
        confirmed = candidates
    _CONFIRMED[table] = confirmed
    return confirmed


def pixel_hash_groups(table: RecordTable, max_distance: int) -> list[list[int]]:
    """Near-duplicate groups as cleanvision finds them (with a radius): pHashes within ``max_distance`` bits."""
    hashes = np.fromiter((H.hex_to_hash(h) for h in table.iter_values(PHASH)), dtype=np.uint64,
                         count=table.ok_count)
    return D.near_duplicate_groups(hashes, max_distance)


def near_duplicate_groups(table: RecordTable, profile: IssueProfile, max_distance: int,
                          min_similarity: float = DEFAULT_SIMILARITY,
                          max_difference: float = DEFAULT_DIFFERENCE) -> list[list[int]]:
    """The near-duplicate groups of ok-item positions, as ``profile`` finds them: every operator that
    groups near duplicates asks here, so they all agree. Computed once per table and arguments (the
    analysis and the cleaning of one task ask for the same groups; the check decodes files)."""
    found = _NEAR_GROUPS.setdefault(table, {})
    key = (profile, max_distance) if profile == CLEANVISION else (profile, max_distance, min_similarity,
                                                                   max_difference)
    if key not in found:
        found[key] = (pixel_hash_groups(table, max_distance) if profile == CLEANVISION
                      else layout_groups(table, max_distance, min_similarity, max_difference))
    return found[key]


_NEAR_GROUPS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def layout_groups(table: RecordTable, max_distance: int, min_similarity: float,
                  max_difference: float | None = None) -> list[list[int]]:
    """Near-duplicate groups: images whose layout hashes or pHashes are within ``max_distance`` bits (found
    by LSH banding, never by comparing all pairs; the two hashes fail on different edits, so each finds
    copies the other misses), each candidate pair confirmed by the correlation of the two 16x16 layouts
    and then, when the files can be read (``table.root``) and ``max_difference`` is set, by
    :class:`DetailCheck`: look-alike drawings that differ in one line or letter share a layout."""
    n = table.ok_count
    hashes = np.empty((n, 2), dtype=np.uint64)
    hashes[:, 0] = np.fromiter((H.hex_to_hash(h) for h in table.iter_values(LAYOUT_HASH)), dtype=np.uint64, count=n)
    hashes[:, 1] = np.fromiter((H.hex_to_hash(h) for h in table.iter_values(PHASH)), dtype=np.uint64, count=n)
    layouts = np.frombuffer(bytes.fromhex("".join(table.iter_values(LAYOUT))), dtype=np.uint8).reshape(n, -1)
    detail = DetailCheck(table, max_difference) if table.root is not None and max_difference is not None else None

    def similar(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        a, b = H.normalized_layout(layouts[i]), H.normalized_layout(layouts[j])
        keep = np.einsum("ij,ij->i", a, b) >= min_similarity
        if detail is not None:
            held = np.flatnonzero(keep)
            plain = detail(i[held], j[held])
            # A candidate whose views differ may be a copy brightened until it clipped: one of the two, simulated.
            doubt = held[~plain]
            if doubt.size:
                plain[~plain] = detail.brightened(i[doubt], j[doubt]) | detail.brightened(j[doubt], i[doubt])
            keep[held] = plain
        return keep

    links = crop_links(layouts, min_similarity, detail)
    bright = bright_links(table, hashes[:, 0], max_distance, detail)
    links = (np.concatenate([links[0], bright[0]]), np.concatenate([links[1], bright[1]]))
    return D.near_duplicate_groups(hashes, max_distance, keys=layouts, confirm=similar, links=links)


#: Gains a brightened copy is checked against (its original's colours multiplied and clipped at white).
BRIGHT_GAINS = (1.1, 1.2, 1.3, 1.4, 1.5)
#: Share of ``near_duplicate_difference`` a brightened copy may differ by from its simulated original: once
#: both are clipped alike, copies differ by little (0.025 at most on the benchmark, ``docs/blur.md``).
BRIGHT_DIFFERENCE_SHARE = 0.5
#: Levels a brightened copy's view must span at least (a blank image matches every washed-out picture).
BRIGHT_MIN_RANGE = 8


def bright_links(table: RecordTable, layout_hashes: np.ndarray, max_distance: int,
                 detail: DetailCheck | None) -> tuple[np.ndarray, np.ndarray]:
    """Confirmed pairs ``(picture, copy)`` where the copy is the picture brightened until its highlights
    clip: the copy's layout hash is within ``max_distance`` bits of the picture's brightened layout hash
    (``layout_hash_bright``, searched by :func:`operators.duplicates.query_pairs_in_blocks`), and the copy's
    view differs from one of the picture's brightened and clipped views (:data:`BRIGHT_GAINS`) by at most
    :data:`BRIGHT_DIFFERENCE_SHARE` of the detail check's threshold. Only with the files: the clipped
    highlights leave too little of the layout to judge by."""
    empty = np.zeros(0, dtype=np.intp)
    if detail is None or table.ok_count == 0:
        return empty, empty
    values = list(table.iter_values(LAYOUT_HASH_BRIGHT))
    if any(v is None for v in values):  # records made before the column existed
        return empty, empty
    queries = np.fromiter((H.hex_to_hash(h) for h in values), dtype=np.uint64, count=len(values))
    owner, target, _ = D.query_pairs_in_blocks(layout_hashes, [(0, queries[:, None])], max_distance)
    if owner.size == 0:
        return empty, empty
    keep = detail.brightened(owner, target)
    return owner[keep], target[keep]


#: Bits within which a crop's coarse layout hash must be of its whole copy's, and the LSH bands it is looked
#: up by. Each item has 225 crop hypotheses, so the bands are those of a radius of 2 bits (three of 21-22
#: bits: at a million items the search checks about as many random band matches as the whole-picture
#: search); a similarity hash of 64 cells differs in about 3 bits at a correlation of 0.99, so pairs up to 4
#: bits apart that agree on a band are kept (``docs/blur.md``).
CROP_DISTANCE = 4
CROP_BANDS = 3
#: Probes of each whole coarse hash in the crop search's index: the hash with one of its least certain bits
#: flipped (``hashing.coarse_hash_probes``); each doubles the band matches checked.
CROP_PROBES = 1
#: Correlation a crop's coarse layout must reach with its copy's, at least: the best of 225 hypotheses
#: matches look-alike drawings more easily than one whole layout (``docs/blur.md``).
CROP_SIMILARITY = 0.95
#: Share of ``near_duplicate_difference`` a crop may differ by from the window of its picture it matches best
#: (``features.match_crop``): matched on the picture's own pixels, the benchmark's crops differ by 0.012 at
#: most; its crop candidates of different pictures by 0.027 (two recoloured lifebuoys the set counts as
#: different pictures), 0.040, then 0.087. At 0.4 (0.06) the pair at 0.040 made one more mixed group (pair
#: precision 0.979, under cleanvision's 0.981; 0.983 at 0.2) for no crop more; a drawing's crop also resized
#: 0.7x differs by 0.039 and is not confirmed (``docs/blur.md``).
CROP_DIFFERENCE_SHARE = 0.2
#: Pictures decoded for the crop check kept at a time (each up to 512 px on its longest side for a JPEG, a
#: PNG as it is): the check of a million items' candidates would otherwise keep every one of them.
FINE_CACHE = 256
#: Items whose crop hypotheses are made at a time (225 x 64 floats each: 7 MiB for 128 items). At 1,024 items a
#: block took 56-64 MiB, the largest allocation of a run's driver (its peak rose by 75 MiB in finalize); the
#: search costs the same CPU either way (its lookups follow the number of queries, not of blocks).
CROP_BLOCK = 128


def crop_candidates(layouts: np.ndarray, plain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs ``(picture, copy)``, once each, where one of the picture's crop hypotheses is within
    :data:`CROP_DISTANCE` bits of the copy's whole coarse layout hash or of one of its :data:`CROP_PROBES`
    probes (``hashing.coarse_hash_probes``), by LSH banding in :data:`CROP_BANDS` bands."""
    n = len(layouts)
    width = 1 + CROP_PROBES
    index = H.coarse_hash_probes(plain, CROP_PROBES).ravel()  # item i's hashes at i * width ...

    def blocks():  # hypotheses a block of items at a time: all of them would not fit at a million items
        for start in range(0, n, CROP_BLOCK):
            yield start, H.crop_hashes(layouts[start:start + CROP_BLOCK])[1]

    items = np.repeat(np.arange(n, dtype=np.int64), width)
    owner, target, _ = D.query_pairs_in_blocks(index, blocks(), CROP_DISTANCE, CROP_BANDS, items)
    return owner, target


def crop_links(layouts: np.ndarray, min_similarity: float,
               detail: DetailCheck | None) -> tuple[np.ndarray, np.ndarray]:
    """Confirmed pairs ``(picture, copy)`` where the copy was cut from the picture: a candidate of
    :func:`crop_candidates`, whose best crop hypothesis (``hashing.best_crops_of``) correlates with the
    copy's coarse layout at least ``min_similarity`` (and :data:`CROP_SIMILARITY`), and, with the files, whose
    copy's view differs from the window of the picture it matches best (:meth:`DetailCheck.crops`) by no
    more than :data:`CROP_DIFFERENCE_SHARE` of the detail check's threshold."""
    plain = H.whole_layouts(layouts)
    owner, target = crop_candidates(layouts, plain)
    if owner.size == 0:
        return owner, target
    which, correlation = H.best_crops_of(layouts, owner, plain[target])
    keep = correlation >= max(min_similarity, CROP_SIMILARITY)
    owner, target, which = owner[keep], target[keep], which[keep]
    if detail is not None and owner.size:
        keep = detail.crops(owner, target, H.crop_kept(which)[1])
        owner, target = owner[keep], target[keep]
    return owner, target


class DetailCheck:
    """Confirms candidate pairs on gray views of the files, decoded once per candidate image: a pair holds
    when its :func:`operators.features.local_difference` is at most ``max_difference``. An image whose
    file cannot be decoded any more confirms nothing."""

    def __init__(self, table: RecordTable, max_difference: float) -> None:
        self._table = table
        self._max_difference = max_difference
        self._views: dict[int, np.ndarray | None] = {}
        self._bright: dict[int, np.ndarray | None] = {}
        self._fine: OrderedDict[int, np.ndarray | None] = OrderedDict()
        self._sizes: np.ndarray | None = None

    def _view(self, position: int) -> np.ndarray | None:
        if position not in self._views and self._fine.get(position) is not None:  # the same pixels, resized
            self._views[position] = cv2.resize(self._fine[position], (F.DETAIL_SIDE, F.DETAIL_SIDE),
                                               interpolation=cv2.INTER_AREA)
        if position not in self._views:
            item = self._table.value(ITEM, int(self._table.ok_index[position]))
            self._views[position] = load_gray_view(self._table.item_path(item), F.DETAIL_SIDE)
        return self._views[position]

    def _fine_gray(self, position: int) -> np.ndarray | None:
        """The picture in gray as the views are decoded (a JPEG at draft scale of at least 256 px), not resized."""
        if position in self._fine:
            self._fine.move_to_end(position)
            return self._fine[position]
        item = self._table.value(ITEM, int(self._table.ok_index[position]))
        rgb = load_rgb_view(self._table.item_path(item), F.DETAIL_SIDE)
        self._fine[position] = None if rgb is None else np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
        if len(self._fine) > FINE_CACHE:  # the least recently used: candidates come sorted by their picture
            self._fine.popitem(last=False)
        return self._fine[position]

    def _bright_views(self, position: int) -> np.ndarray | None:
        """``(len(BRIGHT_GAINS), s, s)``: the gray views of the picture with its colours multiplied by each
        gain and clipped at white, as a brightened copy's are."""
        if position not in self._bright:
            item = self._table.value(ITEM, int(self._table.ok_index[position]))
            rgb = load_rgb_view(self._table.item_path(item), F.DETAIL_SIDE)
            self._bright[position] = None if rgb is None else np.stack([
                gray_view_of(np.clip(rgb * np.float32(gain) + np.float32(0.5), 0, 255).astype(np.uint8), F.DETAIL_SIDE)
                for gain in BRIGHT_GAINS])
        return self._bright[position]

    def brightened(self, owner: np.ndarray, copy: np.ndarray) -> np.ndarray:
        """Per pair, whether ``copy`` is ``owner`` brightened: its view against ``owner``'s brightened views,
        the best one deciding, within :data:`BRIGHT_DIFFERENCE_SHARE` of the threshold."""
        keep = np.zeros(owner.size, dtype=bool)
        for k, (a, b) in enumerate(zip(owner.tolist(), copy.tolist())):
            bright, view = self._bright_views(a), self._view(b)
            if bright is None or view is None or int(view.max()) - int(view.min()) < BRIGHT_MIN_RANGE:
                continue  # a flat view is predicted by anything: it confirms no edit
            same = np.broadcast_to(view, bright.shape)
            keep[k] = F.local_difference(bright, same).min() <= BRIGHT_DIFFERENCE_SHARE * self._max_difference
        return keep

    def crops(self, owner: np.ndarray, copy: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
        """Per pair, whether ``copy`` is a crop of ``owner``: its view against the window of ``owner`` it
        matches best (:meth:`crop_differences`), within :data:`CROP_DIFFERENCE_SHARE` of the threshold."""
        return self.crop_differences(owner, copy, kept) <= CROP_DIFFERENCE_SHARE * self._max_difference

    def _size(self, position: int) -> tuple[float, float]:
        if self._sizes is None:
            self._sizes = np.stack([self._table.column(WIDTH), self._table.column(HEIGHT)], axis=1)
        return float(self._sizes[position, 0]), float(self._sizes[position, 1])

    def crop_differences(self, owner: np.ndarray, copy: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
        """Per pair, the local difference of ``copy``'s view from the window of ``owner`` it matches best
        (``features.match_crop``, over the scales the two files' sizes allow: first the exact one of a crop
        kept at the picture's resolution, then any scale of the copy's aspect ratio), cut from ``owner``
        decoded as the views are, tone-matched as in :meth:`__call__`; infinite when a file cannot be decoded
        any more or no crop of ``owner`` has the copy's shape. ``kept`` (per pair, the share of ``owner``'s
        height the crop search's hypothesis keeps) narrows the scales searched to those near it."""
        out = np.full(owner.size, np.inf)
        limit = CROP_DIFFERENCE_SHARE * self._max_difference
        hints = [None] * owner.size if kept is None else np.asarray(kept, dtype=np.float64).tolist()
        for k, (a, b, hint) in enumerate(zip(owner.tolist(), copy.tolist(), hints)):
            (pw, ph), (cw, ch) = self._size(a), self._size(b)
            scales = F.match_scales((pw, ph), (cw, ch), hint)
            exact = bool(scales) and scales[0] == (cw / pw, ch / ph)
            if not scales:
                continue  # no crop of the picture has the copy's shape: nothing to decode
            picture, copied, view = self._fine_gray(a), self._fine_gray(b), self._view(b)
            if picture is None or copied is None or view is None:
                continue
            # The exact scale alone first: a plain crop is settled there, the search over scales is for the rest.
            # A plain crop's exact scale is always refined: at 64 px thin lines may still match it poorly.
            for tried, floor in ([(scales[:1], -1.0), (scales[1:], F.MATCH_MIN_CORRELATION)] if exact
                                 else [(scales, F.MATCH_MIN_CORRELATION)]):
                windows = F.match_crop(picture, copied, tried, min_correlation=floor)
                if windows:
                    aligned = F.cut_windows(picture, windows, F.DETAIL_SIDE)
                    out[k] = min(out[k], F.local_difference(aligned, np.broadcast_to(view, aligned.shape)).min())
                if out[k] <= limit:
                    break
        return out

    def __call__(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        keep = np.zeros(i.size, dtype=bool)
        pairs = [(k, self._view(a), self._view(b)) for k, (a, b) in enumerate(zip(i.tolist(), j.tolist()))]
        readable = [(k, a, b) for k, a, b in pairs if a is not None and b is not None]
        if readable:
            ks, a, b = zip(*readable, strict=True)
            keep[list(ks)] = F.local_difference(np.stack(a), np.stack(b)) <= self._max_difference
        return keep


def _file_digest(path: str) -> str | None:
    try:
        return H.file_digest(path)
    except OSError:
        return None


# Pillow's ImageFilter.FIND_EDGES kernel (scale 1, offset 0).
_FIND_EDGES = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float32)


def find_edges(gray: np.ndarray) -> np.ndarray:
    """Pillow's ``FIND_EDGES`` filter, bit for bit: the 3x3 kernel, results rounded and clipped to 0-255,
    and the one-pixel border left as it was (Pillow does not filter it). OpenCV does the convolution."""
    if min(gray.shape) < 3:
        return gray.copy()
    edges = cv2.filter2D(gray, cv2.CV_8U, _FIND_EDGES, borderType=cv2.BORDER_REPLICATE)
    edges[0, :], edges[-1, :], edges[:, 0], edges[:, -1] = gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]
    return edges


def _edge_stats(preview: np.ndarray) -> tuple[float, float]:
    """cleanvision's blur inputs: std of the FIND_EDGES image and std of the 256-bin histogram counts."""
    _, std = cv2.meanStdDev(find_edges(preview))
    hist = np.bincount(preview.ravel(), minlength=256)
    return float(std[0, 0]), float(hist.std())


def blurry_score(edge_std: np.ndarray, hist_std: np.ndarray, normalizing_factor: float = 0.01,
                 color_threshold: float = 0.18) -> np.ndarray:
    """cleanvision's blur score: edge strength, lifted for images with a peaked histogram."""
    blur = 1.0 - np.exp(-edge_std * normalizing_factor)
    std = 1.0 - np.exp(-hist_std * normalizing_factor)
    std = np.where(std <= color_threshold, 0.0, std)
    return np.minimum(blur + std, 1.0)


def odd_size_score(size: np.ndarray, iqr_factor: float) -> np.ndarray:
    """How far sqrt(area) lies from the middle of [q1 - f*IQR, q3 + f*IQR], as 1 - distance / gap.

    Differs from cleanvision on purpose: the IQR is floored at 10% of the median, so a
    dataset where most images share one size does not flag every other size."""
    if size.size == 0:
        return size
    q1, q3, median = np.percentile(size, [25, 75, 50])
    iqr = max(q3 - q1, 0.1 * median)
    low, high = q1 - iqr_factor * iqr, q3 + iqr_factor * iqr
    gap = high - low
    return 1.0 - np.clip(np.abs(size - (low + high) / 2) / gap, 0, 1) if gap > 0 else np.ones_like(size)
