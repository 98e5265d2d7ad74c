"""The default method's signal, computed once per run: kept by the threshold pass."""

from __future__ import annotations

import dask
import numpy as np
import pytest

import bigseg
import bigseg.pipeline.passes as passes
import bigseg.pipeline.scratch as scratch
from bigseg import run
from bigseg.methods import default as dm
from bigseg.pipeline.layout import KEPT, KEPT_DONE, scratch_path
from bigseg.stack import scale_of

from .conftest import synthetic
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
        monkeypatch.setattr(passes, "keeps_signal", lambda *a: False)  # as before: twice
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
        (19_900_000, 1, ((1, 1), (16, 16), (64,), (64,))),  # a time point is over the budget
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


def test_every_chunk_of_the_kept_signal_is_written_zeros_included(tmp_path, series):
    """Zarr would compare each chunk with the fill value first (slowly, for float zeros)."""
    import zarr

    flat = series.copy(data=series.data * 0 + 100)  # a flat stack: no signal anywhere

    class Here:
        path = tmp_path

    kept, _ = passes.keep_signal(flat, bigseg.Params(**PARAMS), Here, passes.Sink())
    assert not kept.compute().any()
    stored = zarr.open_array(str(tmp_path / KEPT), mode="r")
    assert stored.nchunks_initialized == stored.nchunks > 1


def test_a_resumed_run_reads_the_kept_signal_or_does_without_it(tmp_path, monkeypatch, series):
    params = bigseg.Params(**PARAMS)
    with dask.config.set(scheduler="synchronous"):
        reference = run(series, tmp_path / "ref", params=params)
        for keep_it in (True, False):
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
            calls = _count_signals(monkeypatch)
            resumed = run(series, out, resume=True, params=params)
            monkeypatch.undo()
            # Thresholds from the state file; the signal read back, or computed for the
            # blocks left (the pre-pass from the stack, as before).
            assert (len(calls) == 0) is keep_it
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
