"""Duplicate grouping: known groups on hand-made hashes, and equality with an all-pairs reference."""

from __future__ import annotations

import numpy as np
import pytest

from operators import duplicates as D
from operators.hashing import HASH_BITS, hamming

MAX_D = D.DEFAULT_MAX_DISTANCE


def _bits(*positions: int) -> int:
    """A hash with exactly these bits set (0 is the least significant)."""
    value = 0
    for p in positions:
        value |= 1 << p
    return value


def _hashes(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.uint64)


def _brute_force_groups(hashes: np.ndarray, max_distance: int) -> list[list[int]]:
    """Every pair compared, components by plain union-find: the reference the fast path must equal."""
    n = hashes.size
    close = hamming(hashes[:, None], hashes[None, :]) <= max_distance
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for i, j in zip(*np.nonzero(np.triu(close, k=1)), strict=True):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def _planted(n: int, seed: int) -> np.ndarray:
    """Random hashes plus near copies (0 to 2 * MAX_D flipped bits), chains and exact repeats."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    targets = rng.choice(n, n // 5, replace=False)
    sources = rng.choice(n, n // 5)
    for target, source in zip(targets, sources, strict=True):
        flips = rng.choice(HASH_BITS, rng.integers(0, 2 * MAX_D + 1), replace=False)
        hashes[target] = hashes[source] ^ np.uint64(_bits(*flips.tolist()))
    return hashes


@pytest.mark.parametrize(("digests", "expected"), [
    ([], []),
    (["a", "b", "c"], []),
    (["a", "b", "a", "c", "b", "a"], [[0, 2, 5], [1, 4]]),
    (["x", "y", "y", "x"], [[0, 3], [1, 2]]),
], ids=["empty", "all-distinct", "two-groups", "ordered-by-first-index"])
def test_exact_duplicate_groups(digests: list[str], expected: list[list[int]]) -> None:
    assert D.exact_duplicate_groups(digests) == expected


@pytest.mark.parametrize(("hashes", "expected"), [
    (_hashes(), []),
    (_hashes(5), []),
    (_hashes(0, 0, (1 << 64) - 1), [[0, 1]]),
    (_hashes(0, _bits(*range(MAX_D))), [[0, 1]]),
    (_hashes(0, _bits(*range(MAX_D + 1))), []),
    (_hashes(0, _bits(*range(MAX_D)), _bits(*range(2 * MAX_D))), [[0, 1, 2]]),
    (_hashes(_bits(*range(40, 64)), 0, _bits(*range(20, 20 + MAX_D + 1)), _bits(*range(40, 62)), 0),
     [[0, 3], [1, 4]]),
    (_hashes(*[0] * 3000, (1 << 64) - 1, _bits(63)), [list(range(3000)) + [3001]]),
], ids=["empty", "single", "exact-equal", "at-max-distance", "one-past-max-distance", "chain-a~b~c",
        "two-groups-and-a-loner", "thousands-identical"])
def test_near_duplicate_groups_known(hashes: np.ndarray, expected: list[list[int]]) -> None:
    assert D.near_duplicate_groups(hashes, max_distance=MAX_D) == expected


@pytest.mark.parametrize("max_distance", [0, 3, MAX_D, 10], ids=["exact", "d3", "default", "d10"])
def test_near_duplicate_groups_equal_all_pairs(max_distance: int) -> None:
    hashes = _planted(2000, seed=max_distance)
    assert D.near_duplicate_groups(hashes, max_distance) == _brute_force_groups(hashes, max_distance)


@pytest.mark.parametrize("bands", [MAX_D + 1, 16, HASH_BITS], ids=["pigeonhole", "sixteen", "one-bit-each"])
def test_extra_bands_change_nothing(bands: int) -> None:
    hashes = _planted(500, seed=7)
    assert D.near_duplicate_groups(hashes, MAX_D, bands=bands) == _brute_force_groups(hashes, MAX_D)


def test_large_buckets_of_distinct_hashes_are_still_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hundreds of distinct hashes sharing every high band take the dense path, in several row blocks."""
    monkeypatch.setattr(D, "_DENSE_BLOCK_CELLS", 100_000)
    rng = np.random.default_rng(3)
    low_bits = rng.integers(0, 1 << 12, 1500, dtype=np.uint64)
    hashes = np.concatenate([low_bits, _planted(500, seed=4)])
    assert D.near_duplicate_groups(hashes, MAX_D) == _brute_force_groups(hashes, MAX_D)


def test_accepts_plain_python_ints() -> None:
    assert D.near_duplicate_groups([(1 << 64) - 1, (1 << 64) - 2, 0]) == [[0, 1]]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"max_distance": -1}, "max_distance"),
    ({"max_distance": HASH_BITS}, "max_distance"),
    ({"max_distance": MAX_D, "bands": MAX_D}, "bands"),
    ({"max_distance": MAX_D, "bands": HASH_BITS + 1}, "bands"),
], ids=["negative-distance", "distance-too-large", "too-few-bands", "too-many-bands"])
def test_near_duplicate_groups_rejects_bad_params(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        D.near_duplicate_groups(_hashes(0, 1), **kwargs)


@pytest.mark.parametrize("hashes", [np.zeros((2, 2), dtype=np.uint64), np.array([-1, 0]), np.array([0.5, 1.0])],
                         ids=["two-dimensional", "negative", "float"])
def test_near_duplicate_groups_rejects_bad_hashes(hashes: np.ndarray) -> None:
    with pytest.raises(ValueError, match="hashes"):
        D.near_duplicate_groups(hashes)


def test_duplicate_scores() -> None:
    hashes = _hashes(0, 0, _bits(0, 1), (1 << 64) - 1, _bits(*range(20, 20 + MAX_D + 1)))
    scores = D.duplicate_scores(hashes, max_distance=MAX_D)
    assert scores.tolist() == pytest.approx([1.0, 1.0, 1.0 - 2 / HASH_BITS, 0.0, 0.0])
    assert D.duplicate_scores(_hashes(3)).tolist() == [0.0]


def test_duplicate_scores_agree_with_groups() -> None:
    hashes = _planted(2000, seed=11)
    in_group = np.zeros(hashes.size, dtype=bool)
    for group in D.near_duplicate_groups(hashes):
        in_group[group] = True
    np.testing.assert_array_equal(D.duplicate_scores(hashes) > 0, in_group)


@pytest.mark.parametrize("max_distance", [0, 2, 3])
def test_query_pairs_equal_all_pairs(max_distance: int) -> None:
    rng = np.random.default_rng(max_distance)
    n, k = 300, 7
    index = rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)
    queries = rng.integers(0, np.iinfo(np.uint64).max, (n, k), dtype=np.uint64, endpoint=True)
    for owner in range(0, n, 3):  # a third of the items have a query near another item's hash
        target, which = (owner * 7 + 1) % n, owner % k
        flips = rng.choice(HASH_BITS, rng.integers(0, max_distance + 2), replace=False)
        queries[owner, which] = index[target] ^ np.uint64(_bits(*flips.tolist()))
    queries[5, 2] = index[5]  # an item's own hash is never a pair
    owner, target, which = D.query_pairs(index, queries, max_distance)
    dist = hamming(queries[:, :, None], index[None, None, :])  # (n, k, n)
    near = dist <= max_distance
    near[np.arange(n), :, np.arange(n)] = False
    expected = {(int(o), int(t)) for o, t in zip(*np.nonzero(near.any(axis=1)), strict=True)}
    assert expected and {(int(o), int(t)) for o, t in zip(owner, target, strict=True)} == expected
    assert np.all(dist[owner, which, target] == dist[owner, :, target].min(axis=1))  # the nearest query
    in_blocks = D.query_pairs_in_blocks(index, [(0, queries[:100]), (100, queries[100:])], max_distance)
    for whole, part in zip((owner, target, which), in_blocks, strict=True):
        np.testing.assert_array_equal(whole, part)


def test_links_join_the_confirmed_groups() -> None:
    hashes = _hashes(0, 1, _bits(*range(40)), _bits(*range(20, 60)))
    groups = D.near_duplicate_groups(hashes, 2, confirm=lambda i, j: np.ones(i.size, dtype=bool),
                                     links=(np.array([2]), np.array([3])))
    assert groups == [[0, 1], [2, 3]]


def test_query_pairs_without_any_near_query_are_empty() -> None:
    index = _hashes(0, _bits(*range(64)))
    queries = np.array([[_bits(*range(32))], [_bits(*range(16, 48))]], dtype=np.uint64)  # 32 bits from both
    owner, target, which = D.query_pairs(index, queries, 2)
    assert owner.size == target.size == which.size == 0
