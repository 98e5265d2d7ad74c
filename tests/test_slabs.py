"""Planes split into y/x blocks are stitched slab by slab on the workers (pipeline/slabs.py)."""

import dask
import numpy as np
import pandas as pd
import pytest
import zarr

import bigseg.chunked.stitch as stitch_module
import bigseg.pipeline.slabs as slabs
from bigseg import Params, run
from bigseg.chunked.stitch import face_pairs, side_tables, stitch, stitch_grid
from bigseg.pipeline.scratch import scratch_path
from bigseg.pipeline.sink import compute
from bigseg.segment import _threshold_array, halo_px, plan_blocks, stitched_blocks

from .conftest import SCALE, synthetic

PARAMS = Params(preset="seed", smooth_radius=1.42, min_radius=2.84, max_radius=9.0)
HALO = halo_px(PARAMS.in_pixels(SCALE), "seed")
# Two time points in one t-chunk, three z-chunks, 3 x 3 y/x blocks: three slabs of 9 blocks.
CHUNKS = {"t": 2, "z": 2, "y": 50, "x": 50}
UNPROVEN = "ignore:.*not proven identical to whole-plane segmentation:UserWarning"


@pytest.fixture(scope="module")
def series():
    stack, _ = synthetic(
        shape=(6, 150, 150), nuclei=30, t=2, seed=5, radius_um=(4.0, 6.0), min_separation=0.9
    )
    return stack


def test_slabs_stitched_apart_equal_the_grid_stitched_at_once(series):
    stack = series.chunk(CHUNKS)
    px = PARAMS.in_pixels(SCALE)
    thr = _threshold_array(stack, stack, None, PARAMS)
    blocks = stitched_blocks(plan_blocks(stack.data, px, True, "seed"), thr, PARAMS, px, SCALE)
    side = side_tables(blocks)
    records, *pairs = compute((side, *face_pairs(side)), None, False, "")
    whole = stitch(records, pairs)
    assert whole.counts().regions_across_faces > 0  # faces really crossed

    parts = [stitch_grid(records[t : t + 1, z : z + 1]) for t, z in np.ndindex(records.shape[:2])]
    assert sum((p.counts() for p in parts), start=stitch_module.StitchCounts()) == whole.counts()
    sums = pd.concat([p.sums for p in parts]).sort_values(["t", "z", "label"], kind="stable")
    pd.testing.assert_frame_equal(sums.reset_index(drop=True), whole.sums)
    nodes = pd.concat([p.nodes for p in parts]).sort_values(["block", "t", "z", "label"])
    pd.testing.assert_frame_equal(nodes.reset_index(drop=True), whole.nodes)


@pytest.mark.filterwarnings(UNPROVEN)
def test_a_run_stitches_slab_by_slab_and_never_gathers_the_blocks(series, tmp_path, monkeypatch):
    """The client gets counts only: no block sums, no face tables, no detections."""
    whole = run(series, tmp_path / "whole", params=PARAMS, track=False)

    def gathered(*args, **kwargs):
        raise AssertionError("the blocks' sums were gathered on the client")

    monkeypatch.setattr(stitch_module, "summaries", gathered)
    shapes = []
    real = slabs.stitch_grid

    def spy(records):
        shapes.append(records.shape)
        return real(records)

    monkeypatch.setattr(slabs, "stitch_grid", spy)
    split = run(series.chunk(CHUNKS), tmp_path / "split", params=PARAMS, track=False)
    assert shapes == [(1, 1, 3, 3)] * 3  # one task per slab: a t-chunk by a z-chunk
    assert split.record["stitching"]["blocks"] == 27
    assert split.record["stitching"]["regions_across_faces"] > 0
    pd.testing.assert_frame_equal(whole.nuclei, split.nuclei, check_exact=False, rtol=1e-10)
    # Plane-local labels are numbered by block in split planes: compare the regions.
    a, b = (
        r.detections.drop(columns="label").sort_values(["t", "z", "y", "x"], ignore_index=True)
        for r in (whole, split)
    )
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-10)
    np.testing.assert_array_equal(
        zarr.open_array(tmp_path / "whole" / "labels.zarr" / "0", mode="r")[...],
        zarr.open_array(tmp_path / "split" / "labels.zarr" / "0", mode="r")[...],
    )
    assert not (tmp_path / "split" / "slabs").exists()  # scratch, removed at the end


@pytest.mark.filterwarnings(UNPROVEN)
def test_a_run_interrupted_while_stitching_resumes_the_slabs_left(series, tmp_path, monkeypatch):
    stack = series.chunk(CHUNKS)
    reference = run(stack, tmp_path / "ref", params=PARAMS, track=False)
    out = tmp_path / "out"
    real = slabs._stitch_slab
    calls = []

    def one_then_stop(*args, **kwargs):
        if len(calls) == 1:
            raise KeyboardInterrupt
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(slabs, "_stitch_slab", one_then_stop)
    with pytest.raises(KeyboardInterrupt), dask.config.set(scheduler="synchronous"):
        run(stack, out, params=PARAMS, resume=True, track=False)
    markers = sorted(p.name for p in (scratch_path(out) / "slabs").glob("*.json"))
    assert len(markers) == 1
    monkeypatch.setattr(slabs, "_stitch_slab", real)
    again = []
    monkeypatch.setattr(slabs, "_stitch_slab", lambda *a, **k: again.append(a) or real(*a, **k))
    resumed = run(stack, out, params=PARAMS, resume=True, track=False)
    assert len(again) == 2  # the two slabs left, not the one done
    assert resumed.record["stitching"] == reference.record["stitching"]
    pd.testing.assert_frame_equal(resumed.nuclei, reference.nuclei)
    np.testing.assert_array_equal(
        zarr.open_array(tmp_path / "ref" / "labels.zarr" / "0", mode="r")[...],
        zarr.open_array(out / "labels.zarr" / "0", mode="r")[...],
    )


@pytest.mark.filterwarnings(UNPROVEN)
def test_every_block_of_split_planes_is_segmented_once(series, tmp_path, monkeypatch):
    """Labels and stitching records come from one computation of each block (not two)."""
    calls = []
    real = stitch_module._block_record

    def counted(*args, **kwargs):
        calls.append(kwargs["index"])
        return real(*args, **kwargs)

    monkeypatch.setattr(stitch_module, "_block_record", counted)
    with dask.config.set(scheduler="synchronous"):
        result = run(series.chunk(CHUNKS), tmp_path / "out", params=PARAMS, track=False)
    assert result.record["blocks"]["total"] == 27
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 27


@pytest.mark.filterwarnings(UNPROVEN)
def test_split_planes_of_a_series_relabelled_in_batches_equal_whole_planes(
    series, tmp_path, monkeypatch
):
    import bigseg.pipeline.scratch as scratch

    whole = run(series, tmp_path / "whole", params=PARAMS, track=False)
    monkeypatch.setattr(scratch, "BATCH_BLOCKS", 9)  # one t-chunk (of 9 blocks) a batch
    split = run(
        series.chunk({"t": 1, "z": -1, "y": 50, "x": 50}), tmp_path / "split", params=PARAMS,
        track=False,
    )  # fmt: skip
    assert split.record["stitching"]["blocks"] == 18
    pd.testing.assert_frame_equal(whole.nuclei, split.nuclei, check_exact=False, rtol=1e-10)
    np.testing.assert_array_equal(
        zarr.open_array(tmp_path / "whole" / "labels.zarr" / "0", mode="r")[...],
        zarr.open_array(tmp_path / "split" / "labels.zarr" / "0", mode="r")[...],
    )
