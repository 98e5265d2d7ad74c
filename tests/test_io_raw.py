"""RawArray: one uncompressed C-order file, read and written by boxes, as numpy would."""

from __future__ import annotations

import concurrent.futures
import pickle

import dask.array as da
import numpy as np
import pytest
from dask.base import tokenize

from bigseg.io.raw import RawArray


@pytest.mark.parametrize("shape", [(2, 5, 7, 9), (13,), (2, 4, 1, 6), (1, 1, 1, 1), (3, 0, 4)])
def test_boxes_read_and_written_are_numpy_s(tmp_path, shape):
    rng = np.random.default_rng(sum(shape))
    want = np.zeros(shape, np.float32)
    raw = RawArray.create(tmp_path / "a.f32", shape, np.float32)
    assert (tmp_path / "a.f32").stat().st_size == want.nbytes
    np.testing.assert_array_equal(raw[(slice(None),) * len(shape)], want)  # zeros at first
    for _ in range(300):
        box = tuple(slice(*sorted(int(v) for v in rng.integers(0, n + 1, 2))) for n in shape)
        values = rng.random([s.stop - s.start for s in box]).astype(np.float32)
        raw[box] = values
        want[box] = values
        look = tuple(slice(*sorted(int(v) for v in rng.integers(0, n + 1, 2))) for n in shape)
        got = raw[look]
        assert got.dtype == np.float32 and got.shape == want[look].shape
        np.testing.assert_array_equal(got, want[look])
    again = RawArray(tmp_path / "a.f32", shape, np.float32)
    np.testing.assert_array_equal(again[(slice(None),) * len(shape)], want)


def test_blocks_written_at_once_from_threads_and_read_by_dask(tmp_path):
    values = np.random.default_rng(1).random((2, 12, 40, 30)).astype(np.float32)
    source = da.from_array(values, chunks=(1, 5, 16, 30))  # half planes: a run per plane
    raw = RawArray.create(tmp_path / "a.f32", values.shape, np.float32)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        da.store(source, raw, lock=False, scheduler="threads", pool=pool)
    again = pickle.loads(pickle.dumps(raw))  # as a task on another worker gets it
    back = da.from_array(again, chunks=(2, 3, 40, 30), asarray=False, lock=False)
    np.testing.assert_array_equal(back.compute(scheduler="threads"), values)
    assert tokenize(raw) == tokenize(again)


def test_steps_and_short_files_are_refused(tmp_path):
    raw = RawArray.create(tmp_path / "a.f32", (4, 4), np.float32)
    with pytest.raises(IndexError, match="slices of step 1"):
        raw[::2]
    with pytest.raises(IndexError, match="slices of step 1"):
        raw[1, 2]
    bigger = RawArray(tmp_path / "a.f32", (8, 4), np.float32)
    with pytest.raises(OSError, match="shorter"):
        bigger[6:8]
