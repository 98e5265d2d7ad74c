"""Work blocks from a memory budget: the memory model against measured peaks, the planner."""

from __future__ import annotations

import json
import re
import tracemalloc
from functools import partial

import dask
import dask.array
import numpy as np
import pytest
from dask.callbacks import Callback

import bigseg
from bigseg import InputError, Params, as_stack, run
from bigseg.chunked.plan import (
    MERGE_VOXELS,
    PassMemory,
    stored_pass_chunks,
    task_peak,
    work_chunks,
)
from bigseg.chunked.stitch import _block_record
from bigseg.cli import cluster_shape
from bigseg.methods import default, seed
from bigseg.pipeline.layout import KEPT
from bigseg.segment import halo_px, memory_model, work_blocks
from bigseg.synth import make_truth, render

from .conftest import assert_same_labels
from .test_stitch import PARAMS as STITCH_PARAMS

SCALE = (1.5, 0.71, 0.71)
MiB = 1 << 20


def _block(shape):
    truth = make_truth(
        shape, max(2, shape[1] * shape[2] // 4000), scale=SCALE, seed=1, radius_um=(3.0, 6.0)
    )
    return render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, background=100,
                  max_value=4095, noise_seed=1)  # fmt: skip


def _peak(func, *args, **kwargs) -> int:
    tracemalloc.start()
    try:
        func(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _model(passes, name, block) -> int:
    (p,) = [p for p in passes if p.name == name]
    # The input is held before the kernel is called: the model without it.
    bare = PassMemory(p.name, (0, 0, 0), p.per_voxel, p.per_plane, p.fixed)
    return task_peak(block, [bare], itemsize=0, shape=block, neighbours=(False,) * 3)


# Blocks large enough that fixed costs do not dominate (a few MiB and up).
SHAPES = [(8, 512, 512), (2, 1024, 1024), (4, 768, 768)]


@pytest.mark.parametrize("shape", SHAPES)
def test_default_kernels_peak_within_their_model(shape):
    params = Params.from_preset("default")
    passes = memory_model(params, SCALE)
    lp = default.local_pixels(params, SCALE)
    block = _block(shape)
    thr = np.full((1, 1, 1, 1), 300.0)
    none = ((0, 0),) * 3
    full = (1, *shape)
    # Import (and load the compiled loops) first: the model is of the data, not of the code.
    default._foreground_block(block[:, :2, :64, :64], thr, lp=lp, fraction=0.5, margin=none)
    measured = {
        "floor": _peak(default._signal_block, block, lp=lp, margin=none),
        "foreground": _peak(
            default._foreground_block,
            block,
            thr,
            lp=lp,
            fraction=params.local_fraction,
            margin=none,
            signal_out=True,
        ),  # fmt: skip
    }
    fg = default._foreground_block(
        block, thr, lp=lp, fraction=params.local_fraction, margin=none, signal_out=True
    )
    px = default.METHOD.pixels(params.in_pixels(SCALE))
    measured["kernel"] = _peak(default.METHOD.kernel, fg, thr, px)
    for name, peak in measured.items():
        model = _model(passes, name, full)
        assert peak <= model, (name, peak, model)
        assert model <= 2 * peak, (name, peak, model)  # and not absurdly loose
    # A run that keeps the signal: the pre-pass reads it (float32) grown by the local box.
    signal = default._signal_block(block, lp=lp, margin=none)
    fraction = params.local_fraction
    peak = _peak(default._foreground_block, signal, thr, lp=lp, fraction=fraction,
                 margin=none, signal_out=True, stored=True)  # fmt: skip
    kept = memory_model(params, SCALE, kept=True)
    assert [p.name for p in kept] == ["foreground", "kernel", "relabel"]  # no floor pass
    model = _model(kept, "foreground", full)
    assert peak <= model <= 2 * peak, (peak, model)


@pytest.mark.parametrize("shape", SHAPES)
def test_seed_kernel_peak_within_its_model(shape):
    params = Params.from_preset("seed")
    block = _block(shape)
    thr = np.full((1, 1, 1, 1), 300.0)
    px = seed.METHOD.pixels(params.in_pixels(SCALE))
    peak = _peak(seed.METHOD.kernel, block, thr, px)
    model = _model(memory_model(params, SCALE), "kernel", (1, *shape))
    assert peak <= model <= 2 * peak, (peak, model)


def test_a_stitched_block_peaks_within_the_kernel_model():
    # The block record (kernel on the grown block, core copy, face rows, sums, cluster
    # count) adds little to the kernel itself.
    params = Params.from_preset("seed")
    px = seed.METHOD.pixels(params.in_pixels(SCALE))
    h = halo_px(params.in_pixels(SCALE), "seed")
    c = 512
    block = _block((4, c + 2 * h, c + 2 * h))
    peak = _peak(
        _block_record, block, np.full((1, 1, 1, 1), 300.0), margin=((0, 0), (h, h), (h, h)),
        index=(0, 0, 1, 1), numblocks=(1, 1, 3, 3), px=px, block_fn=seed.METHOD.kernel,
        band=2 * px.smooth_radius + px.min_distance, foreground=seed.METHOD.foreground,
        components=None, chunks_all=((1,), (4,), (h, c, h), (h, c, h)),
    )  # fmt: skip
    model = _model(memory_model(params, SCALE), "stitched", block.shape)
    assert peak <= model <= 2 * peak, (peak, model)


@pytest.mark.parametrize("preset", ["default", "seed"])
@pytest.mark.parametrize("plane", [2048, 8192])
@pytest.mark.parametrize("budget", [256 * MiB, 512 * MiB])
def test_whole_plane_storage_chunks_are_planned_into_the_budget(preset, plane, budget):
    params = Params.from_preset(preset)
    shape = (1, 16, plane, plane)
    storage = ((1,), (4,) * 4, (plane,), (plane,))
    passes = memory_model(params, SCALE)
    halo = halo_px(params.in_pixels(SCALE), preset)
    chunks = work_chunks(shape, storage, passes, budget, itemsize=2, min_side=halo)
    assert sum(chunks[2]) == plane and sum(chunks[3]) == plane and sum(chunks[1]) == 16
    assert min(chunks[2]) >= halo and min(chunks[3]) >= halo
    block = [max(c) for c in chunks]
    neighbours = [len(c) > 1 for c in chunks[1:]]
    assert task_peak(block, passes, itemsize=2, shape=shape, neighbours=neighbours) <= budget
    storage_bytes = 4 * plane * plane * 2
    if chunks != storage and storage_bytes <= budget // 2:
        # a block read from part of a chunk holds the decoded chunk and the grown block
        reach = [max(p.reach[i] for p in passes) for i in range(3)]
        grown = [min(max(b, r) + 2 * r, s) if has else b
                 for b, r, s, has in zip(block[1:], reach, shape[1:], neighbours)]  # fmt: skip
        assert 2 * np.prod(grown) + storage_bytes <= budget
    whole = task_peak((1, 4, plane, plane), passes, itemsize=2, shape=shape,
                      neighbours=(True, False, False))  # fmt: skip
    assert (chunks == storage) == (whole <= budget)
    if plane == 8192:  # whole planes of 8192² never fit: split into y/x blocks
        assert len(chunks[2]) > 1 and len(chunks[3]) > 1
    # No block straddles a storage chunk along z: each lies in one, or is whole ones merged.
    assert _no_straddling(storage[1], chunks[1])
    # Blocks are split along z only into blocks at least as thick as the passes' z reach
    # (thinner ones would be merged for the halo).
    z_reach = max(p.reach[0] for p in passes)
    assert len(chunks[1]) == 1 or min(chunks[1]) >= min(z_reach, 16), (chunks[1], z_reach)


def _no_straddling(storage, work) -> bool:
    edges = set(np.cumsum(storage).tolist()) | {0}
    starts = np.cumsum((0, *storage))
    for a, b in zip(np.cumsum((0, *work))[:-1], np.cumsum(work)):
        inside = np.searchsorted(starts, a, "right") == np.searchsorted(starts, b - 1, "right")
        if not inside and not (a in edges and b in edges):
            return False
    return True


def test_chunks_that_fit_are_kept_and_tiny_ones_merged():
    passes = memory_model(Params(), SCALE)
    shape = (3, 40, 256, 256)
    storage = ((1, 1, 1), (1,) * 40, (256,), (256,))
    assert work_chunks(shape, storage, passes, 512 * MiB, itemsize=2) == storage
    merged = work_chunks(shape, storage, passes, 512 * MiB, itemsize=2, merge=True)
    assert max(merged[1]) > 1 and sum(merged[1]) == 40 and merged[2:] == storage[2:]
    # Small y/x chunks are merged first: their halo is most of what a block computes.
    small = ((1, 1, 1), (40,), (32,) * 8, (32,) * 8)
    merged = work_chunks(shape, small, passes, 512 * MiB, itemsize=2, merge=True)
    assert max(merged[2]) == max(merged[3]) > 32 and merged[:2] == small[:2]


def test_tiles_are_merged_into_planes_where_fixed_buffers_are_half_a_small_budget():
    # A tiled TIFF run with --memory-limit 300MB: 36 MB a task, of which the strip buffers
    # every foreground task holds are 18 MB, and whole 512² planes needed 21.5 MB. Half
    # the budget kept the 128² tiles, each computed with its 71 px halo and stitched (the
    # run took 7.4 s against 2.8 s in whole planes, the same nuclei).
    passes = memory_model(Params(), (1.0, 0.5, 0.5), kept=True)
    shape = (4, 1, 512, 512)
    tiles = ((1,) * 4, (1,), (128,) * 4, (128,) * 4)
    fixed = max(p.fixed for p in passes)
    plane = task_peak([1, 1, 512, 512], passes, itemsize=2, shape=shape,
                      neighbours=(False, False, False))  # fmt: skip
    budget = 2 * plane - fixed + 1
    assert budget // 2 < plane < budget  # half the budget would not hold a plane
    merged = work_chunks(shape, tiles, passes, budget, itemsize=2, min_side=71, merge=True)
    assert merged[1:] == ((1,), (512,), (512,))
    # Without the merge, the tiles that fit are kept.
    assert work_chunks(shape, tiles, passes, budget, itemsize=2, min_side=71) == tiles


def test_merged_blocks_stay_small_whatever_the_budget():
    # A large budget (a worker of many GiB) must not merge a stack into a few huge tasks.
    passes = memory_model(Params(), SCALE)
    shape = (64, 64, 256, 256)
    storage = ((1,) * 64, (8,) * 8, (256,), (256,))
    merged = work_chunks(shape, storage, passes, 16 << 30, itemsize=2, merge=True)
    voxels = np.prod([max(c) for c in merged])
    assert MERGE_VOXELS // 2 < voxels <= MERGE_VOXELS
    assert len(merged[0]) * len(merged[1]) >= 64  # still many tasks
    # Chunks already that large are kept as they are.
    big = ((1,) * 64, (64,), (256,), (256,))
    assert work_chunks(shape, big, passes, 16 << 30, itemsize=2, merge=True) == big


def test_a_file_s_tiny_chunks_are_merged_and_chunks_asked_for_are_kept(tmp_path):
    import zarr

    data = _zarr_of_whole_planes(tmp_path / "planes.zarr", (24, 128, 128))
    tiny = zarr.open_array(tmp_path / "tiny.zarr", mode="w", shape=data.shape,
                           chunks=(1, 64, 64), dtype=data.dtype)  # fmt: skip
    tiny[:] = data
    merged = run(bigseg.open_stack(tmp_path / "tiny.zarr", scale=SCALE), tmp_path / "a")
    asked = bigseg.open_stack(tmp_path / "tiny.zarr", scale=SCALE, chunks=(1, 64, 64))
    kept = run(asked, tmp_path / "b")
    # (z, y, x): the record keeps the stack's dims
    assert merged.record["work_blocks"]["storage_chunks"][0] == [1] * 24
    assert len(merged.record["work_blocks"]["chunks"][0]) < 24  # fewer, larger blocks
    assert kept.record["work_blocks"]["chunks"][0] == [1] * 24
    assert len(merged.nuclei) > 20
    for name in ("nuclei", "detections"):
        a, b = (getattr(r, name).drop(columns=["label", "nucleus"], errors="ignore")
                for r in (merged, kept))  # fmt: skip
        a, b = (t.sort_values(["t", "z", "y", "x"], ignore_index=True) for t in (a, b))
        np.testing.assert_allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9)


def test_a_budget_below_the_smallest_block_is_refused():
    passes = memory_model(Params(), SCALE)
    storage = ((1,), (4,), (2048,), (2048,))
    with pytest.raises(InputError, match="memory budget of .* raise the workers' memory limit"):
        work_chunks((1, 4, 2048, 2048), storage, passes, 1 * MiB, itemsize=2, min_side=50)
    # The size named is what the smallest block tried needs, its reading included: above
    # the budget (it was counted without the reading, and said 17.36 MiB to a 20 MiB budget).
    from dask.utils import parse_bytes

    for budget in range(1 * MiB, 40 * MiB, 1 * MiB):
        try:
            work_chunks((1, 4, 2048, 2048), storage, passes, budget, itemsize=2, min_side=50)
        except InputError as exc:
            named = re.search(r"below the (.+?) the smallest", str(exc)).group(1)
            assert parse_bytes(named.replace(" ", "")) > budget, (budget, str(exc))


def test_planes_stay_whole_without_stitching():
    params = Params()
    stack = as_stack(np.zeros((8, 1000, 1000), np.uint16), scale=SCALE).chunk({"z": 8})
    planned = work_blocks(stack, params, budget=24 * MiB, stitch=False)
    assert planned.data.chunks == ((1,) * 8, (1000,), (1000,))  # the smallest whole planes
    assert work_blocks(stack, params, budget=24 * MiB).data.numblocks[1:] != (1, 1)


@pytest.mark.parametrize("preset", ["default", "seed"])
def test_planned_y_x_blocks_give_the_nuclei_of_whole_planes(preset, tmp_path):
    # Whole-plane storage chunks, a budget too small for them: planned into y/x blocks,
    # stitched, the same nuclei as whole planes.
    params = Params.from_preset(preset) if preset == "default" else STITCH_PARAMS
    shape = (6, 400, 400)
    truth = make_truth(shape, 12, scale=SCALE, seed=5, radius_um=(3.0, 5.0))
    data = render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, background=100,
                  max_value=4095, noise_seed=5)[0]  # fmt: skip
    stack = as_stack(data, scale=SCALE).chunk({"z": 3})
    whole = bigseg.segment(stack, params=params, budget=1 << 40)
    budget = 24 * MiB if preset == "default" else 10 * MiB
    planned = bigseg.segment(stack, params=params, budget=budget)
    assert whole.data.numblocks[1:] == (1, 1) and planned.data.numblocks[1:] != (1, 1)
    for a, b in zip(planned.values, whole.values):
        assert_same_labels(a, b)


@pytest.mark.parametrize(
    ("cores", "workers", "threads", "expected"),
    [
        (2, 2, None, (2, 1)),  # was 2 x 2 threads on 2 cores
        (8, 2, None, (2, 4)),
        (2, 4, None, (4, 1)),
        (2, None, None, (1, 2)),
        (1, None, None, (1, 1)),
        (16, None, None, (8, 2)),
        (4, None, 1, (4, 1)),
        (4, 2, 3, (2, 3)),
    ],
)
def test_threads_per_worker_default_to_cores_per_worker(cores, workers, threads, expected):
    assert cluster_shape(cores, workers, threads) == expected


class _TaskPeaks(Callback):
    """Peak of the memory each task allocates (tracemalloc), by task key."""

    def __init__(self):
        super().__init__()
        self.peaks: dict = {}

    def _pretask(self, key, dsk, state):
        tracemalloc.reset_peak()
        self._start = tracemalloc.get_traced_memory()[0]

    def _posttask(self, key, result, dsk, state, id):
        self.peaks[key] = tracemalloc.get_traced_memory()[1] - self._start


@pytest.mark.parametrize("preset", ["default", "seed"])
def test_every_task_of_a_whole_plane_run_stays_inside_the_budget(preset, tmp_path):
    # Whole-plane storage chunks of 4 planes; a budget (dask's array.chunk-size, no
    # client) too small for a task on them: every task of every pass (threshold,
    # pre-pass, kernel, measuring, stitching, relabelling, writing) stays inside it.
    params = Params.from_preset(preset) if preset == "default" else STITCH_PARAMS
    shape = (8, 640, 640)
    truth = make_truth(shape, 30, scale=SCALE, seed=3, radius_um=(3.0, 5.0))
    data = render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, background=100,
                  max_value=4095, noise_seed=3)[0]  # fmt: skip
    stack = as_stack(data, scale=SCALE).chunk({"z": 4})
    passes = memory_model(params, SCALE)
    whole = task_peak((1, 4, *shape[1:]), passes, itemsize=2, shape=(1, *shape),
                      neighbours=(True, False, False))  # fmt: skip
    budget = int(whole * 0.6)
    result, peaks = _traced_run(stack, tmp_path / "out", params, budget)
    planned = result.record["work_blocks"]
    assert planned["budget_bytes"] == budget and whole > budget
    assert len(planned["chunks"][-2]) > 1 and len(planned["chunks"][-1]) > 1  # planes split
    assert len(result.nuclei) > 10
    worst = max(peaks.peaks, key=peaks.peaks.get)
    assert len(peaks.peaks) > 100
    assert peaks.peaks[worst] <= budget, (worst, peaks.peaks[worst], budget)


@pytest.mark.slow
def test_cli_on_whole_plane_chunks_through_small_workers_finds_the_nuclei_of_small_chunks(
    tmp_path,
):
    # Whole-plane storage chunks of 2 planes that two tasks of the default preset could not
    # hold inside a 512 MiB worker with 2 threads: the run plans y/x work blocks from the
    # worker's limit per thread, finishes, and finds what a run on small storage chunks
    # finds.
    import pandas as pd

    from bigseg.cli import main
    from bigseg.io.ngff import write_ngff_image

    shape = (2, 2048, 2048)
    truth = make_truth(shape, 40, scale=SCALE, seed=4, radius_um=(3.0, 5.0))
    data = render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, background=100,
                  max_value=4095, noise_seed=4)[0]  # fmt: skip
    scale = dict(zip("zyx", SCALE))
    paths = {}
    for name, chunks in (("whole", (2, 2048, 2048)), ("small", (1, 512, 512))):
        paths[name] = tmp_path / f"{name}.ome.zarr"
        write_ngff_image(dask.array.from_array(data, chunks=chunks), paths[name],
                         dims=("z", "y", "x"), scale=scale)  # fmt: skip
    passes = memory_model(Params(), SCALE)
    plane_task = task_peak((1, 1, *shape[1:]), passes, itemsize=2, shape=(1, *shape),
                           neighbours=(True, False, False))  # fmt: skip
    assert plane_task > 128 * MiB  # half of 512 MiB / 2 threads: not even one whole plane
    tables = {}
    for name, path in paths.items():
        out = tmp_path / f"out-{name}"
        args = ["segment", str(path), "-o", str(out), "--workers", "1", "--no-progress",
                "--threads-per-worker", "2", "--memory-limit", "512MiB"]  # fmt: skip
        assert main(args) == 0
        record = json.loads((out / "run.json").read_text())
        tables[name] = pd.read_parquet(out / "nuclei.parquet").sort_values(["z", "y", "x"])
        if name == "whole":
            assert record["work_blocks"]["storage_chunks"][-2:] == [[2048], [2048]]
            assert len(record["work_blocks"]["chunks"][-1]) > 1  # planes split into blocks
    assert len(tables["whole"]) > 20
    pd.testing.assert_frame_equal(
        tables["whole"].drop(columns="nucleus").reset_index(drop=True),
        tables["small"].drop(columns="nucleus").reset_index(drop=True),
    )


def _traced_run(stack, out, params, budget):
    """``run`` on the synchronous scheduler with ``budget`` bytes per task, traced task by task.

    Returns the run's result and its :class:`_TaskPeaks`.
    """
    peaks = _TaskPeaks()
    with dask.config.set({"array.chunk-size": budget, "scheduler": "synchronous"}), peaks:
        tracemalloc.start()
        try:
            result = run(stack, out, params=params)
        finally:
            tracemalloc.stop()
    return result, peaks


def test_tiff_pages_are_split_into_work_blocks(tmp_path):
    # A TIFF page is always a whole plane: the work blocks come from the budget all the same.
    import tifffile

    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, np.zeros((8, 1024, 1024), np.uint16))
    stack = bigseg.open_stack(path, scale=SCALE)
    assert stack.data.chunks[1:] == ((1024,), (1024,))
    params = Params()
    planned = work_blocks(stack, params, budget=24 * MiB)
    assert planned.data.numblocks[1] > 1 and planned.data.numblocks[2] > 1
    assert min(planned.data.chunks[1]) >= halo_px(params.in_pixels(SCALE), "default")
    passes = memory_model(params, SCALE)
    block = [1, *(max(c) for c in planned.data.chunks)]
    assert task_peak(block, passes, itemsize=2, shape=(1, *stack.shape)) <= 24 * MiB


def test_stacks_deeper_than_the_z_reach_get_blocks_as_thick_as_it():
    # 256 planes in storage chunks of 4, a z reach of ~20 planes: blocks thinner than the
    # reach would be merged for the halo anyway (and modelled too small); whole chunks
    # are merged up to the reach instead, and the model counts what the task holds.
    params = Params.from_preset("default")
    shape = (1, 256, 2048, 2048)
    storage = ((1,), (4,) * 64, (2048,), (2048,))
    passes = memory_model(params, SCALE)
    z_reach = max(p.reach[0] for p in passes)
    chunks = work_chunks(shape, storage, passes, 256 * MiB, itemsize=2, min_side=50)
    assert len(chunks[1]) > 1 and max(chunks[1]) >= z_reach > 4
    assert sum(chunks[1]) == 256 and _no_straddling(storage[1], chunks[1])
    block = [max(c) for c in chunks]
    assert task_peak(block, passes, itemsize=2, shape=shape) <= 256 * MiB
    thin = task_peak((1, 4, *block[2:]), passes, itemsize=2, shape=shape)
    assert thin == task_peak((1, z_reach, *block[2:]), passes, itemsize=2, shape=shape)


def _zarr_of_whole_planes(path, shape, seed=3):
    import zarr

    truth = make_truth(shape, 80, scale=SCALE, seed=seed, radius_um=(3.0, 5.0))
    data = render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, background=100,
                  max_value=4095, noise_seed=seed)[0]  # fmt: skip
    array = zarr.open_array(path, mode="w", shape=shape, chunks=(4, *shape[1:]), dtype=data.dtype)
    array[:] = data
    return data


class _Outputs(Callback):
    """The largest array any task returns, and the most the finished tasks hold at once."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.held = 0

    def _posttask(self, key, result, dsk, state, id):
        if isinstance(key, tuple):  # not the final concatenation of a compute()
            self.largest = max(self.largest, getattr(result, "nbytes", 0))
        bases = {}
        for value in state["cache"].values():
            for a in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(a, np.ndarray):
                    while isinstance(a.base, np.ndarray):  # a view holds its whole base
                        a = a.base
                    bases[builtins_id(a)] = a.nbytes
        self.held = max(self.held, sum(bases.values()))


builtins_id = id


@pytest.mark.parametrize("kind", ["zarr", "tiff"])
def test_work_blocks_of_a_file_are_read_as_blocks_not_split_after_reading(kind, tmp_path):
    # Rechunking a read of whole planes keeps each plane in memory until its last piece
    # is used; the work blocks are read from the file instead: no task returns more
    # than a block, and the voxels are the file's.
    shape = (8, 512, 512)
    if kind == "zarr":
        path = tmp_path / "planes.zarr"
        data = _zarr_of_whole_planes(path, shape)
    else:
        import tifffile

        path = tmp_path / "planes.tif"
        data = np.random.default_rng(0).integers(0, 4096, shape, dtype=np.uint16)
        tifffile.imwrite(path, data)
    stack = bigseg.open_stack(path, scale=SCALE)
    assert stack.data.chunks[1:] == ((512,), (512,))
    planned = work_blocks(stack, Params(), budget=48 * MiB)
    assert planned.data.numblocks[1] > 1 and planned.data.numblocks[2] > 1
    block = np.prod([max(c) for c in planned.data.chunks]) * 2
    outputs = _Outputs()
    with outputs:
        values = planned.data.compute(scheduler="synchronous")
    np.testing.assert_array_equal(values, data)
    assert outputs.largest <= block, (outputs.largest, block)


def test_a_run_on_whole_plane_chunks_holds_a_few_blocks_at_a_time(tmp_path, monkeypatch):
    # 48 planes in Zarr chunks of 4 whole 384² planes, a budget that splits them into y/x
    # blocks and a z reach of many chunks: the results the finished tasks hold at once
    # stay within one and a half budgets (split after reading, they held twice that:
    # every whole plane a grown block's pieces came from).  The signal computed in every
    # block (a run that keeps it plans whole planes here).
    monkeypatch.setattr("bigseg.pipeline.runner.keeps_signal", lambda *a, **k: False)
    shape = (48, 384, 384)
    _zarr_of_whole_planes(tmp_path / "planes.zarr", shape)
    stack = bigseg.open_stack(tmp_path / "planes.zarr", scale=SCALE)
    budget = 48 * MiB
    outputs = _Outputs()
    with dask.config.set({"array.chunk-size": budget, "scheduler": "synchronous"}), outputs:
        result = run(stack, tmp_path / "out", params=Params.from_preset("default"))
    planned = result.record["work_blocks"]["chunks"]
    assert len(planned[0]) > 1 and len(planned[1]) > 1 and len(planned[2]) > 1
    assert len(result.nuclei) > 40
    assert outputs.held <= 1.5 * budget, (outputs.held / MiB, budget / MiB)


@pytest.mark.parametrize(("kept", "budget"), [(False, 48 * MiB), (True, 26 * MiB)])
def test_split_planes_read_their_halo_from_the_stored_pre_pass(tmp_path, monkeypatch, kept, budget):
    # Whole-plane chunks split into y/x blocks: the default method's pre-pass (the signal
    # above the background) is stored in the scratch directory first, and every block
    # reads it back from there grown by the halo, each in a task of its own (a halo
    # exchange in memory held a wavefront of blocks across the plane). The same nuclei
    # as whole planes; nothing of it is left in the output.  The pre-pass computes the
    # signal itself, or (``kept``, a smaller budget: planes split all the same) reads the
    # signal the threshold pass kept.
    from bigseg.pipeline import scratch
    from bigseg.reads import is_read

    if not kept:  # a run that keeps the signal plans whole planes for this budget
        monkeypatch.setattr("bigseg.pipeline.runner.keeps_signal", lambda *a, **k: False)
    shape = (16, 384, 384)
    _zarr_of_whole_planes(tmp_path / "planes.zarr", shape)
    stack = bigseg.open_stack(tmp_path / "planes.zarr", scale=SCALE)
    stored = []

    def spy(source, **kwargs):
        stored.append(scratch.stored_signal(source, **kwargs))
        return stored[-1]

    monkeypatch.setattr("bigseg.pipeline.passes._scratch", _With(scratch, stored_signal=spy))
    params = Params.from_preset("default")
    with dask.config.set({"array.chunk-size": budget, "scheduler": "synchronous"}):
        split = run(stack, tmp_path / "split", params=params)
    with dask.config.set({"scheduler": "synchronous"}):
        whole = run(stack, tmp_path / "whole", params=params, stitch=False)
    assert len(split.record["work_blocks"]["chunks"][2]) > 1  # planes split in y/x
    assert split.record["work_blocks"]["kept_signal"] is kept
    assert len(stored) == 1 and is_read(stored[0])
    work = split.record["work_blocks"]["chunks"]  # stored in the work blocks, one per chunk
    assert [list(c) for c in stored[0].chunks[1:]] == [list(c) for c in work[-3:]]
    columns = ["t", "z", "y", "x", "volume_um3", "intensity_sum", "n_planes"]
    pd_split = split.nuclei[columns].sort_values(["z", "y", "x"]).reset_index(drop=True)
    pd_whole = whole.nuclei[columns].sort_values(["z", "y", "x"]).reset_index(drop=True)
    assert len(pd_split) > 40
    np.testing.assert_allclose(pd_split.to_numpy(float), pd_whole.to_numpy(float))
    assert not (tmp_path / "split" / "signal.zarr").exists()
    assert not (tmp_path / "split" / "signal.done").exists()
    assert not (tmp_path / "split" / KEPT).exists()


class _With:
    """A module with some of its attributes replaced."""

    def __init__(self, module, **replaced):
        self._module, self._replaced = module, replaced

    def __getattr__(self, name):
        return self._replaced.get(name, getattr(self._module, name))


def test_some_time_points_of_a_file_are_read_in_work_blocks_too(tmp_path):
    # run(t=...) keeps a part of the series: still a read of the file, so its work
    # blocks are read from it rather than split after reading.
    import zarr

    from bigseg.pipeline.preflight import select_t
    from bigseg.reads import in_work_chunks, is_read

    data = np.random.default_rng(0).integers(0, 4096, (10, 4, 64, 64), dtype=np.uint16)
    path = tmp_path / "series.zarr"
    array = zarr.open_array(path, mode="w", shape=data.shape, chunks=(4, 4, 64, 64),
                            dtype=data.dtype, dimension_names=("t", "z", "y", "x"))  # fmt: skip
    array[:] = data
    stack = bigseg.open_stack(path, scale=SCALE)
    part = select_t(stack, slice(3, 9))
    assert is_read(part.data) and list(part["t"].values) == list(range(3, 9))
    blocks = in_work_chunks(part.data, ((1,) * 6, (4,), (32, 32), (32, 32)))
    assert not [name for name in blocks.dask.layers if "rechunk" in name]  # read, not split
    np.testing.assert_array_equal(blocks.compute(), data[3:9])
    assert not is_read(select_t(stack, slice(0, 10, 2)).data)  # a step: sliced as before


def test_the_budget_leaves_out_the_workers_libraries():
    # A worker of 1 GiB: its limit up to the ceiling (0.8), less what it holds once the
    # passes' libraries are loaded (measured on it: well over 100 MiB), times the share.
    from distributed import Client, LocalCluster

    from bigseg.chunked.plan import WORKER_CEILING, WORKER_SHARE, memory_budget

    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            memory_limit="1GiB",
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,  # fmt: skip
        Client(cluster) as client,
    ):
        budget = memory_budget(client)
        loaded = client.run(lambda: __import__("psutil").Process().memory_info().rss)
    (rss,) = loaded.values()
    pause = WORKER_CEILING
    assert rss > 100 * MiB
    assert budget == pytest.approx((1024 * MiB * pause - rss) / 2 * WORKER_SHARE, rel=0.05)
    assert budget < 1024 * MiB / 2 * 0.5  # below the share of the bare limit it was


def test_a_worker_in_the_client_s_process_keeps_half_its_usable_memory_for_tasks():
    # processes=False: the worker's RSS is the whole client process's (here pytest's, with
    # a large array held), which must not leave the tasks nothing.
    from distributed import Client

    from bigseg.chunked.plan import WORKER_CEILING, WORKER_SHARE, memory_budget

    ballast = np.ones(300 * MiB, np.uint8)  # the client holds a lot already
    with Client(processes=False, n_workers=1, threads_per_worker=2, memory_limit="256MiB") as c:
        budget = memory_budget(c)
    assert ballast.sum() > 0
    assert budget == pytest.approx(256 * MiB * WORKER_CEILING / 2 / 2 * WORKER_SHARE, rel=0.01)


def test_the_kept_signal_s_own_blocks_stay_inside_the_budget(tmp_path, monkeypatch):
    # Whole planes in storage chunks of 4 planes, stored as a run stores them; the kept
    # signal is computed in blocks of its own (a whole time point cut in y parts, here for
    # 4 threads): every task of the run stays inside the budget, those blocks included.
    import bigseg.pipeline.passes as passes

    shape = (16, 384, 384)
    truth = make_truth(shape, 20, scale=SCALE, seed=4, radius_um=(3.0, 5.0))
    data = render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, background=100,
                  max_value=4095, noise_seed=4)[0]  # fmt: skip
    stack = as_stack(data, scale=SCALE).chunk({"z": 4, "y": -1, "x": -1})
    params = Params()
    (floor,) = [p for p in memory_model(params, SCALE) if p.name == "floor"]
    budget = 2 * task_peak((1, *shape), [floor], itemsize=2, shape=(1, *shape),
                           neighbours=(False, False, False))  # fmt: skip
    monkeypatch.setattr(passes.os, "cpu_count", lambda: 4)
    planned = []
    real = passes.signal_blocks
    monkeypatch.setattr(passes, "signal_blocks", lambda *a: planned.append(real(*a)) or planned[-1])
    result, peaks = _traced_run(stack, tmp_path / "out", params, budget)
    assert result.record["work_blocks"]["chunks"][-3] == [4, 4, 4, 4]  # whole planes kept
    (blocks,) = planned
    assert blocks[1] == (16,) and len(blocks[2]) > 1  # a time point, cut in y
    assert len(result.nuclei) > 5
    signal = [k for k in peaks.peaks if "_signal_block" in str(k)]
    assert len(signal) == len(blocks[2])
    worst = max(peaks.peaks, key=peaks.peaks.get)
    assert peaks.peaks[worst] <= budget, (worst, peaks.peaks[worst], budget)


def test_a_stored_pass_is_planned_in_deep_blocks_cut_in_y_inside_the_budget():
    # The default method's signal on 48 planes of 1024 x 1024 in chunks of 4 planes: the
    # storage chunks merged up to its z reach (20) would compute 88 planes for 48.
    floor = PassMemory("floor", reach=(20, 45, 45), per_voxel=12.0, fixed=17 * MiB)
    shape, chunks = (1, 48, 1024, 1024), ((1,), (4,) * 12, (1024,), (1024,))
    plan = partial(stored_pass_chunks, shape, chunks, floor, itemsize=2)
    assert plan(2**32, threads=1) == ((1,), (48,), (1024,), (1024,))
    assert plan(2**32, threads=2) == ((1,), (48,), (512, 512), (1024,))
    for budget in (2**32, 600 * MiB, 300 * MiB, 200 * MiB, 100 * MiB, 48 * MiB):
        for threads in (1, 2, 4, 16):
            blocks = plan(budget, threads=threads)
            bz, by, bx = blocks[1][0], blocks[2][0], blocks[3][0]
            assert bz % 4 == 0 and sum(blocks[1]) == 48
            assert sum(blocks[2]) == 1024 and sum(blocks[3]) == 1024
            assert min(blocks[1]) >= 20 or len(blocks[1]) == 1  # never merged for the halo
            assert min(blocks[2]) >= 45 or len(blocks[2]) == 1
            assert min(blocks[3]) >= 45 or len(blocks[3]) == 1
            # x is cut only where no block of whole rows fits
            assert len(blocks[3]) == 1 or budget < 200 * MiB, (budget, blocks)
            around = (len(blocks[1]) > 1, len(blocks[2]) > 1, len(blocks[3]) > 1)
            need = task_peak((1, bz, by, bx), [floor], itemsize=2, shape=shape,
                             neighbours=around)  # fmt: skip
            assert need <= budget, (budget, threads, blocks)
    # Under ~200 MiB no block of whole rows fits: y and x parts alike.
    assert len(plan(48 * MiB, threads=2)[3]) > 1
    # Nothing fits: None, never the stack's own chunks over the budget.
    assert plan(10 * MiB, threads=2) is None


@pytest.mark.parametrize(
    ("chunks", "budget"),
    [
        ({"z": 4, "y": -1, "x": -1}, 32),  # whole planes; the signal in y parts
        ({"z": -1, "y": -1, "x": -1}, 24),  # planes split; the signal in y and x parts
        ({"z": 1, "y": -1, "x": -1}, 24),  # planes of one; the signal in y and x parts
        ({"z": 4, "y": 128, "x": 128}, 24),  # stored split in y/x
    ],
)
def test_every_task_of_a_run_that_keeps_the_signal_stays_inside_the_budget(
    tmp_path, chunks, budget
):
    # Work blocks planned for a run that keeps the default method's signal (no floor pass
    # over them, a pre-pass that reads the kept signal grown by the local box only), the
    # signal in blocks of its own: every task of every pass stays inside the budget.
    shape = (16, 256, 256)
    truth = make_truth(shape, 20, scale=SCALE, seed=3, radius_um=(3.0, 5.0))
    data = render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, background=100,
                  max_value=4095, noise_seed=3)[0]  # fmt: skip
    stack = as_stack(data, scale=SCALE).chunk(chunks)
    params = Params()
    # Load the compiled loops first: the budget is of the data, not of the code.
    lp = default.local_pixels(params, SCALE)
    small = data[None, :4, :64, :64]
    none = ((0, 0),) * 3
    signal = default._signal_block(small, lp=lp, margin=none)
    default._foreground_block(signal, np.full((1, 1, 1, 1), 300.0), lp=lp, fraction=0.5,
                              margin=none, signal_out=True, stored=True)  # fmt: skip
    # The plan computing the signal in every block would split planes more.
    full = work_blocks(stack, params, budget=budget * MiB)
    result, peaks = _traced_run(stack, tmp_path / "out", params, budget * MiB)
    planned = result.record["work_blocks"]
    assert planned["kept_signal"] is True
    if budget == 32:  # whole planes, where computing the signal in every block splits them
        assert planned["chunks"][-1] == [256] and len(full.data.chunks[-1]) > 1
    assert len(result.nuclei) > 10
    signal = [k for k in peaks.peaks if "_signal_block" in str(k)]
    assert len(signal) > 1  # computed once, in blocks of its own
    worst = max(peaks.peaks, key=peaks.peaks.get)
    assert len(peaks.peaks) > 20
    assert peaks.peaks[worst] <= budget * MiB, (worst, peaks.peaks[worst], budget * MiB)
