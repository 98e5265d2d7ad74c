"""Long series in batches of time points: the same outputs, graphs bounded by the batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr

import bigseg
import bigseg.pipeline.scratch as scratch
import bigseg.pipeline.sink as sink
from bigseg import run
from bigseg.pipeline.layout import scratch_path

from .conftest import SCALE, synthetic
from .test_reliability import assert_same_outputs

PARAMS = {"min_radius": 2.84, "max_radius": 9.0, "smooth_radius": 1.42}


#: The passes a run computes in batches of time points (t-chunks).
PASSES = (
    "threshold", "segment", "link", "tables", "frame links", "gaps and divisions", "track ids",
    "labels", "track labels",
)  # fmt: skip


def _series(n_t, seed=31):
    return synthetic((6, 64, 64), 5, t=n_t, seed=seed, radius_um=(3.0, 5.0))[0]


def _record_batches(monkeypatch):
    """Record, per pass, the number of tasks in the graph of every batch computed."""
    seen: dict[str, list[int]] = {}
    real = sink.Sink.batches

    def batches(self, items, label, **kwargs):
        def counted():
            for batch in items:
                keys = set()
                for item in batch:
                    keys |= set(item.__dask_graph__().keys())
                seen.setdefault(label, []).append(len(keys))
                yield batch

        return real(self, counted(), label, **kwargs)

    monkeypatch.setattr(sink.Sink, "batches", batches)
    return seen


def test_t_batches_hold_whole_t_chunks_and_at_most_the_blocks_asked():
    chunks = ((2, 2, 2, 1), (3, 3), (64,), (64,))  # two blocks per t-chunk
    assert scratch.t_batches(chunks, 4) == [(0, 2, 0, 4), (2, 4, 4, 7)]
    assert scratch.t_batches(chunks, 1) == [(0, 1, 0, 2), (1, 2, 2, 4), (2, 3, 4, 6), (3, 4, 6, 7)]
    assert scratch.t_batches(chunks, 100) == [(0, 4, 0, 7)]


@pytest.mark.parametrize("preset", ["seed", "default"])
def test_batches_of_time_points_give_the_outputs_of_one_batch(tmp_path, monkeypatch, preset):
    # Irregular t-chunks (the labels are rechunked to regular ones) and two z-chunks.
    series = _series(5).chunk({"t": (2, 1, 2), "z": 3})
    params = bigseg.Params.from_preset(preset, **PARAMS)
    reference = run(series, tmp_path / "ref", params=params, track_labels=True)
    seen = _record_batches(monkeypatch)
    monkeypatch.setattr(scratch, "BATCH_BLOCKS", 2)
    batched = run(series, tmp_path / "out", params=params, track_labels=True)
    assert all(len(seen[p]) > 1 for p in PASSES)
    np.testing.assert_array_equal(batched.thresholds, reference.thresholds)
    assert batched.record["counts"] == reference.record["counts"]
    assert batched.record["blocks"] == reference.record["blocks"]
    pd.testing.assert_frame_equal(batched.nuclei, reference.nuclei)
    assert_same_outputs(tmp_path / "ref", tmp_path / "out")
    by_track = [
        zarr.open_array(p / "track_labels.zarr" / "0")[...]
        for p in (tmp_path / "ref", tmp_path / "out")
    ]
    np.testing.assert_array_equal(*by_track)


@pytest.mark.parametrize("preset", ["seed", "default"])
def test_each_batch_graph_is_built_from_its_own_time_points(tmp_path, monkeypatch, preset):
    """A batch's graph does not grow with the length of the series."""
    params = bigseg.Params.from_preset(preset, **PARAMS)
    monkeypatch.setattr(scratch, "BATCH_BLOCKS", 2)
    sizes = {}
    for n_t in (4, 8):
        seen = _record_batches(monkeypatch)
        series = _series(n_t).chunk({"t": 1, "z": -1, "y": -1, "x": -1})  # a block per t
        run(series, tmp_path / f"out{n_t}", params=params, track_labels=True)
        assert [len(seen[p]) for p in PASSES] == [n_t // 2] * len(PASSES)
        sizes[n_t] = {label: max(tasks) for label, tasks in seen.items()}
    assert sizes[8] == sizes[4]


def test_resume_after_an_interrupted_batch_reuses_the_finished_ones(tmp_path, monkeypatch):
    series = _series(6).chunk({"t": 1, "z": -1, "y": -1, "x": -1})
    params = bigseg.Params(**PARAMS)
    reference = run(series, tmp_path / "ref", params=params)
    monkeypatch.setattr(scratch, "BATCH_BLOCKS", 2)
    real_finish = scratch._finish_block
    done = []

    def finish_some(*args, **kwargs):
        if len(done) >= 3:  # the first batch, and one block of the second
            raise KeyboardInterrupt
        done.append(1)
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(scratch, "_finish_block", finish_some)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run(series, out, resume=True, params=params)
    kept = len(list((scratch_path(out) / "blocks").glob("*.parquet")))
    assert 2 <= kept < 6
    monkeypatch.setattr(scratch, "_finish_block", real_finish)
    resumed = run(series, out, resume=True, params=params)
    assert resumed.record["blocks"]["total"] == 6
    assert 6 > resumed.record["blocks"]["reused"] >= kept
    pd.testing.assert_frame_equal(resumed.nuclei, reference.nuclei)
    assert_same_outputs(tmp_path / "ref", out)


def test_the_labels_pass_relabels_no_more_than_a_batch_at_once(tmp_path, monkeypatch):
    # A long series: labels.zarr is created from the planes' shape alone, and each batch
    # relabels its own time points (no relabelling graph of the whole series); the
    # outputs are those of one batch.
    from bigseg.pipeline import passes

    series = _series(8).chunk({"t": 1, "z": -1, "y": -1, "x": -1})
    params = bigseg.Params.from_preset("seed", **PARAMS)
    reference = run(series, tmp_path / "ref", params=params)
    monkeypatch.setattr(scratch, "BATCH_BLOCKS", 2)
    seen = []
    real = passes.relabel_partitioned

    def counted(planes, *args, **kwargs):
        seen.append(planes.numblocks[0])
        return real(planes, *args, **kwargs)

    monkeypatch.setattr(passes, "relabel_partitioned", counted)
    result = run(series, tmp_path / "out", params=params)
    assert seen == [2] * 4
    assert result.record["counts"] == reference.record["counts"]
    assert_same_outputs(tmp_path / "ref", tmp_path / "out")


@pytest.mark.parametrize("preset", ["seed", "default"])
def test_the_segment_pass_takes_the_planes_layout_from_the_first_t_chunk(preset):
    # The stand-in for the whole series' plane labels (no graph of the series) has the
    # shape, chunks, dtype, dims, coordinates and metadata of bigseg.segment's labels.
    from bigseg.pipeline.passes import planes_like
    from bigseg.segment import segment
    from bigseg.stack import as_4d

    four = as_4d(_series(5).chunk({"t": (2, 1, 2), "z": 3}))
    params = bigseg.Params.from_preset(preset, **PARAMS)
    thresholds = np.full(5, 100.0)
    whole = as_4d(segment(four, params=params, threshold=thresholds, stitch=False))
    like = planes_like(four, thresholds, params)
    assert like.data.chunks == whole.data.chunks and like.dtype == whole.dtype
    assert like.dims == whole.dims and like.attrs == whole.attrs and like.name == whole.name
    xr_testing = pytest.importorskip("xarray.testing")
    xr_testing.assert_identical(like.coords.to_dataset(), whole.coords.to_dataset())
    assert len(dict(like.data.__dask_graph__())) < len(dict(whole.data.__dask_graph__()))


def test_split_planes_of_one_time_point_go_in_batches_of_their_own_blocks(tmp_path, monkeypatch):
    """The stored pre-pass, the blocks, their stitching and their labels: a graph per batch."""
    import dask
    import zarr

    params = bigseg.Params(**PARAMS)
    monkeypatch.setattr(scratch, "BATCH_BLOCKS", 4)
    sizes = {}
    for side in (256, 512):  # 16 and 64 blocks per plane: more blocks, the same batches
        seen = _record_batches(monkeypatch)
        stack = synthetic((6, side, side), side // 8, seed=3, radius_um=(3.0, 5.0))[0]
        path = tmp_path / f"s{side}.zarr"
        zarr.create_array(path, data=stack.values, chunks=(6, side, side))
        # A file read in the blocks asked for (the halo's reach in z is the whole stack):
        # every grown block is read from the file, none exchanged with its neighbours.
        stack = bigseg.open_stack(path, scale=SCALE, chunks=(6, 64, 64))
        with dask.config.set(scheduler="synchronous"):
            result = run(stack, tmp_path / f"o{side}", params=params)
        assert "stitching" in result.record and len(result.nuclei) > 5
        blocks = (side // 64) ** 2
        for label in ("foreground", "segment", "labels"):
            assert len(seen[label]) == -(-blocks // 4), (label, seen[label])
        passes = ("foreground", "segment", "stitch", "labels")
        sizes[side] = {label: max(seen[label]) for label in passes}
    assert sizes[512] == sizes[256]
    # the same outputs as one batch of every block
    monkeypatch.setattr(scratch, "BATCH_BLOCKS", 10_000)
    stack = bigseg.open_stack(tmp_path / "s256.zarr", scale=SCALE, chunks=(6, 64, 64))
    with dask.config.set(scheduler="synchronous"):
        run(stack, tmp_path / "one", params=params)
    assert_same_outputs(tmp_path / "one", tmp_path / "o256")
