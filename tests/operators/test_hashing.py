"""File digests and perceptual hashes on images with known relationships."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from operators import hashing as H
from tests.support import images

THUMB = 256
#: A copy that still looks the same is at most this many bits away.
NEAR_COPY_BITS = 6
#: Unrelated images sit near 32 bits apart; this is a comfortable floor for the mean.
UNRELATED_MEAN_BITS = 20

HASHES = [H.perceptual_hash, H.difference_hash]
HASH_IDS = ["phash", "dhash"]


def _pixels(*imgs: Image.Image) -> np.ndarray:
    return np.stack([np.asarray(i.convert("RGB").resize((THUMB, THUMB)), dtype=np.float32) / 255.0
                     for i in imgs])


def _scene(seed: int) -> Image.Image:
    """A smooth photo-like image: coarse noise upscaled, so it has structure at every scale a hash sees."""
    return images.noise(seed, size=(12, 8)).resize((480, 320), Image.Resampling.BICUBIC)


def _jpeg(img: Image.Image, quality: int = 70) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


@pytest.mark.parametrize("chunk", [1, 1000, H.DEFAULT_CHUNK], ids=["byte", "small", "default"])
def test_file_digest_is_sha256_of_the_bytes(tmp_path: Path, chunk: int) -> None:
    data = np.random.default_rng(0).bytes(5000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert H.file_digest(str(path), chunk=chunk) == hashlib.sha256(data).hexdigest()


def test_file_digest_of_empty_file_and_bad_chunk(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    assert H.file_digest(str(path)) == hashlib.sha256(b"").hexdigest()
    with pytest.raises(ValueError, match="chunk"):
        H.file_digest(str(path), chunk=0)


@pytest.mark.parametrize("hash_fn", HASHES, ids=HASH_IDS)
def test_identical_images_hash_identically(hash_fn: Callable[[np.ndarray], np.ndarray]) -> None:
    a, b = hash_fn(_pixels(_scene(1), _scene(1)))
    assert a == b
    assert hash_fn(_pixels(_scene(1))).dtype == np.uint64


@pytest.mark.parametrize("hash_fn", HASHES, ids=HASH_IDS)
@pytest.mark.parametrize("transform", [
    lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    lambda im: im.resize((im.width // 2, im.height // 2)).resize(im.size),
    lambda im: im.resize((200, 133)),
    _jpeg,
], ids=["brightened", "resized-then-thumbnailed", "downscaled", "jpeg-recompressed"])
def test_near_copies_are_within_a_few_bits(hash_fn: Callable[[np.ndarray], np.ndarray],
                                           transform: Callable[[Image.Image], Image.Image]) -> None:
    for seed in range(10):
        original = _scene(seed)
        a, b = hash_fn(_pixels(original, transform(original)))
        assert H.hamming(a, b) <= NEAR_COPY_BITS, f"seed {seed}"


@pytest.mark.parametrize("hash_fn", HASHES, ids=HASH_IDS)
@pytest.mark.parametrize("make", [images.noise, _scene], ids=["noise", "scenes"])
def test_unrelated_images_are_far_apart(hash_fn: Callable[[np.ndarray], np.ndarray],
                                        make: Callable[[int], Image.Image]) -> None:
    hashes = hash_fn(_pixels(*[make(seed) for seed in range(20)]))
    upper = np.triu_indices(hashes.size, k=1)
    distances = H.hamming(hashes[:, None], hashes[None, :])[upper]
    assert distances.mean() >= UNRELATED_MEAN_BITS


@pytest.mark.parametrize("hash_fn", HASHES, ids=HASH_IDS)
def test_batch_equals_one_image_at_a_time(hash_fn: Callable[[np.ndarray], np.ndarray]) -> None:
    imgs = [_scene(1), images.noise(2), images.checkerboard(), images.blurred(), images.flat(0), images.flat(200)]
    batch = hash_fn(_pixels(*imgs))
    single = np.concatenate([hash_fn(_pixels(img)) for img in imgs])
    np.testing.assert_array_equal(batch, single)


@pytest.mark.parametrize(("hash_fn", "value", "expected"), [
    (H.perceptual_hash, 0, 0),
    (H.perceptual_hash, 90, 1 << 63),
    (H.perceptual_hash, 255, 1 << 63),
    (H.difference_hash, 0, 0),
    (H.difference_hash, 90, 0),
], ids=["phash-black", "phash-gray", "phash-white", "dhash-black", "dhash-gray"])
def test_flat_images_hash_to_their_structure_alone(hash_fn: Callable[[np.ndarray], np.ndarray], value: int,
                                                   expected: int) -> None:
    """Only the DC term of a flat image is non-zero; nothing is darker than its neighbour."""
    assert int(hash_fn(_pixels(images.flat(value)))[0]) == expected


@pytest.mark.parametrize(("ramp", "expected"), [(np.arange(THUMB), (1 << 64) - 1), (np.arange(THUMB)[::-1], 0)],
                         ids=["brightening-rightwards", "darkening-rightwards"])
def test_dhash_sets_a_bit_where_left_is_darker(ramp: np.ndarray, expected: int) -> None:
    row = np.broadcast_to(ramp.astype(np.float32)[None, :, None] / (THUMB - 1), (THUMB, THUMB, 3))
    assert int(H.difference_hash(row[None])[0]) == expected


def test_phash_matches_the_imagehash_library_closely() -> None:
    """Same algorithm as imagehash.phash; only its Lanczos resize differs from our block mean."""
    imagehash = pytest.importorskip("imagehash")
    for seed in range(10):
        img = _scene(seed).resize((THUMB, THUMB))
        ours = H.perceptual_hash(_pixels(img))[0]
        theirs = H.hex_to_hash(str(imagehash.phash(img)))
        assert H.hamming(ours, theirs) <= NEAR_COPY_BITS // 2, f"seed {seed}"


def test_hashes_reject_a_batch_that_is_not_rgb() -> None:
    with pytest.raises(ValueError, match="pixels"):
        H.perceptual_hash(np.zeros((2, THUMB, THUMB), dtype=np.float32))


@pytest.mark.parametrize(("value", "text"), [
    (0, "0000000000000000"),
    (1, "0000000000000001"),
    (1 << 63, "8000000000000000"),
    ((1 << 64) - 1, "ffffffffffffffff"),
    (0x0123456789ABCDEF, "0123456789abcdef"),
], ids=["zero", "one", "top-bit", "all-ones", "mixed"])
def test_hex_round_trip(value: int, text: str) -> None:
    assert H.hash_to_hex(np.uint64(value)) == text
    assert H.hex_to_hash(text) == value
    assert H.hex_to_hash(H.hash_to_hex(value)) == value


@pytest.mark.parametrize("text", ["", "xyz", "1" * 17, "-1"], ids=["empty", "not-hex", "too-long", "negative"])
def test_hex_to_hash_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        H.hex_to_hash(text)


def test_hash_to_hex_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        H.hash_to_hex(1 << 64)


@pytest.mark.parametrize("builtin_popcount", [True, False], ids=["bitwise_count", "byte-table"])
def test_hamming_counts_differing_bits(monkeypatch: pytest.MonkeyPatch, builtin_popcount: bool) -> None:
    if not builtin_popcount:
        monkeypatch.delattr(np, "bitwise_count", raising=False)
    a = np.array([0, 0, (1 << 64) - 1, 0b1011], dtype=np.uint64)
    b = np.array([0, 1 << 63, 0, 0b0110], dtype=np.uint64)
    np.testing.assert_array_equal(H.hamming(a, b), [0, 1, 64, 3])
    assert H.hamming(a[:, None], b[None, :]).shape == (4, 4)
    assert int(H.hamming(np.uint64(7), np.uint64(0))) == 3
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 1 << 63, 500, dtype=np.uint64) * 2 + 1, rng.integers(0, 1 << 63, 500, dtype=np.uint64)
    expected = [bin(int(p) ^ int(q)).count("1") for p, q in zip(x, y, strict=True)]
    np.testing.assert_array_equal(H.hamming(x, y), expected)
