"""Selection numerics: which items of a dataset to keep.

Pure functions over arrays, deterministic for a given ``seed``. Every function
returns positions into its input; sets come back sorted ascending as ``int64``
so that results are comparable and easy to merge, except
:func:`k_center_greedy`, whose order of selection is itself the result.
The ``*_reasons`` helpers turn a selection into one short, user-facing string
per selected item, aligned with the returned indices.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections.abc import Callable, Mapping, Sequence

import numpy as np

#: Comparison operators a threshold rule may use.
OPERATORS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}

#: Reason given to every item of a plain random sample.
REASON_RANDOM = "random sample"
#: Reason given when a threshold filter has no rules and so keeps everything.
REASON_NO_RULES = "no threshold rules"

# ``ratio * n`` is computed in binary floating point, so 0.285 * 100 comes out
# as 28.4999...; this nudge makes "round half up" mean what a user expects.
_ROUND_EPS = 1e-9

_INDEX_DTYPE = np.int64


def _indices(values: np.ndarray) -> np.ndarray:
    return np.sort(np.asarray(values, dtype=_INDEX_DTYPE))


def _resolve_count(n_items: int, count: int | None, ratio: float | None) -> int:
    """How many of ``n_items`` to select, from exactly one of ``count`` or ``ratio``."""
    if n_items < 0:
        raise ValueError(f"n_items must be >= 0, got {n_items}")
    if (count is None) == (ratio is None):
        raise ValueError("give exactly one of count or ratio")
    if count is not None:
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        return min(int(count), n_items)
    if not (math.isfinite(ratio) and 0.0 <= ratio <= 1.0):
        raise ValueError(f"ratio must be within [0, 1], got {ratio}")
    if ratio == 0.0 or n_items == 0:
        return 0
    # A positive ratio of a non-empty set always keeps something.
    return min(max(math.floor(ratio * n_items + 0.5 + _ROUND_EPS), 1), n_items)


def random_sample(n_items: int, *, count: int | None = None, ratio: float | None = None, seed: int) -> np.ndarray:
    """A uniform random subset of ``range(n_items)``, without replacement.

    Give exactly one of ``count`` (more than ``n_items`` selects all) or ``ratio``
    in [0, 1] (``ratio * n_items`` rounded half up, and at least one item when
    ``ratio > 0`` and there are items).
    """
    k = _resolve_count(n_items, count, ratio)
    rng = np.random.default_rng(seed)
    return _indices(rng.choice(n_items, size=k, replace=False))


def _strata(labels: Sequence[str | None]) -> tuple[np.ndarray, list[str | None]]:
    """Stratum code per item (codes in order of first appearance) and the stratum labels."""
    codes: dict[str | None, int] = {}
    per_item = np.fromiter((codes.setdefault(label, len(codes)) for label in labels),
                           dtype=_INDEX_DTYPE, count=len(labels))
    return per_item, list(codes)


def _allocate(sizes: np.ndarray, k: int) -> np.ndarray:
    """Split ``k`` over strata of ``sizes`` in proportion, by largest remainder.

    Integer arithmetic throughout (quota ``k * s / n`` as quotient and
    remainder), so ties are exact and broken the same way on every machine:
    larger stratum first, then first appearance. When ``k`` covers every stratum,
    each gets at least one item, taken from the strata most above their quota.
    """
    n = int(sizes.sum())
    m = sizes.size
    scaled = k * sizes
    alloc = scaled // n
    remainder = scaled % n
    left = k - int(alloc.sum())
    # np.lexsort sorts by its last key first.
    order = np.lexsort((np.arange(m), -sizes, -remainder))
    alloc[order[:left]] += 1

    if k >= m:
        empty = np.flatnonzero(alloc == 0)
        # Surplus over quota, times n to stay integral: n * a - k * s.
        # Min-heap on (-surplus, -size, position): the most over-served, larger stratum gives first.
        def entry(i: int) -> tuple[int, int, int]:
            return -(n * int(alloc[i]) - int(scaled[i])), -int(sizes[i]), i

        heap = [entry(i) for i in np.flatnonzero(alloc > 1)]
        heapq.heapify(heap)
        for i in empty:
            donor = heapq.heappop(heap)[2]
            alloc[donor] -= 1
            alloc[i] = 1
            if alloc[donor] > 1:
                heapq.heappush(heap, entry(donor))
    return alloc


def stratified_sample(labels: Sequence[str | None], *, count: int | None = None, ratio: float | None = None,
                      seed: int) -> np.ndarray:
    """A random subset that keeps the label proportions of ``labels``.

    ``None`` (unlabelled) is a stratum of its own. The total is exactly the
    requested size (``count`` or ``ratio`` as in :func:`random_sample`), split by
    largest remainder; when it is at least the number of strata, every stratum
    keeps at least one item, so rare classes are never sampled away. Within a
    stratum the choice is random with ``seed``.
    """
    n = len(labels)
    k = _resolve_count(n, count, ratio)
    if k == 0:
        return np.empty(0, dtype=_INDEX_DTYPE)
    codes, _ = _strata(labels)
    sizes = np.bincount(codes)
    alloc = _allocate(sizes, k)

    # A random key per item, then the ``alloc`` smallest keys of each stratum.
    keys = np.random.default_rng(seed).random(n)
    order = np.lexsort((keys, codes))
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    rank = np.arange(n) - starts[codes[order]]
    return _indices(order[rank < alloc[codes[order]]])


def stratified_reasons(labels: Sequence[str | None], indices: np.ndarray) -> list[str]:
    """Per selected item: its stratum and how many of that stratum were kept."""
    codes, strata = _strata(labels)
    sizes = np.bincount(codes, minlength=len(strata))
    picked = codes[np.asarray(indices, dtype=_INDEX_DTYPE)]
    kept = np.bincount(picked, minlength=len(strata))
    return [f"stratum {strata[c]!r}: {kept[c]} of {sizes[c]} kept" for c in picked]


def _columns(values: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    columns = {name: np.asarray(v, dtype=np.float64) for name, v in values.items()}
    lengths = {name: c.shape for name, c in columns.items()}
    if any(len(shape) != 1 for shape in lengths.values()) or len({s[0] for s in lengths.values()}) > 1:
        raise ValueError(f"feature columns must be 1-D and of equal length, got shapes {lengths}")
    n = next(iter(columns.values())).size if columns else 0
    return columns, n


def _check_rule(rule: tuple[str, str, float], columns: Mapping[str, np.ndarray]) -> None:
    feature, op, value = rule
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"the threshold for {feature!r} must be a number, got {value!r}") from None
    if feature not in columns:
        raise ValueError(f"unknown feature {feature!r}; available features: {', '.join(sorted(columns)) or '(none)'}")
    if op not in OPERATORS:
        raise ValueError(f"unknown operator {op!r} in rule for {feature!r}; valid operators: {', '.join(OPERATORS)}")
    if math.isnan(value):
        raise ValueError(f"the threshold for {feature!r} is NaN, which nothing can pass")


def threshold_filter(values: dict[str, np.ndarray], rules: Sequence[tuple[str, str, float]]) -> np.ndarray:
    """The items for which every rule ``(feature, op, value)`` holds.

    ``op`` is one of :data:`OPERATORS`. A NaN feature value (a missing measure)
    never passes a rule, not even ``!=``. No rules select every item.
    """
    columns, n = _columns(values)
    keep = np.ones(n, dtype=bool)
    for rule in rules:
        _check_rule(rule, columns)
        feature, op, value = rule
        column = columns[feature]
        keep &= OPERATORS[op](column, float(value)) & ~np.isnan(column)
    return np.flatnonzero(keep).astype(_INDEX_DTYPE)


def threshold_reasons(values: dict[str, np.ndarray], rules: Sequence[tuple[str, str, float]],
                      indices: np.ndarray) -> list[str]:
    """Per selected item: each rule with the item's value, e.g. ``brightness=0.42 >= 0.3``."""
    columns, _ = _columns(values)
    for rule in rules:
        _check_rule(rule, columns)
    if not rules:
        return [REASON_NO_RULES] * len(indices)
    return ["; ".join(f"{f}={columns[f][i]:.6g} {op} {v:g}" for f, op, v in rules) for i in indices]


def _ranking(values: np.ndarray, largest: bool) -> np.ndarray:
    """Positions of the non-NaN values, best first; a stable sort keeps ties in index order."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {v.shape}")
    order = np.argsort(-v if largest else v, kind="stable")
    # argsort puts NaN last either way.
    return order[: np.count_nonzero(~np.isnan(v))]


def top_k(values: np.ndarray, k: int, *, largest: bool = True) -> np.ndarray:
    """The ``k`` items with the largest (or smallest) values.

    Ties go to the lower index, so the result never depends on the sort
    algorithm. NaN is never selected; ``k`` above the number of valid values
    selects all of them.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return _indices(_ranking(values, largest)[:k])


def top_k_reasons(values: np.ndarray, indices: np.ndarray, *, largest: bool = True) -> list[str]:
    """Per selected item: its rank (1 is best) and value."""
    values = np.asarray(values, dtype=np.float64)
    ranking = _ranking(values, largest)
    rank = np.empty(values.shape[0], dtype=_INDEX_DTYPE)
    rank[ranking] = np.arange(1, ranking.size + 1)
    side = "largest" if largest else "smallest"
    return [f"rank {rank[i]} of {ranking.size} ({side}), value {float(values[i]):.6g}" for i in indices]


def _standardize(x: np.ndarray) -> np.ndarray:
    """Z-score each column, so that no feature dominates distances by its unit alone.

    Constant columns carry no information and become 0 rather than NaN.
    """
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    safe = np.where(std > 0, std, 1.0)
    return np.where(std > 0, (x - mean) / safe, 0.0)


def k_center_greedy(features: np.ndarray, k: int, *, seed: int,
                    standardize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center (farthest-point) selection: a small subset that covers feature space.

    The first point is drawn uniformly with ``seed`` (not the point nearest the
    mean, which would make every run start from the same dense region); each next
    point is the one farthest from everything selected so far, ties to the lower
    index. Returns ``(order, distance)``: indices in order of selection (not
    sorted) and, for each, its Euclidean distance to the previously selected set
    when picked (``inf`` for the first). Distances never increase after the
    first. ``k`` above ``n`` selects every point.

    With ``standardize`` columns are z-scored first. Cost is O(n * k * d) time and
    O(n * d) memory: a running minimum distance per point, never an n x n matrix.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D (n, d) array, got shape {x.shape}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values; impute or drop those items first")
    n = x.shape[0]
    k = min(k, n)
    order = np.empty(k, dtype=_INDEX_DTYPE)
    distance = np.empty(k, dtype=np.float64)
    if k == 0:
        return order, distance
    if standardize:
        x = _standardize(x)

    # ||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2: one matrix-vector product per step
    # instead of an (n, d) temporary.
    sq_norms = np.einsum("ij,ij->i", x, x)
    min_sq = np.full(n, np.inf)
    current = int(np.random.default_rng(seed).integers(n))
    order[0], distance[0] = current, np.inf
    for step in range(1, k):
        center = x[current]
        sq = sq_norms - 2.0 * (x @ center) + sq_norms[current]
        np.maximum(sq, 0.0, out=sq)  # rounding can make a near-zero distance negative
        np.minimum(min_sq, sq, out=min_sq)
        # Selected points must never be picked again, even among exact duplicates.
        min_sq[current] = -np.inf
        current = int(np.argmax(min_sq))
        order[step], distance[step] = current, math.sqrt(min_sq[current])
    return order, distance


def k_center_reasons(order: np.ndarray, distance: np.ndarray) -> list[str]:
    """Per selected item, in selection order: when it was picked and how far it was from the rest."""
    return [f"k-center pick {step + 1}: first (seeded)" if np.isinf(d)
            else f"k-center pick {step + 1}: distance {d:.6g} to the selected set"
            for step, d in enumerate(np.asarray(distance, dtype=np.float64))]
