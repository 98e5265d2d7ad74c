import numpy as np
import pytest

import bigseg
from bigseg.measure import measure_planes
from bigseg.stack import as_stack
from bigseg.tables import DETECTION_COLUMNS

from .conftest import raise_if_dask_computes


def _square_stack():
    image = np.zeros((1, 3, 20, 30), np.uint16)
    labels = np.zeros_like(image, dtype=np.int32)
    labels[0, 1, 4:8, 10:16] = 1
    image[0, 1, 4:8, 10:16] = 100
    image[0, 1, 4:8, 15] = 300  # pull the weighted centroid in x
    return labels, image


def test_measure_planes_positions_and_units():
    labels, image = _square_stack()
    table = measure_planes(
        labels,
        image,
        origin=(2, 10, 100, 200),
        scale=(2.0, 0.5, 0.25),
        translation=(1.0, 0.0, -3.0),
    )
    assert list(table.columns) == list(DETECTION_COLUMNS)
    row = table.iloc[0]
    weights = image[0, 1, 4:8, 10:16].astype(float)
    xs = np.arange(10, 16)[None, :] * np.ones((4, 1))
    expected_x = (weights * xs).sum() / weights.sum()
    assert row["t"] == 2 and row["z"] == 11 and row["y"] == pytest.approx(100 + 5.5)
    assert row["x"] == pytest.approx(200 + expected_x)
    assert row["z_um"] == pytest.approx(1.0 + 11 * 2.0)
    assert row["y_um"] == pytest.approx(105.5 * 0.5)
    assert row["x_um"] == pytest.approx(-3.0 + row["x"] * 0.25)
    assert row["area_px"] == 24 and row["area_um2"] == pytest.approx(24 * 0.125)
    assert row["intensity_sum"] == pytest.approx(weights.sum())
    assert row["radius_um"] == pytest.approx(np.sqrt(24 / np.pi) * np.sqrt(0.125))


def test_measure_planes_empty_has_columns_and_dtypes():
    table = measure_planes(np.zeros((1, 2, 5, 5), np.int32), np.zeros((1, 2, 5, 5), np.uint8))
    assert len(table) == 0
    assert dict(table.dtypes.astype(str)) == DETECTION_COLUMNS


def test_measure_is_lazy_and_chunk_invariant(small_stack):
    stack, _ = small_stack
    labels = bigseg.segment(stack)
    whole = bigseg.measure(labels.chunk({"z": -1}), stack).compute()
    with raise_if_dask_computes():
        lazy = bigseg.measure(labels.chunk({"z": 3}), stack)
    split = lazy.compute()
    key = ["z", "y", "x"]
    a = whole.sort_values(key).reset_index(drop=True)
    b = split.sort_values(key).reset_index(drop=True)
    assert len(a) > 0
    np.testing.assert_allclose(a[key].to_numpy(), b[key].to_numpy())
    assert a["area_px"].tolist() == b["area_px"].tolist()


def test_measure_rejects_mismatched_shapes(small_stack):
    stack, _ = small_stack
    other = as_stack(np.zeros((2, 5, 5), np.uint16), scale=(1, 1, 1))
    with pytest.raises(ValueError, match="same shape"):
        bigseg.measure(bigseg.segment(stack), other)
