"""The exactness check of split planes (bigseg.chunked.exact), against whole planes."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bigseg
from bigseg import Params, methods, open_stack, run
from bigseg.chunked.exact import unproven_local
from bigseg.chunked.stitch import (
    _checked_labels,
    segment_blocks,
    side_tables,
    summaries,
)
from bigseg.kernels.watershed import split_plane, split_plane_apart
from bigseg.segment import _threshold_array, halo_px, plan_blocks, stitched_blocks
from bigseg.stack import as_4d, as_stack
from bigseg.synth import make_truth, render

from .conftest import SCALE, assert_same_labels

DEFAULT = Params.from_preset("default")


def _stack(nuclei, *, touching, seed=3, radius_um=(3.0, 5.0), shape=(1, 240, 240)):
    truth = make_truth(
        shape,
        nuclei,
        scale=SCALE,
        seed=seed,
        radius_um=radius_um,
        touching=touching,
        min_separation=1.05,
    )
    return as_stack(
        render(truth, (0, 0, 0, 0), (1, *shape), scale=SCALE, noise_seed=seed)[0], scale=SCALE
    )


def _records(stack, params, *, opaque=False):
    """The blocks' records (sums and counts) of a y/x-chunked stack."""
    four = as_4d(stack)
    px = params.in_pixels(SCALE)
    thr = _threshold_array(four, stack, None, params)
    data = plan_blocks(four.data, px, True, params.preset)
    if opaque:  # the method's kernel as a black box: the conservative proxy
        m = methods.get(params.preset)
        source, image = m.prepass(data, thr, params, SCALE)
        blocks = segment_blocks(
            source, thr, m.pixels(px), m.kernel, halo=halo_px(px, params.preset), image=image
        )
    else:
        blocks = stitched_blocks(data, thr, params, px, SCALE)
    return list(summaries(side_tables(blocks)).compute().ravel())


def _same(a, b):
    try:
        assert_same_labels(a, b)
    except AssertionError:
        return False
    return True


def test_proven_clusters_are_not_reported_and_match_whole_planes(tmp_path):
    # Small nuclei less than a pixel apart: for the old proxy (clusters of kept regions
    # within min_distance of each other) the plane is a few long chains reaching the
    # halo's edge, so it warned; each nucleus is split on its own, and the check proves it.
    stack = _stack(110, touching=0.0)
    chunked = stack.chunk({"y": 52, "x": 52})
    assert sum(b.beyond for b in _records(chunked, DEFAULT, opaque=True)) > 5
    whole = run(stack, tmp_path / "whole", params=DEFAULT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = run(chunked, tmp_path / "split", params=DEFAULT)
    stitching = split.record["stitching"]
    assert stitching["blocks"] == 16 and stitching["regions_across_faces"] > 5
    assert stitching["clusters_beyond_halo"] == 0
    assert stitching["face_conflicts"] == 0
    assert len(whole.nuclei) > 50
    pd.testing.assert_frame_equal(whole.nuclei, split.nuclei, check_exact=False, rtol=1e-10)
    np.testing.assert_array_equal(
        open_stack(tmp_path / "whole" / "labels.zarr").values,
        open_stack(tmp_path / "split" / "labels.zarr").values,
    )


def test_tied_markers_split_as_in_whole_planes(tmp_path):
    # Three markers of equal depth in one component far inside its block: scikit-image's
    # heap would pop them in an order set by the plane's other markers (so the block split
    # them differently); flood_levels orders them by position, and nothing differs.
    stack = _stack(110, touching=0.25)
    chunked = stack.chunk({"y": 120, "x": 120})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run(chunked, tmp_path / "out", params=DEFAULT)
    stitching = result.record["stitching"]
    assert stitching["clusters_beyond_halo"] == stitching["face_conflicts"] == 0
    whole = bigseg.segment(stack, params=DEFAULT).values
    split = bigseg.segment(chunked, params=DEFAULT).values
    assert _same(split, whole)


@pytest.mark.parametrize("preset", ["default", "seed"])
def test_unreported_runs_match_whole_planes(preset):
    # Wherever the check proves every cluster, the labels are those of whole planes;
    # where the labels differ, it reports.
    params = Params.from_preset(preset)
    halo = halo_px(params.in_pixels(SCALE), preset)
    proven = 0
    for seed in (1, 2, 3):
        stack = _stack(40, touching=0.25, seed=seed, radius_um=(3.0, 9.0), shape=(1, 200, 200))
        whole = bigseg.segment(stack, params=params).values
        for size in (halo + 1, halo + 17, 100):
            chunked = stack.chunk({"y": size, "x": size})
            flagged = sum(b.beyond for b in _records(chunked, params))
            same = _same(bigseg.segment(chunked, params=params).values, whole)
            assert same or flagged > 0
            proven += flagged == 0
    assert proven >= 2  # not vacuous


@pytest.mark.parametrize("preset", ["default", "seed"])
def test_blocks_split_their_foreground_as_the_kernel(preset):
    m = methods.get(preset)
    params = Params.from_preset(preset)
    px = m.pixels(params.in_pixels(SCALE))
    stack = _stack(60, touching=0.25, shape=(2, 130, 150))
    four = as_4d(stack)
    thresholds = _threshold_array(four, stack, None, params)
    thr = thresholds.compute().reshape(1, 1, 1, 1)
    block = m.prepass(four.data, thresholds, params, SCALE)[0].compute()
    whole = (0, 130, 0, 150), (False,) * 4
    if m.foreground is not None:
        labels, beyond = _checked_labels(m.foreground(block, thr, px), px, *whole)
    else:  # a component-local kernel
        labels = m.kernel(block, thr, px)
        mask = m.components(block, thr, px).reshape((-1, 130, 150))
        beyond = sum(unproven_local(p, core=whole[0], sides=whole[1]) for p in mask)
    assert labels.max() > 10
    np.testing.assert_array_equal(labels, m.kernel(block, thr, px))
    assert beyond == 0  # a whole plane hides nothing


def _two_disks(radii, gap):
    yy, xx = np.mgrid[:40, :60]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 <= radii[0] ** 2
    b = (yy - 20) ** 2 + (xx - 20 - gap) ** 2 <= radii[1] ** 2
    return a | b


@pytest.mark.parametrize(
    ("split", "gap"),
    [
        (lambda b: split_plane(b, min_distance=6)[0], 14),
        (lambda b: split_plane_apart(b, apart=0.9), 16),
    ],
    ids=["seed", "default"],
)
def test_tied_markers_split_the_same_whatever_else_is_in_the_plane(split, gap):
    # Two equal overlapping disks (markers of equal depth), alone and beside other pairs
    # of equal disks: the pair is split the same way (ties go by position).
    pair = _two_disks((8, 8), gap)
    alone = split(pair)
    assert alone.max() == 2
    plane = np.zeros((120, 160), bool)
    plane[40:80, 50:110] = pair
    plane[2:42, 0:60] |= _two_disks((8, 8), gap)
    plane[80:120, 100:160] |= _two_disks((8, 8), gap)
    crowded = split(plane)[40:80, 50:110]
    assert_same_labels(np.where(pair, crowded, 0), alone)


def test_unproven_local_counts_components_cut_by_a_side():
    binary = np.zeros((40, 40), bool)
    binary[5:12, 5:12] = True  # inside
    binary[20:30, 30:40] = True  # on the right edge
    core = (10, 20, 10, 20)
    assert unproven_local(binary, core=core, sides=(False, False, False, True)) == 1
    assert unproven_local(binary, core=core, sides=(False, False, False, False)) == 0
    assert unproven_local(binary, core=(0, 8, 0, 8), sides=(True,) * 4) == 0


def test_concave_cuts_in_split_planes_match_whole_planes(monkeypatch):
    # Oval nuclei touching side by side, cut at their outline's notches (2D images only):
    # each region is cut on its own, so split planes give the whole planes' labels.
    from bigseg.methods import default
    from bigseg.synth import synth_kind

    image, _, scale = synth_kind("ovals2d", seed=0, shape=(1, 350, 550), nuclei=70)
    stack = as_stack(image[1], scale=scale)  # its second frame has a pair to cut
    whole = bigseg.segment(stack, params=DEFAULT).values
    for size in (120, 200):
        split = bigseg.segment(stack.chunk({"y": size, "x": size}), params=DEFAULT).values
        assert _same(split, whole), size
    monkeypatch.setattr(default, "CONCAVE_SOLIDITY", 0.0)
    assert not _same(bigseg.segment(stack, params=DEFAULT).values, whole)  # some were cut


def test_concave_cuts_of_a_real_2d_image_in_split_planes_match_whole_planes():
    # StarDist's 2D test image (`make real-2d`): five pairs cut at 0.5 µm per pixel.
    import tifffile

    from .conftest import cached_file

    image = tifffile.imread(cached_file("dsb2018_2d/img2d.tif"))
    stack = as_stack(image[None], scale=(1.0, 0.5, 0.5))
    whole = bigseg.segment(stack, params=DEFAULT).values
    for size in (100, 256):
        split = bigseg.segment(stack.chunk({"y": size, "x": size}), params=DEFAULT).values
        assert _same(split, whole), size


def test_clumps_split_at_their_peaks_in_split_planes_match_whole_planes(monkeypatch):
    # Three nuclei packed into one region larger than any nucleus (one distance peak):
    # split at their peaks of light, each clump on its own, so split planes give the
    # whole planes' labels.
    from bigseg.kernels import watershed

    yy, xx = np.indices((200, 300))
    light = np.zeros((200, 300))
    for oy, ox in ((50, 50), (100, 150), (140, 240)):
        for cy, cx in ((0, 0), (0, 16), (8 * np.sqrt(3), 8)):
            d = np.hypot(yy - oy - cy, xx - ox - cx)
            dome = 300 * np.sqrt(np.clip(1 - (d / 11) ** 2, 0, 1)) + 900
            light = np.maximum(light, np.where(d <= 11, dome, 0))
    noise = np.random.default_rng(0).normal(0, 10, light.shape)
    image = np.clip(light + 100 + noise, 0, None).astype(np.uint16)
    stack = as_stack(image[None, None], scale=(1.0, 1.0, 1.0))
    whole = bigseg.segment(stack, params=DEFAULT).values
    assert len(np.unique(whole)) - 1 == 9  # the nine nuclei
    for size in (64, 100):
        split = bigseg.segment(stack.chunk({"y": size, "x": size}), params=DEFAULT).values
        assert _same(split, whole), size
    kernel = watershed.segment_signal
    monkeypatch.setattr(  # without the split, the size filter drops the three clumps
        "bigseg.methods.default.segment_signal",
        lambda *a, oversized=None, **k: kernel(*a, **k),
    )
    assert not bigseg.segment(stack, params=DEFAULT).values.any()
