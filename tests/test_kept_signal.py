"""The default method's signal, computed once per run: kept by the threshold pass."""

from __future__ import annotations

import dask
import dask.array
import numpy as np
import pytest

import bigseg
import bigseg.pipeline.passes as passes
import bigseg.pipeline.runner as runner
import bigseg.pipeline.scratch as scratch
from bigseg import run
from bigseg.methods import default as dm
from bigseg.pipeline.layout import KEPT, KEPT_DONE, KEPT_ZARR, scratch_path
from bigseg.stack import scale_of

from .conftest import assert_same_labels, synthetic
from .test_reliability import assert_same_outputs

PARAMS = {"min_radius": 2.84, "max_radius": 9.0, "smooth_radius": 1.42}


@pytest.fixture(scope="module")
def series():
    # Two z-chunks of whole planes, each at least the pre-pass's reach in z (15 planes):
    # no block is merged with its neighbour.
    stack = synthetic((32, 64, 64), 10, t=2, seed=5, radius_um=(3.0, 5.0))[0]
    return stack.chunk({"t": 1, "z": 16, "y": -1, "x": -1})


def _count_signals(monkeypatch):
    """Count the time points of blocks whose signal is computed from the stack."""
    calls = []
    real = dm.signal_volume

    def counted(volume, *args, **kwargs):
        calls.append(volume.shape[0])
        return real(volume, *args, **kwargs)

    monkeypatch.setattr(dm, "signal_volume", counted)
    return calls


def test_the_signal_is_computed_once_and_the_outputs_are_the_same(tmp_path, monkeypatch, series):
    params = bigseg.Params(**PARAMS)
    calls = _count_signals(monkeypatch)
    with dask.config.set(scheduler="synchronous"):
        # as before: twice (the run decides before planning its work blocks)
        monkeypatch.setattr(runner, "keeps_signal", lambda *a, **k: False)
        twice = run(series, tmp_path / "twice", params=params)
        n_twice = len(calls)
        monkeypatch.undo()
        calls = _count_signals(monkeypatch)
        once = run(series, tmp_path / "once", params=params)
    blocks = 2 * 2  # t-chunks x z-chunks
    assert n_twice == 2 * blocks  # the floor pass's and the pre-pass's
    # The threshold pass's only, in blocks of its own (passes.signal_blocks): a whole time
    # point each here, so that no plane is smoothed for a neighbour's halo.
    assert calls == [32, 32]
    np.testing.assert_array_equal(once.thresholds, twice.thresholds)
    assert once.record["counts"] == twice.record["counts"]
    assert_same_outputs(tmp_path / "once", tmp_path / "twice")
    assert not (tmp_path / "once" / KEPT).exists()
    assert not (tmp_path / "once" / KEPT_DONE).exists()


def test_kept_signal_is_the_signal_of_the_whole_stack(tmp_path, series):
    params = bigseg.Params(**PARAMS)
    four = series.data
    whole = dm.signal_of(four.rechunk((1, -1, -1, -1)), params, scale_of(series))

    class Here:
        path = tmp_path

    kept, values = passes.keep_signal(series, params, Here, passes.Sink())
    assert kept.chunks == four.chunks and kept.dtype == np.float32
    np.testing.assert_array_equal(kept.compute(), whole.compute())
    assert (tmp_path / KEPT_DONE).exists()
    # The floors, counted as the signal was stored, are the stack's.
    np.testing.assert_array_equal(values, bigseg.global_threshold(series, params=params).values)
    again, none = passes.keep_signal(series, params, Here, passes.Sink())  # read, not computed
    assert none is None and again.chunks == kept.chunks
    np.testing.assert_array_equal(
        passes.kept_thresholds(series, params, Here, passes.Sink()), values
    )


@pytest.mark.parametrize(
    ("budget", "threads", "blocks"),
    [
        (2**30, 1, ((1, 1), (32,), (64,), (64,))),  # a whole time point
        (2**30, 8, ((1, 1), (16, 16), (32, 32), (64,))),  # cut in z and y for 8 threads
    ],
)
def test_the_signal_is_kept_from_blocks_of_its_own(
    tmp_path, monkeypatch, series, budget, threads, blocks
):
    """Blocks deeper than the stack's chunks and cut in y give the same kept signal."""
    params = bigseg.Params(**PARAMS)
    monkeypatch.setattr(passes.os, "cpu_count", lambda: threads)
    assert passes.signal_blocks(series, params, passes.Sink(), budget) == blocks
    whole = dm.signal_of(series.data.rechunk((1, -1, -1, -1)), params, scale_of(series))

    class Here:
        path = tmp_path

    kept, values = passes.keep_signal(series, params, Here, passes.Sink(), budget=budget)
    assert kept.chunks == series.data.chunks  # read back in the stack's chunks
    np.testing.assert_array_equal(kept.compute(), whole.compute())
    np.testing.assert_array_equal(values, bigseg.global_threshold(series, params=params).values)


def test_the_signal_is_not_kept_where_no_block_of_it_fits_the_budget(tmp_path, series):
    # A time point of 32 x 64 x 64 is over the budget (its strips alone are 17 MiB), and no
    # cut helps (the reach spans the halves): no blocks, and the run does not keep it
    # (it used to compute it in the stack's chunks, over the budget, all the same).
    params = bigseg.Params(**PARAMS)
    four = series
    assert passes.kept_blocks(four, params, 19_900_000, 1) is None
    assert not passes.keeps_signal(series, params, budget=19_900_000, threads=1)
    assert passes.keeps_signal(series, params, budget=2**30, threads=1)
    with pytest.raises(RuntimeError, match="should not have kept it"):
        passes.signal_blocks(series, params, passes.Sink(), 19_900_000)


def test_the_kept_signal_is_one_raw_file_read_back_from_it_in_any_blocks(tmp_path, series):
    """float32, uncompressed; work blocks and grown blocks read their own regions of it."""
    from bigseg.reads import in_work_chunks, is_read, read_grown

    params = bigseg.Params(**PARAMS)

    class Here:
        path = tmp_path

    kept, _ = passes.keep_signal(series, params, Here, passes.Sink())
    assert (tmp_path / KEPT).stat().st_size == 4 * series.size
    assert is_read(kept) and kept.dtype == np.float32
    whole = kept.compute()
    blocks = ((1, 1), (8, 8, 8, 8), (40, 24), (64,))
    np.testing.assert_array_equal(in_work_chunks(kept, blocks).compute(), whole)
    other = passes.read_kept(tmp_path / KEPT, series, blocks)  # other chunks, other keys
    assert other.name != kept.name and other.chunks == blocks
    np.testing.assert_array_equal(other.compute(), whole)
    depth = (0, 2, 3, 0)
    grown = read_grown(kept, blocks, depth).compute()
    exchanged = dask.array.overlap.overlap(
        dask.array.from_array(whole, chunks=blocks), depth=dict(enumerate(depth)), boundary="none"
    )
    np.testing.assert_array_equal(grown, exchanged.compute())


def test_a_resumed_run_reads_the_kept_signal_or_does_without_it(tmp_path, monkeypatch, series):
    params = bigseg.Params(**PARAMS)
    with dask.config.set(scheduler="synchronous"):
        reference = run(series, tmp_path / "ref", params=params)
        for keep_it in (True, False, "an earlier version's"):
            out = tmp_path / f"out-{keep_it}"
            real_finish = scratch._finish_block
            done = []

            def finish_some(*args, real_finish=real_finish, done=done, **kwargs):
                if len(done) >= 1:  # interrupted in the segment pass, one block done
                    raise KeyboardInterrupt
                done.append(1)
                return real_finish(*args, **kwargs)

            monkeypatch.setattr(scratch, "_finish_block", finish_some)
            with pytest.raises(KeyboardInterrupt):
                run(series, out, resume=True, params=params)
            monkeypatch.setattr(scratch, "_finish_block", real_finish)
            assert (scratch_path(out) / KEPT_DONE).exists()
            if not keep_it:  # e.g. a scratch directory written before the signal was kept
                (scratch_path(out) / KEPT_DONE).unlink()
            if isinstance(keep_it, str):  # kept in Zarr, as versions before kept.f32 kept it
                (scratch_path(out) / KEPT).unlink()
                (scratch_path(out) / KEPT_ZARR).mkdir()
            calls = _count_signals(monkeypatch)
            resumed = run(series, out, resume=True, params=params)
            monkeypatch.undo()
            # Thresholds from the state file; the signal read back, or computed for the
            # blocks left (the pre-pass from the stack, as before).
            assert (len(calls) == 0) is (keep_it is True)
            assert not (out / KEPT_ZARR).exists() and not (out / KEPT).exists()
            assert resumed.record["blocks"]["reused"] == 1
            np.testing.assert_array_equal(resumed.thresholds, reference.thresholds)
            assert_same_outputs(tmp_path / "ref", out)


def test_the_signal_is_not_kept_where_the_disk_has_no_room_for_it(tmp_path, monkeypatch, series):
    """A stack whose signal would fill the scratch disk computes it twice instead."""
    params = bigseg.Params(**PARAMS)
    calls = _count_signals(monkeypatch)
    monkeypatch.setattr(passes, "KEEP_DISK_FRACTION", 0.0)
    seen = []
    real = passes.keep_signal
    monkeypatch.setattr(passes, "keep_signal", lambda *a, **k: seen.append(1) or real(*a, **k))
    with dask.config.set(scheduler="synchronous"):
        result = run(series, tmp_path / "out", params=params)
    assert not seen and len(calls) == 2 * 2 * 2  # never kept: the floor's and the pre-pass's
    assert len(result.nuclei) > 5


@pytest.fixture(scope="module")
def unlimited(tmp_path_factory):
    """A small stack and the outputs of its run without a memory budget (whole planes)."""
    stack = synthetic((16, 256, 256), 20, seed=3, radius_um=(3.0, 5.0))[0]
    out = tmp_path_factory.mktemp("unlimited") / "out"
    with dask.config.set({"array.chunk-size": 1 << 40, "scheduler": "synchronous"}):
        result = run(stack.chunk({"z": -1, "y": -1, "x": -1}), out, params=bigseg.Params())
    assert result.record["work_blocks"]["chunks"][-3:] == [[16], [256], [256]]
    assert len(result.nuclei) > 10
    return stack, out


@pytest.mark.parametrize(
    "chunks",
    [
        {"z": -1, "y": -1, "x": -1},  # whole planes, one chunk
        {"z": 1, "y": -1, "x": -1},  # chunks of one plane
        {"z": 4, "y": -1, "x": -1},  # chunks of 4 planes
        {"z": 4, "y": 128, "x": 128},  # chunks split in y/x
    ],
    ids=["whole", "z1", "z4", "yx"],
)
@pytest.mark.parametrize("budget", [64, 32, 24], ids=["large", "medium", "small"])
def test_a_budget_keeps_the_signal_and_the_outputs_of_an_unlimited_run(
    tmp_path, unlimited, chunks, budget
):
    # Work blocks planned for a run that keeps the signal (its own blocks: y, or y and x
    # parts of the time point), whole planes or split: the same tables and labels as
    # the run without a budget.
    stack, reference = unlimited
    with dask.config.set({"array.chunk-size": budget << 20, "scheduler": "synchronous"}):
        result = run(stack.chunk(chunks), tmp_path / "out", params=bigseg.Params())
    assert result.record["work_blocks"]["kept_signal"] is True
    if len(result.record["work_blocks"]["chunks"][-1]) == 1:  # whole planes: to the bit
        assert_same_outputs(reference, tmp_path / "out")
    else:  # split planes, stitched: the same rows and voxels, in another order and ids
        _assert_same_up_to_ids(reference, tmp_path / "out")


def _assert_same_up_to_ids(a, b):
    """Two output directories hold the same nuclei, detections and labels but for ids."""
    import pandas as pd
    import zarr

    tables = (("nuclei.parquet", ["nucleus"]), ("detections.parquet", ["nucleus", "label"]))
    for name, ids in tables:
        ta, tb = (pd.read_parquet(p / name) for p in (a, b))
        assert list(ta.columns) == list(tb.columns) and len(ta) == len(tb) > 10
        ta, tb = (
            t.drop(columns=ids).sort_values(["t", "z", "y", "x"], ignore_index=True)
            for t in (ta, tb)
        )
        pd.testing.assert_frame_equal(ta, tb, check_exact=False, rtol=1e-9)
    la, lb = (zarr.open_array(p / "labels.zarr" / "0", mode="r")[...] for p in (a, b))
    assert_same_labels(la, lb)
    assert len(np.unique(la)) == len(pd.read_parquet(a / "nuclei.parquet")) + 1


@pytest.mark.parametrize("kept_first", [True, False])
def test_a_resumed_run_keeps_the_signal_as_the_interrupted_run_decided(
    tmp_path, monkeypatch, unlimited, kept_first
):
    # The decision to keep the signal changes the work blocks (here whole planes when kept,
    # planes split when not), so it is part of the fingerprint, and a resumed run makes it
    # as the interrupted one did, whatever the scratch disk's free space says now (the kept
    # signal and the outputs take some of it).
    stack, reference = unlimited
    stack = stack.chunk({"z": 4, "y": -1, "x": -1})
    out = tmp_path / "out"
    fraction = passes.KEEP_DISK_FRACTION
    done = []
    real_finish, real_link = scratch._finish_block, runner.link_pass

    def finish_one(*args, **kwargs):
        if done:  # interrupted in the segment pass, one block done
            raise KeyboardInterrupt
        done.append(1)
        return real_finish(*args, **kwargs)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with dask.config.set({"array.chunk-size": 32 << 20, "scheduler": "synchronous"}):
        monkeypatch.setattr(passes, "KEEP_DISK_FRACTION", fraction if kept_first else 0.0)
        if kept_first:  # whole planes: one block of the segment pass done
            monkeypatch.setattr(scratch, "_finish_block", finish_one)
        else:  # split planes, stitched: after the segment pass
            monkeypatch.setattr(runner, "link_pass", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run(stack, out, resume=True, params=bigseg.Params())
        assert (scratch_path(out) / KEPT_DONE).exists() is kept_first
        # Now the disk says the opposite.
        monkeypatch.setattr(passes, "KEEP_DISK_FRACTION", 0.0 if kept_first else fraction)
        monkeypatch.setattr(scratch, "_finish_block", real_finish)
        monkeypatch.setattr(runner, "link_pass", real_link)
        calls = _count_signals(monkeypatch)
        resumed = run(stack, out, resume=True, params=bigseg.Params())
    planned = resumed.record["work_blocks"]
    assert planned["kept_signal"] is kept_first
    assert (planned["chunks"][-1] == [256]) is kept_first  # planes split when not kept
    assert resumed.record["blocks"]["reused"] >= 1
    # The blocks left read the signal kept before the interruption.
    assert len(calls) == 0
    if kept_first:
        assert_same_outputs(reference, out)
    else:
        _assert_same_up_to_ids(reference, out)


def test_the_noise_is_counted_from_the_signal_s_reads_and_rules_frames_without_nuclei(
    tmp_path, monkeypatch
):
    """The floor's raw noise: the same in any blocks, from the reads the signal makes."""
    import tifffile

    from bigseg.kernels import threshold
    from bigseg.reads import in_work_chunks
    from bigseg.stack import as_4d
    from bigseg.synth import make_truth, render

    scale = (1.5, 0.71, 0.71)
    pair = make_truth((16, 96, 96), 2, scale=scale, seed=1, radius_um=(4.0, 7.0),
                      brightness=(150.0, 400.0), brightness_spread=1.0).iloc[:2]  # fmt: skip
    options = dict(background=40.0, offset=400.0, max_value=65535, read_noise=10.0)
    frames = [
        render(truth, (0, 0, 0, 0), (1, 16, 96, 96), scale=scale, noise_seed=1, **options)
        for truth in (pair.iloc[:0], pair)
    ]  # a frame of noise alone, and one of two dim nuclei
    image = np.concatenate(frames)
    tifffile.imwrite(tmp_path / "s.tif", image, imagej=True, metadata={"axes": "TZYX"})
    stack = bigseg.open_stack(tmp_path / "s.tif", scale=scale)
    params = bigseg.Params()
    whole = bigseg.global_threshold(stack.chunk({"z": -1, "y": -1, "x": -1}), params=params)
    floors = whole.values
    # The empty frame's floor is the noise's multiple (Otsu's split its noise); the
    # other's Otsu's, well above its noise.  The noise: the raw noise, smoothed.
    pairs = np.abs(np.diff(frames[0].astype(np.int64), axis=-1))  # every pair, once
    raw = threshold.noise_of_differences(np.bincount(pairs.ravel()), width=1.0, step=1.0)
    noise = dm.smoothing_gain(params, scale, 16) * raw
    assert floors[0] == pytest.approx(threshold.NOISE_FLOOR * noise, rel=1e-12)
    assert floors[1] > threshold.FLOOR_APART * noise and floors[1] != floors[0]
    data = as_4d(stack).data
    for blocks in [((1, 1), (5, 11), (40, 56), (96,)), ((2,), (16,), (33, 63), (20, 50, 26))]:
        work = in_work_chunks(data, blocks)
        signal = dm.signal_of(work, params, scale)
        floor = dm.floor_of_signal(signal, work, params, scale)
        np.testing.assert_array_equal(floor.compute(), floors)
        # No read of the stack but the signal's own: the differences are counted from them.
        reads = {name for name in floor.dask.layers if "-grown-" in name or "-work-" in name}
        assert reads and reads <= set(signal.dask.layers)

    class Here:
        path = tmp_path

    monkeypatch.setattr(passes.os, "cpu_count", lambda: 8)  # blocks cut in z and y
    _, values = passes.keep_signal(stack, params, Here, passes.Sink(), budget=2**30)
    np.testing.assert_array_equal(values, floors)
    again = passes.kept_thresholds(stack, params, Here, passes.Sink())  # read back: the same
    np.testing.assert_array_equal(again, floors)
