"""Selection numerics: exact sizes, determinism by seed, and the greedy k-center invariants."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from operators import selection as S

LABELS_70_20_10 = ["cat"] * 70 + ["dog"] * 20 + [None] * 10
#: A rare class of one item next to a common and an uncommon one.
LABELS_90_9_1 = ["a"] * 90 + ["b"] * 9 + ["c"]
#: Generous: the measured time is a fraction of a second; this only catches an O(n^2) regression.


def _is_index_set(idx: np.ndarray, n: int) -> bool:
    return (idx.dtype == np.int64 and np.all(np.diff(idx) > 0)
            and (idx.size == 0 or (idx[0] >= 0 and idx[-1] < n)))


def _per_label(labels: list, idx: np.ndarray) -> Counter:
    return Counter(labels[i] for i in idx)


# random_sample

@pytest.mark.parametrize(("n", "count", "ratio", "expected"), [
    (100, 10, None, 10),
    (5, 10, None, 5),
    (10, 0, None, 0),
    (10, None, 0.15, 2),
    (10, None, 0.14, 1),
    (100, None, 0.285, 29),
    (10, None, 0.01, 1),
    (10, None, 0.0, 0),
    (10, None, 1.0, 10),
    (0, None, 0.5, 0),
    (0, 3, None, 0),
], ids=["count", "count-above-n-takes-all", "count-zero", "ratio-half-rounds-up", "ratio-rounds-down",
        "ratio-binary-float-half", "tiny-ratio-keeps-one", "ratio-zero", "ratio-one", "empty-ratio", "empty-count"])
def test_random_sample_size(n: int, count: int | None, ratio: float | None, expected: int) -> None:
    idx = S.random_sample(n, count=count, ratio=ratio, seed=0)
    assert idx.size == expected and _is_index_set(idx, n)


def test_random_sample_is_reproducible_by_seed() -> None:
    a = S.random_sample(1000, count=50, seed=7)
    assert np.array_equal(a, S.random_sample(1000, count=50, seed=7))
    assert not np.array_equal(a, S.random_sample(1000, count=50, seed=8))


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"count": 3, "ratio": 0.1}, "exactly one"),
    ({}, "exactly one"),
    ({"count": -1}, "count must be >= 0"),
    ({"ratio": 1.5}, "ratio must be within"),
    ({"ratio": -0.1}, "ratio must be within"),
    ({"ratio": float("nan")}, "ratio must be within"),
], ids=["both", "neither", "negative-count", "ratio-above-one", "negative-ratio", "nan-ratio"])
def test_random_sample_rejects_bad_sizes(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        S.random_sample(10, seed=0, **kwargs)


def test_random_sample_rejects_negative_n() -> None:
    with pytest.raises(ValueError, match="n_items"):
        S.random_sample(-1, count=1, seed=0)


# stratified_sample

@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"count": 10}, {"cat": 7, "dog": 2, None: 1}),
    ({"ratio": 0.1}, {"cat": 7, "dog": 2, None: 1}),
    ({"count": 20}, {"cat": 14, "dog": 4, None: 2}),
    ({"count": 5}, {"cat": 3, "dog": 1, None: 1}),
    ({"count": 1000}, {"cat": 70, "dog": 20, None: 10}),
], ids=["count-10", "ratio-0.1", "count-20", "count-5-keeps-every-stratum", "count-above-n"])
def test_stratified_keeps_proportions(kwargs: dict, expected: dict) -> None:
    idx = S.stratified_sample(LABELS_70_20_10, seed=3, **kwargs)
    assert _is_index_set(idx, len(LABELS_70_20_10))
    assert _per_label(LABELS_70_20_10, idx) == expected


@pytest.mark.parametrize(("count", "expected"), [
    (2, {"a": 2}),
    (3, {"a": 1, "b": 1, "c": 1}),
    (5, {"a": 3, "b": 1, "c": 1}),
    (50, {"a": 45, "b": 4, "c": 1}),
], ids=["fewer-than-strata-no-minimum", "one-each", "rare-class-kept", "tie-goes-to-larger-stratum"])
def test_stratified_minimum_one_per_stratum(count: int, expected: dict) -> None:
    idx = S.stratified_sample(LABELS_90_9_1, count=count, seed=0)
    assert _per_label(LABELS_90_9_1, idx) == expected


def test_stratified_total_is_always_exact() -> None:
    labels = ["a"] * 37 + ["b"] * 23 + ["c"] * 11 + ["d"] * 3 + [None] * 2
    sizes = Counter(labels)
    for count in range(len(labels) + 1):
        idx = S.stratified_sample(labels, count=count, seed=count)
        got = _per_label(labels, idx)
        assert idx.size == count
        assert all(got[k] <= sizes[k] for k in got)
        if count >= len(sizes):
            assert set(got) == set(sizes)


def test_stratified_none_is_its_own_stratum() -> None:
    labels = ["None"] * 5 + [None] * 5
    assert _per_label(labels, S.stratified_sample(labels, count=2, seed=0)) == {"None": 1, None: 1}


def test_stratified_is_reproducible_by_seed() -> None:
    a = S.stratified_sample(LABELS_70_20_10, count=10, seed=1)
    assert np.array_equal(a, S.stratified_sample(LABELS_70_20_10, count=10, seed=1))
    assert not np.array_equal(a, S.stratified_sample(LABELS_70_20_10, count=10, seed=2))


def test_stratified_empty_and_reasons() -> None:
    assert S.stratified_sample([], ratio=0.5, seed=0).size == 0
    labels = ["cat", "cat", "dog", "cat"]
    idx = S.stratified_sample(labels, count=2, seed=0)
    reasons = S.stratified_reasons(labels, idx)
    assert len(reasons) == 2 and "stratum 'dog': 1 of 1 kept" in reasons
    assert "stratum 'cat': 1 of 3 kept" in reasons


# threshold_filter

VALUES = {"brightness": np.array([0.1, 0.5, np.nan, 0.9]), "blur_score": np.array([10.0, 200.0, 300.0, 50.0])}


@pytest.mark.parametrize(("op", "expected"), [
    ("<", [0]), ("<=", [0, 1]), (">", [3]), (">=", [1, 3]), ("==", [1]), ("!=", [0, 3]),
], ids=["lt", "le", "gt", "ge", "eq", "ne-nan-still-fails"])
def test_threshold_each_operator_and_nan_never_passes(op: str, expected: list[int]) -> None:
    idx = S.threshold_filter(VALUES, [("brightness", op, 0.5)])
    assert idx.tolist() == expected and idx.dtype == np.int64


def test_threshold_rules_all_must_hold() -> None:
    rules = [("brightness", ">", 0.2), ("blur_score", ">=", 100)]
    assert S.threshold_filter(VALUES, rules).tolist() == [1]
    assert S.threshold_reasons(VALUES, rules, [1]) == ["brightness=0.5 > 0.2; blur_score=200 >= 100"]


def test_threshold_without_rules_keeps_everything() -> None:
    assert S.threshold_filter(VALUES, []).tolist() == [0, 1, 2, 3]
    assert S.threshold_reasons(VALUES, [], [0]) == [S.REASON_NO_RULES]
    assert S.threshold_filter({}, []).size == 0


def test_threshold_unknown_feature_names_it_and_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown feature 'contrast'.*blur_score, brightness"):
        S.threshold_filter(VALUES, [("contrast", ">", 0.1)])


@pytest.mark.parametrize(("rule", "match"), [
    (("brightness", "=>", 0.1), "unknown operator"),
    (("brightness", ">", float("nan")), "NaN"),
    (("brightness", ">", "high"), "must be a number"),
], ids=["bad-op", "nan-threshold", "text-threshold"])
def test_threshold_rejects_bad_rules(rule: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        S.threshold_filter(VALUES, [rule])


def test_threshold_rejects_misaligned_columns() -> None:
    with pytest.raises(ValueError, match="equal length"):
        S.threshold_filter({"a": np.zeros(3), "b": np.zeros(4)}, [("a", ">", 0)])


# top_k

@pytest.mark.parametrize(("values", "k", "largest", "expected"), [
    ([1.0, 3.0, 3.0, 2.0, 3.0], 2, True, [1, 2]),
    ([2.0, 1.0, 1.0, 1.0], 2, False, [1, 2]),
    ([5.0, np.nan, 4.0], 2, True, [0, 2]),
    ([5.0, np.nan, 4.0], 3, False, [0, 2]),
    ([1.0, 2.0], 10, True, [0, 1]),
    ([1.0, 2.0], 0, True, []),
    ([], 3, True, []),
], ids=["ties-largest-by-index", "ties-smallest-by-index", "nan-skipped", "nan-never-selected",
        "k-above-n", "k-zero", "empty"])
def test_top_k(values: list[float], k: int, largest: bool, expected: list[int]) -> None:
    idx = S.top_k(np.array(values), k, largest=largest)
    assert idx.tolist() == expected and idx.dtype == np.int64


def test_top_k_rejects_negative_k_and_explains_ranks() -> None:
    with pytest.raises(ValueError, match="k must be"):
        S.top_k(np.ones(3), -1)
    values = np.array([1.0, 3.0, 2.0])
    assert S.top_k_reasons(values, S.top_k(values, 2)) == ["rank 1 of 3 (largest), value 3",
                                                           "rank 2 of 3 (largest), value 2"]


# k_center_greedy

def _clusters(per_cluster: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight blobs at the 8 corners of a cube of side 100, separated along every axis, so that
    every cross-cluster distance beats every in-cluster one with or without z-scoring."""
    rng = np.random.default_rng(seed)
    corners = np.array([[(c >> axis) & 1 for axis in range(3)] for c in range(8)], dtype=np.float64) * 100.0
    cluster = np.repeat(np.arange(len(corners)), per_cluster)
    return corners[cluster] + rng.normal(scale=1.0, size=(cluster.size, 3)), cluster


@pytest.mark.parametrize("standardize", [True, False], ids=["standardized", "raw"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_picks_one_point_per_cluster_first(seed: int, standardize: bool) -> None:
    points, cluster = _clusters(per_cluster=40)
    order, distance = S.k_center_greedy(points, 8, seed=seed, standardize=standardize)
    assert sorted(cluster[order].tolist()) == list(range(8))
    assert distance[0] == np.inf


def test_k_center_distances_never_increase_after_the_first() -> None:
    points, _ = _clusters(per_cluster=25)
    order, distance = S.k_center_greedy(points, 60, seed=3)
    assert order.dtype == np.int64 and len(set(order.tolist())) == 60
    assert np.isinf(distance[0]) and np.all(np.diff(distance[1:]) <= 0)


def test_k_center_matches_a_brute_force_reference() -> None:
    x = np.random.default_rng(5).normal(size=(200, 4))
    order, distance = S.k_center_greedy(x, 25, seed=9, standardize=False)
    chosen = [int(order[0])]
    for step in range(1, 25):
        d = np.linalg.norm(x[:, None, :] - x[chosen][None, :, :], axis=2).min(axis=1)
        d[chosen] = -1.0
        chosen.append(int(np.argmax(d)))
        assert distance[step] == pytest.approx(d[chosen[-1]], rel=1e-9)
    assert order.tolist() == chosen


def test_k_center_standardize_matters_when_one_feature_has_a_huge_scale() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.uniform(0, 1e6, 300), rng.normal(size=300), rng.normal(size=300)])
    raw, _ = S.k_center_greedy(x, 10, seed=4, standardize=False)
    scaled, _ = S.k_center_greedy(x, 10, seed=4, standardize=True)
    assert raw[0] == scaled[0]  # same seeded start
    assert not np.array_equal(raw, scaled)
    # Unscaled, the huge feature alone decides: the second pick is the farthest along it.
    assert raw[1] == np.argmax(np.abs(x[:, 0] - x[raw[0], 0]))


def test_k_center_constant_column_is_ignored_when_standardized() -> None:
    x = np.random.default_rng(1).normal(size=(100, 2))
    with_constant = np.column_stack([x, np.full(100, 42.0)])
    a, da = S.k_center_greedy(x, 10, seed=0)
    b, db = S.k_center_greedy(with_constant, 10, seed=0)
    assert np.array_equal(a, b) and db[1:] == pytest.approx(da[1:])


def test_k_center_is_reproducible_by_seed() -> None:
    x = np.random.default_rng(2).normal(size=(500, 5))
    a, _ = S.k_center_greedy(x, 20, seed=11)
    assert np.array_equal(a, S.k_center_greedy(x, 20, seed=11)[0])
    assert not np.array_equal(a, S.k_center_greedy(x, 20, seed=12)[0])


@pytest.mark.parametrize(("n", "k", "expected"), [(5, 10, 5), (5, 0, 0), (0, 3, 0)],
                         ids=["k-above-n-takes-all", "k-zero", "empty"])
def test_k_center_sizes(n: int, k: int, expected: int) -> None:
    order, distance = S.k_center_greedy(np.random.default_rng(0).normal(size=(n, 2)), k, seed=0)
    assert order.size == distance.size == expected
    assert sorted(order.tolist()) == list(range(expected))


def test_k_center_never_repeats_a_point_among_duplicates() -> None:
    order, distance = S.k_center_greedy(np.ones((8, 3)), 8, seed=0)
    assert sorted(order.tolist()) == list(range(8))
    assert distance[1:] == pytest.approx(np.zeros(7))


@pytest.mark.parametrize(("features", "k", "match"), [
    (np.array([[0.0, np.nan], [1.0, 1.0]]), 1, "NaN or infinite"),
    (np.zeros(5), 1, "2-D"),
    (np.zeros((5, 2)), -1, "k must be"),
], ids=["nan", "one-dimensional", "negative-k"])
def test_k_center_rejects_bad_input(features: np.ndarray, k: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        S.k_center_greedy(features, k, seed=0)


def test_k_center_reasons() -> None:
    reasons = S.k_center_reasons(np.array([4, 1]), np.array([np.inf, 2.5]))
    assert reasons == ["k-center pick 1: first (seeded)", "k-center pick 2: distance 2.5 to the selected set"]


def test_k_center_on_a_large_dataset_picks_distinct_centres_farthest_first() -> None:
    # Correctness at scale only: how fast it runs is a benchmark's question, not a test's (a busy host
    # would fail any wall-clock budget).
    x = np.random.default_rng(0).normal(size=(20_000, 16))
    order, distance = S.k_center_greedy(x, 200, seed=0)
    assert order.size == 200 and np.unique(order).size == 200
    assert np.all(np.diff(distance[1:]) <= 0)
