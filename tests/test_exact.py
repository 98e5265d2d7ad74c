"""The exactness check of split planes (bigseg.chunked.exact), against whole planes."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bigseg
from bigseg import Params, methods, open_stack, run
from bigseg.chunked.stitch import (
    _checked_labels,
    segment_blocks,
    side_tables,
    summaries,
)
from bigseg.kernels.watershed import split_plane, watershed_order_free
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
    assert stitching["clusters_beyond_halo"] == 0 and stitching["clusters_tied"] == 0
    assert stitching["face_conflicts"] == 0
    assert len(whole.nuclei) > 50
    pd.testing.assert_frame_equal(whole.nuclei, split.nuclei, check_exact=False, rtol=1e-10)
    np.testing.assert_array_equal(
        open_stack(tmp_path / "whole" / "labels.zarr").values,
        open_stack(tmp_path / "split" / "labels.zarr").values,
    )


def test_tied_markers_that_split_differently_are_reported(tmp_path):
    # Three markers of equal depth in one component far inside its block: the whole
    # plane's watershed pops them in an order set by the plane's other markers, the
    # block's by its own, and the component is split differently.  No halo helps.
    stack = _stack(110, touching=0.25)
    chunked = stack.chunk({"y": 120, "x": 120})
    with pytest.warns(UserWarning, match="1 hold markers of equal depth"):
        result = run(chunked, tmp_path / "out", params=DEFAULT)
    stitching = result.record["stitching"]
    assert stitching["clusters_tied"] == stitching["clusters_beyond_halo"] == 1
    assert stitching["face_conflicts"] == 0
    whole = bigseg.segment(stack, params=DEFAULT).values
    split = bigseg.segment(chunked, params=DEFAULT).values
    assert not _same(split, whole)


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
    labels, beyond, tied = _checked_labels(
        m.foreground(block, thr, px), px, (0, 130, 0, 150), (False,) * 4
    )
    assert labels.max() > 10
    np.testing.assert_array_equal(labels, m.kernel(block, thr, px))
    assert beyond == tied  # a whole plane hides nothing, but its ties are reported


def _two_disks(radii, gap):
    yy, xx = np.mgrid[:40, :60]
    a = (yy - 20) ** 2 + (xx - 20) ** 2 <= radii[0] ** 2
    b = (yy - 20) ** 2 + (xx - 20 - gap) ** 2 <= radii[1] ** 2
    return a | b


def test_watershed_of_tied_markers_depends_on_their_order():
    binary = _two_disks((8, 8), 14)  # two equal disks, overlapping: equal depths
    _, distance, markers = split_plane(binary, min_distance=6)
    assert markers.sum() == 2 and len(set(distance[markers])) == 1
    assert not watershed_order_free(distance, markers, binary)
    assert not watershed_order_free(distance, markers, binary, max_orders=1)


def test_watershed_of_distinct_markers_is_order_free():
    binary = _two_disks((8, 7), 13)
    _, distance, markers = split_plane(binary, min_distance=6)
    assert markers.sum() == 2 and len(set(distance[markers])) == 2
    assert watershed_order_free(distance, markers, binary)
    one = _two_disks((8, 0), 0)
    _, distance, markers = split_plane(one, min_distance=6)
    assert watershed_order_free(distance, markers, one)
