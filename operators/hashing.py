"""Content digests and 64-bit perceptual hashes, vectorised over a batch of thumbnails.

A file digest finds byte-identical files. A perceptual hash finds images that
look the same after re-encoding, resizing or a small change of brightness: two
such images have hashes a few bits apart (Hamming distance), unrelated images
about 32 bits apart.

Hashes are ``np.uint64`` with the first bit of the row-major 8x8 bit grid as the
most significant bit, so ``hash_to_hex`` gives the same 16-digit layout as the
``imagehash`` library's ``str(hash)``.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

from operators.features import LUMA_WEIGHTS, window_weights

#: Bytes read at a time when digesting a file.
DEFAULT_CHUNK = 1 << 20
#: Bits in every perceptual hash.
HASH_BITS = 64
#: Side of the bit grid (HASH_SIDE ** 2 == HASH_BITS).
HASH_SIDE = 8
#: pHash takes its DCT over a downsample this many times wider than the bit grid (32x32).
PHASH_HIGHFREQ_FACTOR = 4
#: Hex digits of a hash.
HASH_HEX_DIGITS = HASH_BITS // 4

# Coefficients this close to zero (relative to the largest of the image) are float
# rounding, not content: flattening them to zero keeps a flat image's hash stable
# instead of letting rounding noise pick its bits.
_PHASH_TIE_RTOL = 1e-5
# Gray levels are in [0, 1]; float32 rounding is far below this.
_DHASH_TIE_ATOL = 1e-6

_POPCOUNT_U8 = np.array([bin(v).count("1") for v in range(256)], dtype=np.uint8)


def file_digest(path: str, chunk: int = DEFAULT_CHUNK) -> str:
    """SHA-256 hex digest of the file's bytes, read in ``chunk``-sized pieces so memory stays flat."""
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@functools.lru_cache(maxsize=16)
def _area_matrix(out_size: int, in_size: int) -> np.ndarray:
    """``(out_size, in_size)`` weights that average each output cell's share of input pixels.

    Equal to a block mean when ``in_size`` is a multiple of ``out_size``; as a matrix
    the downsample fuses with the DCT into one small product per axis.
    """
    edges = np.arange(out_size + 1, dtype=np.float64) * (in_size / out_size)
    lo = np.maximum(edges[:-1, None], np.arange(in_size)[None, :])
    hi = np.minimum(edges[1:, None], np.arange(1, in_size + 1)[None, :])
    weights = np.clip(hi - lo, 0.0, None) / (in_size / out_size)
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=4)
def _dct_matrix(size: int) -> np.ndarray:
    """Unnormalised DCT-II matrix, ``X_k = 2 sum_n x_n cos(pi k (2n + 1) / 2N)``.

    Same scaling as ``scipy.fftpack.dct`` (what ``imagehash.phash`` uses): the DC
    term's weight relative to the others decides where the median falls.
    """
    k = np.arange(size, dtype=np.float64)[:, None]
    n = np.arange(size, dtype=np.float64)[None, :]
    matrix = 2.0 * np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * size))
    matrix.setflags(write=False)
    return matrix


@functools.lru_cache(maxsize=16)
def _phash_basis(in_size: int) -> np.ndarray:
    """``(HASH_SIDE, in_size)``: downsample to 32 then keep the 8 lowest DCT frequencies."""
    dct_size = HASH_SIDE * PHASH_HIGHFREQ_FACTOR
    basis = (_dct_matrix(dct_size)[:HASH_SIDE] @ _area_matrix(dct_size, in_size)).astype(np.float32)
    basis.setflags(write=False)
    return basis


def _check_pixels(pixels: np.ndarray) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"pixels must be (n, h, w, 3), got shape {pixels.shape}")
    return pixels


def _grayscale(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32, copy=False) @ LUMA_WEIGHTS.astype(np.float32)


def _pack_bits(bits: np.ndarray) -> np.ndarray:
    """``(n, 8, 8)`` booleans -> ``(n,)`` uint64, first bit most significant."""
    packed = np.packbits(bits.reshape(bits.shape[0], HASH_BITS), axis=1)
    return packed.view(">u8").ravel().astype(np.uint64)


def perceptual_hash(pixels: np.ndarray) -> np.ndarray:
    """64-bit pHash per image: ``(n, h, w, 3)`` in [0, 1] -> ``(n,)`` uint64.

    The standard pHash: a 32x32 block-mean grayscale downsample, its 2D DCT-II,
    the top-left 8x8 low frequencies (DC included), one bit per coefficient set
    when it is above their median. Low frequencies carry the layout of the image
    and survive resizing, recompression and brightness changes.
    """
    return perceptual_hash_of_luma(_grayscale(_check_pixels(pixels)))


def perceptual_hash_of_luma(gray: np.ndarray) -> np.ndarray:
    """:func:`perceptual_hash` of grayscale images ``(n, h, w)`` on any scale (the bits compare
    coefficients with their median, so scaling the levels changes nothing)."""
    gray = np.asarray(gray, dtype=np.float32)
    if gray.ndim != 3:
        raise ValueError(f"gray images must be (n, h, w), got shape {gray.shape}")
    rows, cols = _phash_basis(gray.shape[1]), _phash_basis(gray.shape[2])
    low = (rows @ gray).astype(np.float64) @ cols.T.astype(np.float64)
    scale = np.abs(low).max(axis=(1, 2), keepdims=True)
    low = np.where(np.abs(low) <= _PHASH_TIE_RTOL * scale, 0.0, low)
    median = np.median(low.reshape(low.shape[0], -1), axis=1)[:, None, None]
    return _pack_bits(low > median)


def difference_hash(pixels: np.ndarray) -> np.ndarray:
    """64-bit dHash per image: ``(n, h, w, 3)`` in [0, 1] -> ``(n,)`` uint64.

    A 9-wide, 8-tall block-mean grayscale downsample; a bit is set where a cell
    is darker than its right neighbour. Cheaper than pHash and as robust to
    rescaling, a little less to local edits.
    """
    gray = _grayscale(_check_pixels(pixels))
    rows = _area_matrix(HASH_SIDE, gray.shape[1]).astype(np.float32)
    cols = _area_matrix(HASH_SIDE + 1, gray.shape[2]).astype(np.float32)
    small = (rows @ gray).astype(np.float64) @ cols.T.astype(np.float64)
    return _pack_bits(small[:, :, 1:] - small[:, :, :-1] > _DHASH_TIE_ATOL)


# Fixed random hyperplanes for the similarity hash, one per bit, over the layout's cells. Drawn once from a
# seeded generator (PCG64 with the normal distribution is stable across numpy releases), so hashes computed
# on any node and in any release agree; a test pins a hash value.
_SIMILARITY_SEED = 20240611
_SIMILARITY_PLANES: dict[int, np.ndarray] = {}


def _similarity_planes(cells: int) -> np.ndarray:
    planes = _SIMILARITY_PLANES.get(cells)
    if planes is None:
        planes = np.random.default_rng(_SIMILARITY_SEED).standard_normal((cells, HASH_BITS)).astype(np.float32)
        planes.setflags(write=False)
        _SIMILARITY_PLANES[cells] = planes
    return planes


def normalized_layout(layout: np.ndarray) -> np.ndarray:
    """Rows of block means made zero-mean and unit-length (float32): their dot product is the correlation of
    two layouts, which brightness and contrast changes, re-encoding and grayscale conversion barely move. A
    flat row stays zero."""
    rows = np.asarray(layout, dtype=np.float32)
    rows = rows - rows.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(rows, axis=1, keepdims=True)
    return np.divide(rows, norm, out=np.zeros_like(rows), where=norm > 1e-3)


def similarity_hash(layout: np.ndarray) -> np.ndarray:
    """64-bit similarity hash (SimHash) per row of block means ``(n, cells)`` -> ``(n,)`` uint64.

    Bit k is the side of fixed random hyperplane k the normalised layout lies on, so
    two layouts whose correlation is c differ in about ``64 * arccos(c) / pi`` bits:
    resized, re-encoded, darkened or grayscale copies stay within a few bits, and
    bits flip only where the picture changed. The layout being contrast-normalised, a
    white background with a small drawing on it counts as much as a photo, where
    pHash's bits on near-zero coefficients follow JPEG noise.
    """
    unit = normalized_layout(layout)
    return _pack_bits((unit @ _similarity_planes(unit.shape[1])) > 0)


def layout_to_hex(layout: np.ndarray) -> list[str]:
    """Rows of block means as hex strings of one byte per cell, each row stretched to 0-255 first (the
    correlation of two rows does not depend on their offset or scale, and the stretch keeps the precision of
    low-contrast pictures)."""
    rows = np.asarray(layout, dtype=np.float32)
    low = rows.min(axis=1, keepdims=True)
    span = np.maximum(rows.max(axis=1, keepdims=True) - low, 1e-6)
    levels = np.clip((rows - low) * (255.0 / span) + 0.5, 0, 255).astype(np.uint8)
    return [row.tobytes().hex() for row in levels]


def hex_to_layout(s: str) -> np.ndarray:
    """Inverse of :func:`layout_to_hex` for one row (the stretched levels, uint8)."""
    return np.frombuffer(bytes.fromhex(s), dtype=np.uint8)


def hash_to_hex(h: np.uint64 | int) -> str:
    """16 lowercase hex digits, zero-padded (the ``imagehash`` string layout)."""
    value = int(h)
    if not 0 <= value < 1 << HASH_BITS:
        raise ValueError(f"hash {value} does not fit in {HASH_BITS} bits")
    return f"{value:0{HASH_HEX_DIGITS}x}"


def hex_to_hash(s: str) -> int:
    """Inverse of :func:`hash_to_hex`."""
    if not 0 < len(s) <= HASH_HEX_DIGITS:
        raise ValueError(f"a hash is 1 to {HASH_HEX_DIGITS} hex digits, got {s!r}")
    value = int(s, 16)
    if value < 0:
        raise ValueError(f"a hash is not negative, got {s!r}")
    return value


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between uint64 hashes (broadcast), as int64."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    as_bytes = np.ascontiguousarray(x).reshape(-1).view(np.uint8)
    return _POPCOUNT_U8[as_bytes].reshape(*x.shape, 8).sum(axis=-1, dtype=np.int64)


#: Side of the coarse layouts the crop search hashes (2x2 blocks of the 16x16 layout).
CROP_SIDE = 8
#: Window scales (share of each axis kept) of the crop hypotheses, and the step of their offsets: each scale's
#: windows are spread over its whole range of offsets at most ``CROP_OFFSET_STEP`` apart (five at 0.9, one at
#: 1: the axis left whole). A copy cut by up to 10% of an axis in total, from one side or both, is within
#: 1.25% of one of them on each axis (15 windows per axis, 225 crops per picture).
CROP_SCALES = (0.9, 0.925, 0.95, 0.975, 1.0)
CROP_OFFSET_STEP = 0.025
#: ``(share kept, offset)`` of every axis window, in the order of the hypotheses.
CROP_AXIS_WINDOWS = tuple((s, float(o)) for s in CROP_SCALES
                          for o in np.linspace(0.0, 1.0 - s, int(round((1.0 - s) / CROP_OFFSET_STEP)) + 1))


@functools.lru_cache(maxsize=8)
def _crop_axis_weights(out: int, size: int) -> np.ndarray:
    """``(k, out, size)``: every axis window of the crop hypotheses."""
    return np.stack([window_weights(out, size, s, o) for s, o in CROP_AXIS_WINDOWS])


def whole_layouts(layout: np.ndarray) -> np.ndarray:
    """``(n, CROP_SIDE ** 2)``: the coarse layouts of the whole pictures, from ``(n, side * side)`` block-mean
    layouts (the first half of :func:`crop_layouts`, without the crops)."""
    rows = np.asarray(layout, dtype=np.float32)
    n, cells = rows.shape
    side = int(round(cells ** 0.5))
    whole = window_weights(CROP_SIDE, side, 1.0, 0.0)
    return (whole @ rows.reshape(n, side, side) @ whole.T).reshape(n, CROP_SIDE ** 2)


def crop_layouts(layout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """From ``(n, side * side)`` block-mean layouts: ``(n, CROP_SIDE ** 2)`` coarse layouts of the whole
    pictures and ``(n, k, CROP_SIDE ** 2)`` coarse layouts of ``k`` crops of each (every pair of axis windows
    of :data:`CROP_AXIS_WINDOWS`, the down window major). A copy cut from a picture has a whole layout close to
    one of the picture's crop layouts."""
    rows = np.asarray(layout, dtype=np.float32)
    n, cells = rows.shape
    side = int(round(cells ** 0.5))
    grid = rows.reshape(n, side, side)
    plain = whole_layouts(rows)
    axis = _crop_axis_weights(CROP_SIDE, side)
    a = len(axis)
    across = grid[:, None] @ axis.transpose(0, 2, 1)[None]  # (n, a, side, CROP_SIDE): matmul, not einsum
    crops = axis[None, :, None] @ across[:, None]  # (n, a down, a across, CROP_SIDE, CROP_SIDE)
    return plain, crops.reshape(n, a * a, -1)


def crop_hashes(layout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Similarity hashes of :func:`crop_layouts`: ``(n,)`` of the whole pictures and ``(n, k)`` of their crops."""
    plain, crops = crop_layouts(layout)
    n, k, cells = crops.shape
    return coarse_hash(plain), coarse_hash(crops.reshape(n * k, cells)).reshape(n, k)


def coarse_hash_probes(rows: np.ndarray, probes: int) -> np.ndarray:
    """``(n, 1 + probes)``: :func:`coarse_hash` of each row, then that hash with one of its ``probes`` least
    certain bits flipped (those whose projection is nearest its hyperplane, the first to flip when the
    picture changes a little): multi-probe LSH, so a copy a bit or two further from a hypothesis than the
    bands allow is still found."""
    rows = np.asarray(rows, dtype=np.float32)
    n, cells = rows.shape
    out = np.empty((n, 1 + probes), dtype=np.uint64)
    out[:, 0] = coarse_hash(rows)
    if probes == 0 or n == 0:
        return out
    unit = normalized_layout(rows)
    margin = np.abs(unit @ _similarity_planes(cells))
    weakest = np.argsort(margin, axis=1, kind="stable")[:, :probes]  # bit k is plane k, first most significant
    flips = np.left_shift(np.uint64(1), (HASH_BITS - 1 - weakest).astype(np.uint64))
    out[:, 1:] = out[:, :1] ^ flips
    return out


def coarse_hash(rows: np.ndarray) -> np.ndarray:
    """:func:`similarity_hash` of many short rows, by matrix products only: a bit is the sign of the centred
    row's projection, which its norm does not change, and the centring is folded into the product
    (row-wise reductions over 64 cells are far slower than a product). A flat row hashes to 0."""
    rows = np.asarray(rows, dtype=np.float32)
    n, cells = rows.shape
    planes = _similarity_planes(cells)
    offsets = planes.sum(axis=0)
    ones = np.full((cells, 1), 1.0 / cells, dtype=np.float32)
    out = np.empty(n, dtype=np.uint64)
    for start in range(0, n, _COARSE_BLOCK):  # blocks small enough to stay in cache
        block = rows[start:start + _COARSE_BLOCK]
        mean = block @ ones
        spread = np.square(block) @ ones - mean * mean
        projected = block @ planes - mean * offsets
        out[start:start + _COARSE_BLOCK] = _pack_bits((projected > 0) & (spread > 1e-6))
    return out


_COARSE_BLOCK = 1 << 12


def crop_layouts_of(layout: np.ndarray, which: np.ndarray) -> np.ndarray:
    """``(m, CROP_SIDE ** 2)``: crop hypothesis ``which[i]`` of row ``i`` of ``layout`` (as in
    :func:`crop_layouts`), for the few rows a search found, without the other hypotheses."""
    rows = np.asarray(layout, dtype=np.float32)
    n, cells = rows.shape
    side = int(round(cells ** 0.5))
    axis = _crop_axis_weights(CROP_SIDE, side)
    which = np.asarray(which, dtype=np.intp)
    down, across = axis[which // len(axis)], axis[which % len(axis)]
    return (down @ rows.reshape(n, side, side) @ across.transpose(0, 2, 1)).reshape(n, -1)


def crop_kept(which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The shares of each axis (across, down) that crop hypotheses ``which`` (as in :func:`crop_layouts`)
    keep."""
    scales = np.array([s for s, _ in CROP_AXIS_WINDOWS], dtype=np.float64)
    which = np.asarray(which, dtype=np.intp)
    return scales[which % len(scales)], scales[which // len(scales)]


def best_crops_of(layout: np.ndarray, owner: np.ndarray, target_plain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per pair ``(owner[i], target_plain[i])``: the crop hypothesis of ``layout[owner[i]]`` whose coarse
    layout correlates best with the target's whole coarse layout, and that correlation. The search finds a
    pair by its nearest hypothesis in bits, which need not be the best aligned one."""
    rows = np.asarray(layout, dtype=np.float32)
    target = normalized_layout(target_plain)
    best = np.zeros(len(owner), dtype=np.intp)
    score = np.full(len(owner), -1.0, dtype=np.float32)
    step = 256  # pairs at a time: 225 crops of 64 cells each
    for start in range(0, len(owner), step):
        part = slice(start, start + step)
        _, crops = crop_layouts(rows[owner[part]])
        m, k, cells = crops.shape
        unit = normalized_layout(crops.reshape(m * k, cells)).reshape(m, k, cells)
        corr = (unit @ target[part][:, :, None])[:, :, 0]
        best[part] = corr.argmax(axis=1)
        score[part] = corr.max(axis=1)
    return best, score
