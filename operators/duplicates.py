"""Grouping exact and near duplicates without comparing every pair.

Near duplicates are found by LSH banding on 64-bit perceptual hashes. Split the
bits into ``max_distance + 1`` bands: two hashes at most ``max_distance`` bits
apart differ in at most that many bands, so by pigeonhole they agree exactly on
at least one. Bucketing by each band therefore finds every true pair; a
candidate pair is kept only if its exact Hamming distance is within the limit,
so the result equals an all-pairs comparison, at a fraction of the cost.

Identical hashes are collapsed before banding, so thousands of copies of one
image (all-black frames, a placeholder) cost one comparison, not millions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from operators.hashing import HASH_BITS, hamming

#: Default Hamming radius for near duplicates on a 64-bit pHash.
DEFAULT_MAX_DISTANCE = 6
#: Buckets larger than this are verified as dense blocks instead of offset by offset.
_DENSE_BUCKET = 256
#: Upper bound on the cells of one dense block of pairwise distances (bounds memory).
_DENSE_BLOCK_CELLS = 1 << 22


def exact_duplicate_groups(digests: Sequence[str]) -> list[list[int]]:
    """Indices sharing a digest, groups of two or more, each sorted, ordered by first index."""
    by_digest: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        by_digest.setdefault(digest, []).append(index)
    return sorted((group for group in by_digest.values() if len(group) > 1), key=lambda g: g[0])


def _as_hashes(hashes: np.ndarray | Sequence[int]) -> np.ndarray:
    if not isinstance(hashes, np.ndarray):
        # A list mixing ints above and below 2**63 would otherwise become float64 and lose bits.
        if not all(isinstance(v, (int, np.integer)) and 0 <= v < 1 << HASH_BITS for v in hashes):
            raise ValueError("hashes must be unsigned 64-bit integers")
        hashes = np.array(hashes, dtype=np.uint64)
    if hashes.ndim != 1:
        raise ValueError(f"hashes must be one-dimensional, got shape {hashes.shape}")
    if hashes.size and hashes.dtype != np.uint64:
        if not np.issubdtype(hashes.dtype, np.integer) or hashes.min() < 0:
            raise ValueError(f"hashes must be unsigned 64-bit integers, got dtype {hashes.dtype}")
        hashes = hashes.astype(np.uint64)
    return hashes.astype(np.uint64, copy=False)


def _band_count(max_distance: int, bands: int | None) -> int:
    if not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"max_distance must be in [0, {HASH_BITS - 1}], got {max_distance}")
    bands = max_distance + 1 if bands is None else bands
    if not max_distance + 1 <= bands <= HASH_BITS:
        # Fewer bands would break the pigeonhole guarantee and silently miss pairs.
        raise ValueError(f"bands must be in [{max_distance + 1}, {HASH_BITS}] for max_distance "
                         f"{max_distance}, got {bands}")
    return bands


def _band_keys(values: np.ndarray, bands: int) -> list[np.ndarray]:
    """Contiguous bands of near-equal width covering all 64 bits."""
    widths = [HASH_BITS // bands + (1 if b < HASH_BITS % bands else 0) for b in range(bands)]
    keys, shift = [], HASH_BITS
    for width in widths:
        shift -= width
        keys.append((values >> np.uint64(shift)) & np.uint64((1 << width) - 1))
    return keys


def _bucket_pairs(values: np.ndarray, key: np.ndarray, max_distance: int) -> tuple[np.ndarray, ...]:
    """Verified pairs ``(i, j, distance)``, ``i != j``, among values sharing ``key``."""
    order = np.argsort(key, kind="stable")
    sorted_key, sorted_values = key[order], values[order]
    n = order.size
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    sizes = np.diff(np.r_[starts, n])
    found_i, found_j, found_d = [], [], []

    # Small buckets: compare each position with the one `offset` places on, for a growing
    # offset, keeping only positions whose bucket still has that many later members.
    small = sizes <= _DENSE_BUCKET
    later = np.repeat(np.where(small, starts + sizes, 0), sizes) - np.arange(n) - 1
    active = np.flatnonzero(later > 0)
    offset = 1
    while active.size:
        dist = hamming(sorted_values[active], sorted_values[active + offset])
        hit = dist <= max_distance
        found_i.append(order[active[hit]])
        found_j.append(order[active[hit] + offset])
        found_d.append(dist[hit])
        offset += 1
        active = active[later[active] >= offset]

    # Large buckets: all pairs as row blocks of a distance matrix, upper triangle only.
    for start, size in zip(starts[~small], sizes[~small], strict=True):
        members = order[start:start + size]
        block = sorted_values[start:start + size]
        rows = max(1, _DENSE_BLOCK_CELLS // size)
        for lo in range(0, size, rows):
            dist = hamming(block[lo:lo + rows, None], block[None, :])
            above_diagonal = np.arange(size)[None, :] > np.arange(lo, lo + dist.shape[0])[:, None]
            r, c = np.nonzero((dist <= max_distance) & above_diagonal)
            found_i.append(members[lo + r])
            found_j.append(members[c])
            found_d.append(dist[r, c])

    if not found_i:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d)


def _near_pairs(unique: np.ndarray, max_distance: int, bands: int) -> tuple[np.ndarray, ...]:
    """Every pair of positions whose values are within ``max_distance``, once each, as ``(lo, hi, distance)``
    (equal values at two positions are a pair at distance 0)."""
    parts = [_bucket_pairs(unique, key, max_distance) for key in _band_keys(unique, bands)]
    i = np.concatenate([p[0] for p in parts]).astype(np.int64)
    j = np.concatenate([p[1] for p in parts]).astype(np.int64)
    d = np.concatenate([p[2] for p in parts]).astype(np.int64)
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    # A pair agreeing on several bands is found once per band.
    _, first = np.unique(lo * unique.size + hi, return_index=True)
    return lo[first], hi[first], d[first]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union-find over edges ``(a, b)``: the smallest index of each node's component.

    Vectorised hook-and-compress: every round links each edge's larger root to the
    smaller one, then halves paths until every node points at its root.
    """
    parent = np.arange(n)
    while True:
        ra, rb = parent[a], parent[b]
        linked = ra != rb
        if not linked.any():
            return parent
        np.minimum.at(parent, np.maximum(ra, rb)[linked], np.minimum(ra, rb)[linked])
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand


def _groups(labels: np.ndarray) -> list[list[int]]:
    """Indices sharing a label, groups of two or more, each sorted, ordered by first index."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    shared = np.flatnonzero(counts[inverse.ravel()] > 1)  # splitting only these: most items are in no group
    order = shared[np.argsort(labels[shared], kind="stable")]
    cuts = np.flatnonzero(np.diff(labels[order])) + 1
    groups = [g.tolist() for g in np.split(order, cuts) if g.size > 1]
    return sorted(groups, key=lambda g: g[0])


#: Candidate pairs checked by a ``confirm`` callback at a time (bounds the memory the check may use).
CONFIRM_BATCH = 1 << 14


def near_duplicate_groups(hashes: np.ndarray | Sequence[int], max_distance: int = DEFAULT_MAX_DISTANCE,
                          bands: int | None = None, *, keys: np.ndarray | None = None,
                          confirm: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                          links: tuple[np.ndarray, np.ndarray] | None = None) -> list[list[int]]:
    """Groups of indices whose 64-bit hashes are linked by steps of at most ``max_distance`` bits.

    Groups are connected components: if a~b and b~c, all three form one group even
    when a and c are further apart. Each group has two or more items and is sorted;
    groups are ordered by their first index. ``bands`` defaults to
    ``max_distance + 1``; more bands give more candidates, never fewer results.

    With ``confirm``, ``hashes`` may also be ``(n, k)``: k hashes per item, each
    searched on its own, a pair being a candidate when any of them is within the
    distance; a candidate pair is a link only if ``confirm(i, j)`` (arrays of item
    indices, one representative each) says so. It is called on batches of candidate
    pairs, so the hash search stays sub-quadratic and the finer check runs only on
    candidates. Confirmed groups are stars, not chains: each member is linked to its
    group's centre (see :func:`_stars`). ``keys`` (one row per item, any fixed-width dtype) tells which items
    are the same for the check: items sharing every hash are compared too unless they
    also share a key. ``links`` (two arrays of item indices) are pairs already confirmed by
    other means (the crop search of :func:`query_pairs`): they join the grouping as they are.
    """
    bands = _band_count(max_distance, bands)
    if confirm is None:
        hashes = _as_hashes(hashes)
        if hashes.size < 2:
            return []
        unique, inverse = np.unique(hashes, return_inverse=True)
        lo, hi, _ = _near_pairs(unique, max_distance, bands)
        roots = _components(unique.size, lo, hi)
        return _groups(roots[inverse.ravel()])
    table = np.asarray(hashes)
    table = table.reshape(len(table), -1) if table.size else table.reshape(0, 1)
    columns = [_as_hashes(np.ascontiguousarray(table[:, c])) for c in range(table.shape[1])]
    if len(table) < 2:
        return []
    identity = np.arange(len(table)) if keys is None else _row_labels(np.asarray(keys))
    _, first, inverse = np.unique(identity, return_index=True, return_inverse=True)
    found = [_informative_pairs(column[first], max_distance, bands) for column in columns]
    lo = np.concatenate([f[0] for f in found])
    hi = np.concatenate([f[1] for f in found])
    if len(columns) > 1:  # a pair near in several hashes is checked once
        _, once = np.unique(lo * first.size + hi, return_index=True)
        lo, hi = lo[once], hi[once]
    keep = np.zeros(lo.size, dtype=bool)
    for start in range(0, lo.size, CONFIRM_BATCH):
        part = slice(start, start + CONFIRM_BATCH)
        keep[part] = confirm(first[lo[part]], first[hi[part]])
    lo, hi = lo[keep], hi[keep]
    if links is not None and len(links[0]):
        inv = inverse.ravel()
        a, b = inv[np.asarray(links[0], dtype=np.intp)], inv[np.asarray(links[1], dtype=np.intp)]
        other = a != b
        lo = np.concatenate([lo, np.minimum(a, b)[other]])
        hi = np.concatenate([hi, np.maximum(a, b)[other]])
        _, once = np.unique(lo * first.size + hi, return_index=True)
        lo, hi = lo[once], hi[once]
    return _groups(_stars(first.size, lo, hi)[inverse.ravel()])


#: Queries looked up at a time by :func:`query_pairs` (bounds the memory of one step).
_QUERY_BLOCK = 1 << 15


def query_pairs(index: np.ndarray, queries: np.ndarray, max_distance: int) -> tuple[np.ndarray, ...]:
    """Pairs ``(owner, target, k)``: query ``k`` of item ``owner`` (``queries``, ``(n, k)``) is within
    ``max_distance`` bits of item ``target``'s hash in ``index`` (``(n,)``), ``owner != target``, once per
    pair (its nearest query). See :func:`query_pairs_in_blocks`."""
    return query_pairs_in_blocks(index, [(0, np.asarray(queries, dtype=np.uint64))], max_distance)


def query_pairs_in_blocks(index: np.ndarray, blocks: Iterable[tuple[int, np.ndarray]],
                          max_distance: int, bands: int | None = None,
                          items: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """:func:`query_pairs` with the queries given block by block, ``(first owner, (m, k) queries)``, so that
    they never all exist at once (a million items with 256 queries each would be 2 GB).

    Asymmetric LSH banding: the index is bucketed per band once, each query looks up its own band values,
    so the cost follows the number of queries and the candidates they find, never all pairs. Index values
    that ``_DENSE_BUCKET`` or more items share tell nothing about them and are left out, as in
    :func:`near_duplicate_groups`.

    ``bands`` defaults to ``max_distance + 1``, which finds every pair within ``max_distance`` bits. Fewer
    bands are allowed here (at least 2): every pair within ``bands - 1`` bits is still found, and a pair up
    to ``max_distance`` bits apart is found when it agrees on one whole band, which most do (with three
    bands, about three in four at 3 bits): the band matches checked, what the search costs, are those of the
    smaller radius, and the wider radius only keeps more of what they find.

    ``items`` (one per index hash, default its position) is the item each index hash stands for, when
    several stand for one (probes of its hash): targets are items, and an owner is never its own target."""
    index = _as_hashes(np.asarray(index))
    if items is not None:
        items = np.asarray(items, dtype=np.int64)
        if items.shape != index.shape:
            raise ValueError(f"items must be one per index hash, got {items.shape} for {index.shape}")
    if bands is None:
        bands = _band_count(max_distance, None)
    elif not 2 <= bands <= HASH_BITS or not 0 <= max_distance < HASH_BITS:
        raise ValueError(f"bands must be in [2, {HASH_BITS}] and max_distance in [0, {HASH_BITS - 1}], "
                         f"got {bands} and {max_distance}")
    _, inverse, counts = np.unique(index, return_inverse=True, return_counts=True)
    usable = np.flatnonzero(counts[inverse.ravel()] < _DENSE_BUCKET)
    buckets = []
    for index_key in _band_keys(index[usable], bands):
        order = np.argsort(index_key, kind="stable")
        buckets.append((order, index_key[order]))
    found_o, found_t, found_d, found_k = [], [], [], []
    for first_owner, queries in blocks:
        queries = np.asarray(queries, dtype=np.uint64)
        k = queries.shape[1] if queries.ndim == 2 else 0
        if k == 0 or usable.size == 0:
            continue
        flat = queries.ravel()
        for (order, sorted_key), query_key in zip(buckets, _band_keys(flat, bands), strict=True):
            for start in range(0, flat.size, _QUERY_BLOCK):
                q = query_key[start:start + _QUERY_BLOCK]
                left = np.searchsorted(sorted_key, q, side="left")
                sizes = np.searchsorted(sorted_key, q, side="right") - left
                total = int(sizes.sum())
                if total == 0:
                    continue
                which = np.repeat(np.arange(q.size), sizes)
                within = np.arange(total) - np.repeat(np.cumsum(sizes) - sizes, sizes)
                position = usable[order[left[which] + within]]
                target = position if items is None else items[position]
                query = start + which
                owner = first_owner + query // k
                dist = hamming(flat[query], index[position])
                hit = (dist <= max_distance) & (owner != target)
                found_o.append(owner[hit])
                found_t.append(target[hit])
                found_d.append(dist[hit])
                found_k.append((query % k)[hit])
    if sum(part.size for part in found_o) == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    owner, target = np.concatenate(found_o).astype(np.int64), np.concatenate(found_t).astype(np.int64)
    dist, which = np.concatenate(found_d), np.concatenate(found_k).astype(np.int64)
    order = np.lexsort((dist, target, owner))
    owner, target, which = owner[order], target[order], which[order]
    first = np.r_[True, (owner[1:] != owner[:-1]) | (target[1:] != target[:-1])]
    return owner[first], target[first], which[first]


def _stars(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Labels grouping each node with a centre it is linked to directly, centres taken by most links first.

    Unlike connected components, a chain of look-alikes (a~b, b~c, c~d...) does not
    become one group: every member of a group is confirmed against its centre, so two
    members are at most two similar steps apart. Isolated nodes keep their own label.
    """
    labels = np.arange(n)
    if a.size == 0:
        return labels
    ends = np.concatenate([a, b])
    others = np.concatenate([b, a])
    order = np.argsort(ends, kind="stable")
    ends, others = ends[order], others[order]
    starts = np.searchsorted(ends, np.arange(n + 1))
    degree = np.diff(starts)
    assigned = np.zeros(n, dtype=bool)
    for node in np.lexsort((np.arange(n), -degree))[: np.count_nonzero(degree)].tolist():
        if assigned[node]:
            continue
        neighbours = others[starts[node]:starts[node + 1]]
        free = neighbours[~assigned[neighbours]]
        assigned[node] = True
        assigned[free] = True
        labels[free] = node
    return labels


def _informative_pairs(values: np.ndarray, max_distance: int, bands: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_near_pairs` among the positions whose value fewer than ``_DENSE_BUCKET`` positions share.

    A hash value that hundreds of different pictures share (pHash gives every nearly flat picture
    the same one) tells nothing about any of them, and checking all their pairs would be quadratic;
    such pictures are still found through their other hashes."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    usable = np.flatnonzero(counts[inverse.ravel()] < _DENSE_BUCKET)
    lo, hi, _ = _near_pairs(values[usable], max_distance, bands)
    return usable[lo], usable[hi]


def _row_labels(keys: np.ndarray) -> np.ndarray:
    """One integer per row, equal exactly for equal rows."""
    rows = np.ascontiguousarray(keys.reshape(len(keys), -1))
    as_void = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    return np.unique(as_void, return_inverse=True)[1].ravel()



def duplicate_scores(hashes: np.ndarray | Sequence[int], max_distance: int = DEFAULT_MAX_DISTANCE,
                     bands: int | None = None) -> np.ndarray:
    """Per item, ``1 - d / 64`` for the nearest other item at ``d <= max_distance`` bits, else 0.

    1.0 means another item has the same hash; 0.0 means no near duplicate was found,
    not that the nearest item is 64 bits away (items beyond the radius are never compared).
    """
    hashes = _as_hashes(hashes)
    bands = _band_count(max_distance, bands)
    scores = np.zeros(hashes.size, dtype=np.float64)
    if hashes.size < 2:
        return scores
    unique, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    lo, hi, dist = _near_pairs(unique, max_distance, bands)
    nearest = np.full(unique.size, HASH_BITS, dtype=np.int64)
    np.minimum.at(nearest, lo, dist)
    np.minimum.at(nearest, hi, dist)
    nearest[counts > 1] = 0
    found = nearest <= max_distance
    scores_unique = np.where(found, 1.0 - nearest / HASH_BITS, 0.0)
    return scores_unique[inverse.ravel()]


def confirm_exact_groups(groups: Sequence[Sequence[int]], paths: Sequence[str] | Mapping[int, str],
                         file_digest: Callable[[str], str | None],
                         pixel_digest: Callable[[str], str | None]) -> list[list[int]]:
    """Split candidate groups down to images whose decoded pixels are truly identical.

    Candidates share a digest of pixels decoded at reduced scale (cheap, for every image);
    two different images can in principle agree there. Members whose files have identical
    bytes are identical without decoding; otherwise one file per distinct content is decoded
    in full and compared. The digest functions return None for a file that cannot be read
    any more, and such a member leaves its group: nothing is reported as a duplicate unless
    it was checked. Only candidates pay for this, so the cost follows the number of
    duplicates, not the size of the dataset.
    """
    confirmed: list[list[int]] = []
    for group in groups:
        by_bytes: dict[str, list[int]] = {}
        for index in group:
            digest = file_digest(paths[index])
            if digest is not None:
                by_bytes.setdefault(digest, []).append(index)
        if len(by_bytes) == 1:
            members = next(iter(by_bytes.values()))
            if len(members) > 1:
                confirmed.append(sorted(members))
            continue
        by_pixels: dict[str, list[int]] = {}
        for members in by_bytes.values():
            key = pixel_digest(paths[members[0]])
            if key is not None:
                by_pixels.setdefault(key, []).extend(members)
        confirmed.extend(sorted(m) for m in by_pixels.values() if len(m) > 1)
    return sorted(confirmed, key=lambda g: g[0])
