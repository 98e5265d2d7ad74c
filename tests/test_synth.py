import numpy as np
import pandas as pd
import pytest

from bigseg import InputError, open_stack
from bigseg.synth import make_truth, render, synth


def test_truth_is_reproducible_and_separated():
    a = make_truth((20, 100, 100), 12, seed=3)
    b = make_truth((20, 100, 100), 12, seed=3)
    pd.testing.assert_frame_equal(a, b)
    pts = a[["z_um", "y_um", "x_um"]].to_numpy()
    d = np.linalg.norm(pts[:, None] - pts[None], axis=-1)
    rsum = a["r_um"].to_numpy()[:, None] + a["r_um"].to_numpy()[None]
    off = ~np.eye(len(a), dtype=bool)
    assert np.all(d[off] >= 1.1 * rsum[off] - 1e-9)
    np.testing.assert_allclose(a["x"] * 0.71, a["x_um"])


def test_render_blocks_tile_the_signal():
    truth = make_truth((6, 40, 40), 2, seed=1, radius_um=(4, 5))
    whole = render(truth, (0, 0, 0, 0), (1, 6, 40, 40), scale=(1.5, 0.71, 0.71), noise_seed=0)
    top = render(truth, (0, 0, 0, 0), (1, 3, 40, 40), scale=(1.5, 0.71, 0.71), noise_seed=0)
    bottom = render(truth, (0, 3, 0, 0), (1, 3, 40, 40), scale=(1.5, 0.71, 0.71), noise_seed=0)
    assert whole.dtype == np.uint16 and whole.max() <= 4095
    tiled = np.concatenate([top, bottom], axis=1).astype(float)
    # Same signal; only the per-block noise differs.
    assert np.abs(tiled - whole).mean() < 30


def test_synth_writes_ome_zarr_and_truth(tmp_path):
    image, truth = synth(tmp_path / "x.ome.zarr", shape=(4, 32, 32), nuclei=1, seed=0)
    assert truth.name == "x_truth.csv"
    stack = open_stack(image)
    assert stack.shape == (4, 32, 32) and stack.attrs["scale"]["y"] == pytest.approx(0.71)
    with pytest.raises(InputError, match="exists"):
        synth(image, shape=(4, 32, 32), nuclei=1)
