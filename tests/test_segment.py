import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from skimage.filters import threshold_otsu

import bigseg
from bigseg import Params
from bigseg.measure import measure
from bigseg.stack import as_stack

from .conftest import SCALE, raise_if_dask_computes, synthetic
from .reference_recipe import recipe_detections

SEED = Params.from_preset("seed")


def _detections(stack, params=SEED):
    labels = bigseg.segment(stack, params=params)
    table = measure(labels, stack).compute()
    return table.sort_values(["z", "y", "x"]).reset_index(drop=True)


def _assert_matches_recipe(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    expected = expected.sort_values(["z", "y", "x"]).reset_index(drop=True)
    assert len(found) == len(expected) > 0
    np.testing.assert_array_equal(found["z"], expected["z"])
    np.testing.assert_array_equal(found["area_px"], expected["area_px"])
    np.testing.assert_allclose(found["y"], expected["y"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(found["x"], expected["x"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(found["intensity_sum"], expected["intensity_sum"], rtol=1e-12)


def test_seed_params_are_the_recipe_pixels():
    px = SEED.in_pixels(SCALE)
    assert (px.smooth_radius, px.min_radius, px.max_radius, px.min_distance) == (5, 4, 20, 8)


@pytest.mark.parametrize("z_chunk", [1, 3, 7, 21])
def test_seed_preset_matches_recipe_on_seed_stack(seed_stack, z_chunk):
    stack = as_stack(da.from_array(seed_stack, chunks=(z_chunk, -1, -1)), scale=SCALE)
    _assert_matches_recipe(_detections(stack), recipe_detections(seed_stack))


@pytest.mark.parametrize("z_chunk", [1, 4])
def test_seed_preset_matches_recipe_on_synthetic(z_chunk):
    stack, _ = synthetic(shape=(9, 80, 90), nuclei=5, seed=3)
    stack = stack.chunk({"z": z_chunk})
    _assert_matches_recipe(_detections(stack), recipe_detections(stack.values))


def test_labels_do_not_depend_on_chunking(small_stack):
    stack, _ = small_stack
    whole = bigseg.segment(stack.chunk({"z": -1})).values
    for chunks in [{"z": 1}, {"z": 3}, {"z": 4, "y": 50, "x": 33}]:
        np.testing.assert_array_equal(bigseg.segment(stack.chunk(chunks)).values, whole)


def test_global_threshold_equals_otsu_of_max_projection(small_stack):
    stack, _ = small_stack
    for chunks in [{"z": 1}, {"z": 4, "y": 40, "x": 50}]:
        value = float(bigseg.global_threshold(stack.chunk(chunks), params=SEED).compute())
        assert value == threshold_otsu(stack.values.max(axis=0))


def test_global_threshold_per_time_point():
    stack, _ = synthetic(shape=(4, 48, 48), nuclei=2, t=3, seed=5)
    values = bigseg.global_threshold(stack, params=SEED).values
    expected = [threshold_otsu(stack.values[i].max(axis=0)) for i in range(3)]
    np.testing.assert_array_equal(values, expected)


def test_float_data_threshold_and_segment():
    stack, _ = synthetic(shape=(4, 60, 60), nuclei=2, seed=2)
    as_float = as_stack(stack.data.astype(np.float32) / 4095, scale=SCALE)
    value = float(bigseg.global_threshold(as_float, params=SEED).compute())
    assert value == pytest.approx(threshold_otsu(as_float.values.max(axis=0)))
    assert bigseg.segment(as_float).values.max() > 0


def test_segment_and_threshold_are_lazy(small_stack):
    stack, _ = small_stack
    with raise_if_dask_computes():
        labels = bigseg.segment(stack)
        table = measure(labels, stack)
        thr = bigseg.global_threshold(stack)
    assert labels.dims == stack.dims and labels.shape == stack.shape
    assert labels.chunks is not None and table.npartitions == labels.data.npartitions
    assert thr.ndim == 0


def test_time_series_segments_each_time_point_like_alone():
    stack, _ = synthetic(shape=(5, 64, 64), nuclei=3, t=2, seed=4)
    both = bigseg.segment(stack).values
    for t in range(2):
        alone = as_stack(stack.data[t], scale=SCALE)
        np.testing.assert_array_equal(both[t], bigseg.segment(alone).values)


def test_threshold_argument_checked(small_stack):
    stack, _ = small_stack
    with pytest.raises(bigseg.InputError, match="time points"):
        bigseg.segment(stack, threshold=[1.0, 2.0])
    assert bigseg.segment(stack, threshold=1e9).values.max() == 0


def test_one_segment_task_per_chunk(small_stack):
    stack, _ = small_stack
    for z_chunk in (1, 3, 10):
        labels = bigseg.segment(stack.chunk({"z": z_chunk}), params=SEED, threshold=500.0)
        graph = dict(labels.data.__dask_graph__())
        tasks = [k for k in graph if isinstance(k, tuple) and k[0].startswith("segment_planes")]
        assert len(tasks) == labels.data.npartitions == -(-stack.sizes["z"] // z_chunk)


def test_default_floor_does_not_depend_on_chunking_and_keeps_chunks(small_stack):
    # The default preset's floor smooths the stack in its own chunks (planes split in y/x
    # too), each grown by the Gaussian's reach: same value, no task holding whole planes.
    stack, _ = small_stack
    params = Params.from_preset("default")
    whole = float(bigseg.global_threshold(stack.chunk({"z": -1}), params=params).compute())
    for chunks in [{"z": 1}, {"z": 3, "y": 40, "x": 33}, {"z": 2, "y": 7, "x": 50}]:
        split = bigseg.global_threshold(stack.chunk(chunks), params=params)
        assert float(split.compute()) == whole
    # Planes wider than the reach of the smoothing and the background map (45 px a side).
    wide = synthetic(shape=(4, 256, 256), nuclei=6, seed=5)[0]
    split = bigseg.global_threshold(wide.chunk({"z": 2, "y": 64, "x": 64}), params=params)
    graph = dict(split.data.__dask_graph__())
    widest = max(
        v.shape[2] for v in dask.get(graph, [k for k in graph if "_signal_block" in str(k)])
    )
    assert widest < wide.sizes["y"]
