"""Reads of files made again: in groups of storage chunks, grown by a halo, through views."""

from __future__ import annotations

import tracemalloc

import dask
import dask.array as da
import numpy as np
import pytest

from bigseg import reads
from bigseg.chunked.maps import map_with_halo
from bigseg.io import open_stack
from bigseg.reads import is_read, read_by_chunks, read_grown, read_region, read_with_axis
from bigseg.stack import as_4d


def _zarr(path, values, chunks):
    import zarr

    array = zarr.create_array(path, shape=values.shape, chunks=chunks, dtype=values.dtype)
    array[:] = values
    return zarr.open_array(path, mode="r")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    values = np.random.default_rng(0).integers(0, 4000, (2, 9, 40, 37)).astype(np.uint16)
    path = tmp_path_factory.mktemp("reads") / "a.zarr"
    array = _zarr(path, values, (1, 3, 16, 37))
    array.where = str(path)  # for open_stack_like
    return values, array


@pytest.mark.parametrize("per_group", [1, 2, 5, 1000])
@pytest.mark.parametrize(
    "key",
    [
        (slice(None), slice(1, 8), slice(3, 39), slice(0, 37)),
        (slice(1, 2), slice(0, 9), slice(15, 17)),
        (slice(0, 2), slice(4, 4), slice(None), slice(None)),  # empty
        (1, slice(2, 5)),  # an integer: read as it is
    ],
)
def test_a_region_read_in_groups_of_chunks_is_the_region(stored, key, per_group, monkeypatch):
    values, array = stored
    monkeypatch.setattr(reads, "READ_BYTES", per_group * 16 * 37 * 2 * 3)
    out = read_by_chunks(array, key, array.chunks)
    np.testing.assert_array_equal(out, values[key])
    assert out.dtype == values.dtype


def test_a_region_across_many_chunks_holds_one_group_of_them_at_a_time(tmp_path, monkeypatch):
    # 8 storage chunks of 4 MiB: a 2 MiB block across all of them is read holding the
    # block and a group of chunks (here one, with its compressed bytes), not every chunk
    # it touches at once, as zarr's own read of the region does (measured 13-15 chunks).
    values = np.random.default_rng(1).integers(0, 4000, (16, 1024, 1024)).astype(np.uint16)
    array = _zarr(tmp_path / "big.zarr", values, (2, 1024, 1024))
    chunk = 2 * 1024 * 1024 * 2
    monkeypatch.setattr(reads, "READ_BYTES", chunk)
    key = (slice(None), slice(0, 256), slice(0, 256))

    def peak_of(read):
        read()  # the first read's one-off allocations (codec set-up) are not the read's
        tracemalloc.start()
        try:
            out = read()
            return out, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    out, grouped = peak_of(lambda: read_by_chunks(array, key, array.chunks))
    _, at_once = peak_of(lambda: np.asarray(array[key]))
    np.testing.assert_array_equal(out, values[key])
    assert grouped < out.nbytes + 6 * chunk, (grouped / chunk, out.nbytes / chunk)
    assert grouped < at_once / 2, (grouped / chunk, at_once / chunk)


@pytest.mark.parametrize(
    ("chunks", "depth"),
    [
        (((1, 1), (4, 5), (13, 13, 14), (20, 17)), (0, 2, 3, 4)),
        (((2,), (3, 3, 3), (40,), (10, 10, 17)), (0, 3, 0, 10)),
        (((1, 1), (9,), (40,), (37,)), (0, 0, 0, 0)),
    ],
)
def test_grown_blocks_read_from_the_file_are_dask_s_overlap(stored, chunks, depth):
    values, array = stored
    data = open_stack_like(array)
    grown = read_grown(data, chunks, depth)
    expected = da.overlap.overlap(
        da.from_array(values, chunks=chunks), depth=dict(enumerate(depth)), boundary="none"
    )
    assert grown.chunks == expected.chunks
    np.testing.assert_array_equal(grown.compute(scheduler="sync"), expected.compute())


def open_stack_like(array):
    """A remembered read of a Zarr array, as bigseg's Zarr reader makes it."""
    from bigseg.io.zarr import _from_zarr

    return _from_zarr(array, array.where)


def test_a_halo_over_a_read_reads_every_grown_block_on_its_own(stored):
    values, array = stored
    data = open_stack_like(array).rechunk(((1, 1), (4, 5), (20, 20), (37,)))
    read = reads.in_work_chunks(open_stack_like(array), data.chunks)
    assert is_read(read) and not is_read(data)

    def total(block, *, margin):
        core = tuple(slice(b, n - a) for n, (b, a) in zip(block.shape[1:], margin))
        return block[(slice(None), *core)].astype(np.int64) + int(block.sum())

    from_file = map_with_halo(read, (1, 4, 0), total, dtype=np.int64)
    exchanged = map_with_halo(data, (1, 4, 0), total, dtype=np.int64)
    np.testing.assert_array_equal(from_file.compute(), exchanged.compute())
    # every task that reads a grown block reads it alone: it depends on no other task
    graph = dict(from_file.__dask_graph__())
    grown = [k for k in graph if isinstance(k, tuple) and "-grown-" in str(k[0])]
    assert len(grown) == 2 * 2 * 2
    deps = dask.core.get_dependencies(graph, grown[0])
    assert all(not isinstance(d, tuple) for d in deps)  # the source object, no block


def test_views_of_a_read_stay_reads_of_the_file(stored):
    values, array = stored
    data = open_stack_like(array)
    part = read_region(data, (slice(1, 2), slice(2, 7)))
    assert is_read(part)
    np.testing.assert_array_equal(part.compute(), values[1:2, 2:7])
    planar = read_with_axis(part[0, 0], 0)  # not a read (an int index): a plain expand_dims
    assert not is_read(planar)
    with_t = read_with_axis(part, 1)
    assert is_read(with_t) and with_t.shape == (1, 1, 5, 40, 37)
    np.testing.assert_array_equal(with_t.compute(), values[1:2, None, 2:7])
    # a work-block read of a view reads the file in the blocks asked for
    blocks = reads.in_work_chunks(with_t, ((1,), (1,), (2, 3), (20, 20), (37,)))
    np.testing.assert_array_equal(blocks.compute(), values[1:2, None, 2:7])


def test_a_3d_file_given_a_time_axis_is_still_read_from_the_file(tmp_path):
    values = np.random.default_rng(2).integers(0, 4000, (6, 32, 32)).astype(np.uint16)
    _zarr(tmp_path / "s.zarr", values, (2, 32, 32))
    stack = open_stack(tmp_path / "s.zarr", scale=(1.0, 0.5, 0.5))
    assert is_read(stack.data)
    four = as_4d(stack)
    assert is_read(four.data) and four.dims == ("t", "z", "y", "x")
    np.testing.assert_array_equal(four.data.compute(), values[None])


def test_a_view_made_twice_stays_a_read_while_either_lives(tmp_path):
    # as_4d of one stack, twice: two equal views with one dask name. Dropping the one made
    # last left the other a plain array (a run's passes then grew blocks by a halo
    # exchange instead of reading them from the file).
    import gc

    _zarr(tmp_path / "s.zarr", np.zeros((6, 32, 32), np.uint16), (2, 32, 32))
    stack = open_stack(tmp_path / "s.zarr", scale=(1.0, 0.5, 0.5))
    first, second = as_4d(stack).data, as_4d(stack).data
    assert first.name == second.name and is_read(first)
    del second
    gc.collect()
    assert is_read(first)
    grown = map_with_halo(first, (1, 4, 4), lambda b, margin: b, dtype=np.uint16)
    assert not any(name.startswith("overlap") for name in grown.__dask_graph__().layers)


@pytest.mark.parametrize(
    "key",
    [
        (1, 3),
        (slice(None), 2, slice(4, 9), -1),
        (slice(0, 2), slice(1, 8, 3), slice(None), slice(None, None, -5)),
        (0, [4, 1, 7], slice(2, 5), slice(None)),
    ],
)
def test_views_read_the_indices_dask_fuses_into_a_read(stored, key):
    # Optimised graphs fuse a later index (integers, steps, lists) into the read itself.
    values, array = stored
    data = open_stack_like(array)
    view = read_with_axis(read_region(data, (slice(0, 2),)), 0)[0]
    assert is_read(read_with_axis(read_region(data, (slice(0, 2),)), 0))
    np.testing.assert_array_equal(view[key].compute(), values[:2][key])
    np.testing.assert_array_equal(data[key].compute(), values[key])
    grown = read_grown(data, ((1, 1), (9,), (40,), (37,)), (0, 0, 0, 0))
    np.testing.assert_array_equal(grown[key].compute(), values[key])
