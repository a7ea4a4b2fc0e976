"""Near-duplicate grouping: LSH banding against comparing all pairs, in one run.

    python -m benchmarks.bench_near_duplicates [--sizes 2000,10000,100000] [--distance 4]

For each size, random 64-bit perceptual hashes with 1% planted near copies (1-``distance`` bits
apart) and 5% identical hashes (as all-black images give) are grouped by
``operators.duplicates.near_duplicate_groups``. The baseline compares all pairs with vectorised
XOR + popcount in blocks; it runs only up to ``--brute-max`` items (its cost grows as n^2) and is
extrapolated beyond that. Both must find the same groups where both run.

Also timed, per size: the default analysis profile's search (``operators.image_issues.layout_groups``), two
hashes per item (the layout hash and the pHash, here two independent sets of random hashes with the same planted
copies) and every candidate pair passed to a confirming check (here the correlation of random 256-cell layouts,
as the profile computes it), grouped as stars; and the brightened-copy search (``image_issues.bright_links``):
each item's brightened layout hash (its layout hash with one bit flipped) looked up against every
item's layout hash by asymmetric LSH banding (``operators.duplicates.query_pairs``), before the files are checked.

With ``--crop``, also the crop search's candidates (``operators.image_issues.crop_candidates``): random 16x16
layouts, 1% of them replaced by a crop of another (a window keeping 90-100% of each axis at a random offset,
resampled as a thumbnail would be), every item's 225 crop hypotheses hashed and looked up against every item's
coarse hash and its probe; timed with the hypotheses' hashing, counted as candidates and planted crops found
(before the correlation and the files' check, which follow the candidates).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from operators.duplicates import near_duplicate_groups, query_pairs
from operators.hashing import hamming

OUT = Path(__file__).parent / "out" / "near_duplicates.json"


def make_hashes(n: int, distance: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, n, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, n, dtype=np.uint64)
    copies = rng.choice(n, n // 100, replace=False)
    sources = rng.choice(n, n // 100, replace=False)
    for c, s in zip(copies, sources, strict=True):
        h = int(hashes[s])
        for bit in rng.choice(64, int(rng.integers(1, distance + 1)), replace=False):
            h ^= 1 << int(bit)
        hashes[c] = np.uint64(h)
    black = rng.choice(n, n // 20, replace=False)
    hashes[black] = np.uint64(0x8000000000000000)
    return hashes


def confirmed_search(hashes: np.ndarray, second: np.ndarray, distance: int) -> tuple[list[list[int]], int]:
    """The default profile's search on two hashes per item, with a layout check on each candidate pair."""
    from operators.hashing import normalized_layout

    layouts = np.random.default_rng(1).integers(0, 256, (len(hashes), 256), dtype=np.uint8)
    checked = [0]

    def similar(i: np.ndarray, j: np.ndarray) -> np.ndarray:
        checked[0] += i.size
        a, b = normalized_layout(layouts[i]), normalized_layout(layouts[j])
        return np.einsum("ij,ij->i", a, b) >= 0.9

    groups = near_duplicate_groups(np.stack([hashes, second], axis=1), distance, keys=layouts, confirm=similar)
    return groups, checked[0]


def brightened_hashes(hashes: np.ndarray, seed: int = 11) -> np.ndarray:
    """Each item's brightened layout hash: its layout hash with one random bit flipped (an image with no
    highlights to clip has nearly the same layout brightened), so the query finds the planted copies."""
    bits = np.random.default_rng(seed).integers(0, 64, len(hashes)).astype(np.uint64)
    return hashes ^ (np.uint64(1) << bits)


def planted_crops(n: int, seed: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random 16x16 layouts, 1% of them crops of another: ``(layouts, copies, sources)``."""
    from operators.features import window_weights

    rng = np.random.default_rng(seed)
    # Random layouts a little smooth (a picture's block means are not white noise): 8x8 noise enlarged to 16x16.
    coarse = rng.integers(0, 256, (n, 8, 8)).astype(np.float32)
    grid = np.repeat(np.repeat(coarse, 2, axis=1), 2, axis=2) + rng.normal(0, 12, (n, 16, 16)).astype(np.float32)
    copies = rng.choice(n, n // 100, replace=False)
    sources = rng.choice(np.setdiff1d(np.arange(n), copies), copies.size, replace=False)
    for c, src in zip(copies.tolist(), sources.tolist(), strict=True):
        sx, sy = rng.uniform(0.9, 1.0, 2)
        ox, oy = rng.uniform(0, 1 - sx), rng.uniform(0, 1 - sy)
        grid[c] = window_weights(16, 16, sy, oy) @ grid[src] @ window_weights(16, 16, sx, ox).T
    return np.clip(grid, 0, 255).astype(np.uint8).reshape(n, 256), copies, sources


def crop_search(layouts: np.ndarray, copies: np.ndarray, sources: np.ndarray) -> tuple[int, int]:
    """The crop search's candidates on ``layouts``: ``(candidates, planted crops among them)``."""
    from operators.hashing import whole_layouts
    from operators.image_issues import crop_candidates

    owner, target = crop_candidates(layouts, whole_layouts(layouts))
    found = set(zip(owner.tolist(), target.tolist()))
    return int(owner.size), sum((s, c) in found for s, c in zip(sources.tolist(), copies.tolist(), strict=True))


def brute_force_groups(hashes: np.ndarray, distance: int, block: int = 2048) -> list[list[int]]:
    n = len(hashes)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, n, block):
        rows = hashes[start:start + block]
        d = hamming(rows[:, None], hashes[None, :])
        ii, jj = np.nonzero(d <= distance)
        for i, j in zip(ii + start, jj, strict=True):
            if i < j:
                a, b = find(int(i)), find(int(j))
                if a != b:
                    parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted((g for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000,100000")
    parser.add_argument("--distance", type=int, default=4)
    parser.add_argument("--brute-max", type=int, default=10000)
    parser.add_argument("--crop", action="store_true", help="also time the crop search's candidates")
    args = parser.parse_args()
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        hashes = make_hashes(n, args.distance)
        lsh_s, groups = timed(near_duplicate_groups, hashes, args.distance)
        lsh_s = min(lsh_s, timed(near_duplicate_groups, hashes, args.distance)[0])
        row = {"items": n, "lsh_seconds": round(lsh_s, 4), "groups": len(groups)}
        confirmed_s, (_, checked) = timed(confirmed_search, hashes, make_hashes(n, args.distance, seed=7),
                                          args.distance)
        row.update(confirmed_seconds=round(confirmed_s, 4), candidate_pairs_checked=checked)
        bright_s, (owner, _, _) = timed(query_pairs, hashes, brightened_hashes(hashes)[:, None], args.distance)
        row.update(bright_seconds=round(bright_s, 4), bright_candidates=int(owner.size))
        if args.crop:
            layouts, copies, sources = planted_crops(n)
            crop_s, (candidates, planted) = timed(crop_search, layouts, copies, sources)
            row.update(crop_seconds=round(crop_s, 2), crop_candidates=candidates, crops_planted=int(copies.size),
                       crops_found=planted)
            del layouts
        if n <= args.brute_max:
            brute_s, brute = timed(brute_force_groups, hashes, args.distance)
            if brute != groups:
                raise SystemExit(f"LSH and all-pairs disagree at n={n}")
            row.update(brute_seconds=round(brute_s, 4), measured=True)
        rows.append(row)
    measured = [r for r in rows if r.get("measured")]
    per_pair = max(r["brute_seconds"] / (r["items"] ** 2) for r in measured) if measured else None
    print("| items | LSH (s) | all pairs (s) | all pairs / LSH | groups | 2 hashes + check (s) | pairs checked "
          "| brightened query (s) | its candidates |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        if "brute_seconds" not in r and per_pair is not None:
            r["brute_seconds"], r["measured"] = round(per_pair * r["items"] ** 2, 2), False
        mark = "" if r.get("measured") else " (extrapolated)"
        print(f"| {r['items']:,} | {r['lsh_seconds']:.3f} | {r['brute_seconds']:.2f}{mark} | "
              f"{r['brute_seconds'] / r['lsh_seconds']:.0f}x | {r['groups']} | {r['confirmed_seconds']:.3f} | "
              f"{r['candidate_pairs_checked']:,} | {r['bright_seconds']:.3f} | {r['bright_candidates']:,} |")
    if args.crop:
        print("\n| items | crop search (s) | its candidates | planted crops | found among them |")
        print("|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {r['items']:,} | {r['crop_seconds']:.1f} | {r['crop_candidates']:,} | {r['crops_planted']:,} "
                  f"| {r['crops_found']:,} |")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"distance": args.distance, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
