"""Work blocks from a memory budget: the memory model against measured peaks, the planner."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import bigseg
from bigseg import InputError, Params, as_stack
from bigseg.chunked.plan import PassMemory, task_peak, work_chunks
from bigseg.chunked.stitch import _block_record
from bigseg.cli import cluster_shape
from bigseg.methods import default, seed
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
    measured = {
        "floor": _peak(default._smooth_block, block, sigma=lp.sigma, margin=none),
        "foreground": _peak(
            default._foreground_block,
            block,
            thr,
            sigma=lp.sigma,
            fraction=params.local_fraction,
            size=lp.size,
            margin=none,
        ),  # fmt: skip
    }
    fg = default._foreground_block(
        block, thr, sigma=lp.sigma, fraction=params.local_fraction, size=lp.size, margin=none
    )
    px = default.METHOD.pixels(params.in_pixels(SCALE))
    measured["kernel"] = _peak(default.METHOD.kernel, fg, thr, px)
    for name, peak in measured.items():
        model = _model(passes, name, full)
        assert peak <= model, (name, peak, model)
        assert model <= 2 * peak, (name, peak, model)  # and not absurdly loose


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
        band=2 * px.smooth_radius + px.min_distance,
        chunks_all=((1,), (4,), (h, c, h), (h, c, h)),
    )  # fmt: skip
    model = _model(memory_model(params, SCALE), "kernel", block.shape)
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
    whole = task_peak((1, 4, plane, plane), passes, itemsize=2, shape=shape,
                      neighbours=(True, False, False))  # fmt: skip
    assert (chunks == storage) == (whole <= budget)
    if plane == 8192:  # whole planes of 8192² never fit: split into y/x blocks
        assert len(chunks[2]) > 1 and len(chunks[3]) > 1
    # No block straddles a storage chunk along z.
    assert set(np.cumsum(storage[1])) <= set(np.cumsum(chunks[1]))


def test_chunks_that_fit_are_kept_and_tiny_ones_merged():
    passes = memory_model(Params(), SCALE)
    shape = (3, 40, 256, 256)
    storage = ((1, 1, 1), (1,) * 40, (256,), (256,))
    assert work_chunks(shape, storage, passes, 512 * MiB, itemsize=2) == storage
    merged = work_chunks(shape, storage, passes, 512 * MiB, itemsize=2, merge=True)
    assert max(merged[1]) > 1 and sum(merged[1]) == 40 and merged[2:] == storage[2:]


def test_a_budget_below_the_smallest_block_is_refused():
    passes = memory_model(Params(), SCALE)
    storage = ((1,), (4,), (2048,), (2048,))
    with pytest.raises(InputError, match="memory budget of .* raise the workers' memory limit"):
        work_chunks((1, 4, 2048, 2048), storage, passes, 1 * MiB, itemsize=2, min_side=50)


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
