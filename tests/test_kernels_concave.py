"""Regions cut between the notches of their outline (bigseg.kernels.concave)."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label

import bigseg.kernels.filters as filters
from bigseg.kernels import concave
from bigseg.methods.default import CONCAVE_AREA, CONCAVE_DEPTH, CONCAVE_NOTCH, CONCAVE_PART

#: The default method's cut for nuclei of 4 px ``min_radius`` (2.84 µm at 0.71 µm).
CUT = {
    "solidity": 0.95,
    "min_area": CONCAVE_AREA * np.pi * 4.0**2,
    "depth": CONCAVE_DEPTH,
    "notch": CONCAVE_NOTCH,
    "part": CONCAVE_PART,
}
MARK = {k: v for k, v in CUT.items() if k != "part"}


def _oval(shape, centre, axes, angle=0.0):
    yy, xx = np.indices(shape, dtype=float)
    y, x = yy - centre[0], xx - centre[1]
    c, s = np.cos(angle), np.sin(angle)
    along, across = x * c + y * s, -x * s + y * c
    return (along / axes[0]) ** 2 + (across / axes[1]) ** 2 <= 1


def _side_by_side(shape=(60, 60), at=(30, 30), angle=0.0):
    """Two ovals of 16 x 8 px touching along their long sides."""
    dy, dx = 6 * np.cos(angle), 6 * np.sin(angle)
    a = _oval(shape, (at[0] - dy, at[1] + dx), (16, 8), angle)
    b = _oval(shape, (at[0] + dy, at[1] - dx), (16, 8), angle)
    return a, b


def _shapes(seed):
    """Random regions of every sort: blobs, opened blobs, oval pairs with texture dents."""
    rng = np.random.default_rng(seed)
    noise = rng.random((90, 120))
    blobs = label(ndi.gaussian_filter(noise, 2.0) > 0.5 + 0.01 * (seed % 5), connectivity=2)
    a, b = _side_by_side((90, 120), (45, 60), angle=0.3 * seed)
    pair = (a | b) & ~(ndi.gaussian_filter(noise, 1.0) > 0.56)
    plane = np.where(pair, blobs.max() + 1, blobs)
    return label(plane > 0, connectivity=1) if seed % 2 else plane


@pytest.mark.parametrize("seed", range(8))
def test_compiled_marks_and_notches_are_those_of_scikit_image_and_scipy(seed, monkeypatch):
    labels = _shapes(seed).astype(np.int32)
    settings = [
        MARK,
        {**MARK, "solidity": 0.99, "min_area": 20, "notch": 2, "depth": 1.0},
        {**MARK, "solidity": 1.01, "min_area": 1, "notch": 1, "depth": 0.0},
    ]
    for setting in settings:
        monkeypatch.setattr(filters, "compiled_pays", lambda work: True)
        marked, points = concave.concave_regions(labels, **setting)
        monkeypatch.setattr(filters, "compiled_pays", lambda work: False)
        expected, expected_points = concave.concave_regions(labels, **setting)
        np.testing.assert_array_equal(marked, expected)
        np.testing.assert_array_equal(points, expected_points)
    assert expected.sum() >= 5  # the loosest setting marks some


def test_two_touching_ovals_side_by_side_are_cut_between_them():
    for angle in (0.0, 0.6, np.pi / 2):
        a, b = _side_by_side(angle=angle)
        labels = (a | b).astype(np.int32)
        out = concave.cut_concave(labels, **CUT)
        assert out is not labels and sorted(np.unique(out)) == [0, 1, 2], angle
        for oval in (a, b):  # each part is one oval, up to their shared pixels
            counts = np.unique(out[oval], return_counts=True)[1]
            assert counts.max() >= 0.9 * oval.sum(), angle


def test_convex_regions_and_small_notches_are_left_whole():
    shape = (60, 60)
    plane = np.zeros(shape, np.int32)
    plane[_oval(shape, (15, 15), (12, 6), 0.3)] = 1  # an oval
    for radius in (4, 8, 14):  # discs, whose digital outline is a little concave
        plane[_oval(shape, (40, 40), (radius, radius))] = 2
        assert concave.cut_concave(plane, **CUT) is plane, radius
    bean = _oval(shape, (40, 12), (10, 9)) & ~_oval(shape, (49, 12), (3, 2))
    plane[bean] = 3  # one notch only
    assert concave.cut_concave(plane, **CUT) is plane
    pair = np.logical_or(*_side_by_side()).astype(np.int32)
    for change in ({"depth": 20.0}, {"notch": 500}, {"min_area": 1e6}, {"solidity": 0.5}):
        assert concave.cut_concave(pair, **{**CUT, **change}) is pair, change


def test_each_region_is_cut_on_its_own_and_others_keep_their_labels():
    # A plane's regions do not depend on the rest of the plane (the exactness of split
    # planes needs it), and regions left whole keep their labels.
    a, b = _side_by_side((60, 140), (30, 30))
    c, d = _side_by_side((60, 140), (30, 100))
    alone = concave.cut_concave((a | b).astype(np.int32), **CUT)
    plane = np.zeros(a.shape, np.int32)
    plane[a | b] = 2
    plane[c | d] = 1
    plane[55:58, 60:63] = 3
    out = concave.cut_concave(plane, **CUT)
    assert sorted(np.unique(out)) == [0, 1, 2, 3, 4, 5]
    assert (out[55:58, 60:63] == 3).all()
    pairs = set(zip(alone[a | b].tolist(), out[a | b].tolist(), strict=True))
    assert len(pairs) == 2 and {p[1] for p in pairs} <= {2, 4, 5}
