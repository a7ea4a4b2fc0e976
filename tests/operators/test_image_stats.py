"""The one-pass statistics: the same values whatever the block size, and names checked."""

from __future__ import annotations

import numpy as np
import pytest

from operators import features as F
from operators import image_stats as S
from tests.support import images


def _batch() -> tuple[np.ndarray, np.ndarray]:
    pictures = [images.noise(0), images.blurred(), images.checkerboard(), images.flat(3), images.flat(250),
                images.noise(5, size=(40, 30))]
    rgb = np.stack([np.asarray(p.convert("RGB").resize((128, 128)), dtype=np.uint8) for p in pictures])
    sizes = [p.size for p in pictures]
    upscale = F.upscale_factors(np.array([w for w, _ in sizes]), np.array([h for _, h in sizes]), 128)
    return rgb, upscale


def test_block_size_changes_no_value() -> None:
    rgb, upscale = _batch()
    names = list(S.STATISTICS)
    whole = S.compute(rgb, names, upscale=upscale, block_pixels=len(rgb) * 128 * 128)
    for block in (1, 2 * 128 * 128, 5 * 128 * 128):
        blocked = S.compute(rgb, names, upscale=upscale, block_pixels=block)
        for name in names:
            assert np.array_equal(blocked[name], whole[name]), (name, block)
    assert whole[S.SHARPNESS].shape == (len(rgb),) and whole[S.BRIGHTNESS_PERCENTILES].shape == (len(rgb), 2)
    assert np.array_equal(whole[S.SHARPNESS], F.edge_sharpness(F.Planes(rgb), upscale))
    assert np.array_equal(whole[S.BRIGHTNESS_PERCENTILES].T, np.percentile(F.Planes(rgb).hsp, [99, 5], axis=1))


def test_an_unknown_statistic_is_named() -> None:
    rgb, _ = _batch()
    with pytest.raises(KeyError, match="nonsense"):
        S.compute(rgb, ["brightness", "nonsense"])


def test_an_empty_batch_has_empty_statistics() -> None:
    out = S.compute(np.zeros((0, 128, 128, 3), np.uint8), list(S.STATISTICS))
    assert all(len(v) == 0 for v in out.values())
