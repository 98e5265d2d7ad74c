import numpy as np
import pytest
from skimage.filters import rank, threshold_otsu
from skimage.morphology import disk

from bigseg import _kernels

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("radius", [1, 3, 5])
@pytest.mark.parametrize("dtype,high", [(np.uint8, 255), (np.uint16, 4095), (np.uint16, 200)])
def test_enhance_contrast_matches_rank(radius, dtype, high):
    # Few grey levels make many ties between the local max and min distances.
    for shape in [(40, 53), (7, 9), (1, 1)]:
        plane = RNG.integers(0, high, shape, endpoint=True).astype(dtype)
        expected = rank.enhance_contrast(plane, disk(radius))
        np.testing.assert_array_equal(_kernels.enhance_contrast_disk(plane, radius), expected)


def test_enhance_contrast_matches_rank_on_seed_planes(seed_stack):
    for plane in seed_stack[::4]:
        med = _kernels.median_disk(plane, 5)
        np.testing.assert_array_equal(
            _kernels.enhance_contrast_disk(med, 5), rank.enhance_contrast(med, disk(5))
        )


def test_enhance_contrast_float_follows_same_rule():
    plane = RNG.random((30, 31))
    out = _kernels.enhance_contrast_disk(plane, 2)
    assert out.dtype == plane.dtype
    from scipy import ndimage as ndi

    fp = disk(2).astype(bool)
    hi = ndi.maximum_filter(plane, footprint=fp, mode="nearest")
    lo = ndi.minimum_filter(plane, footprint=fp, mode="nearest")
    assert np.all((out == hi) | (out == lo))


def test_median_disk_is_rank_median_for_uint16():
    plane = RNG.integers(0, 4095, (33, 40)).astype(np.uint16)
    np.testing.assert_array_equal(_kernels.median_disk(plane, 3), rank.median(plane, disk(3)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_segment_plane_empty_and_background(dtype):
    zeros = np.zeros((20, 20), dtype)
    out = _kernels.segment_plane(
        zeros, 0.0, smooth_radius=2, min_distance=2, min_radius=1, max_radius=5
    )
    assert out.dtype == _kernels.LABEL_DTYPE and out.shape == (20, 20) and not out.any()
    empty = np.zeros((0, 5), dtype)
    out = _kernels.segment_plane(
        empty, 0.0, smooth_radius=2, min_distance=2, min_radius=1, max_radius=5
    )
    assert out.shape == (0, 5) and out.dtype == _kernels.LABEL_DTYPE


def test_segment_plane_finds_two_disks():
    plane = np.zeros((60, 100), np.uint16)
    plane[disk(10, dtype=bool).nonzero()[0] + 10, disk(10, dtype=bool).nonzero()[1] + 10] = 1000
    plane[disk(12, dtype=bool).nonzero()[0] + 20, disk(12, dtype=bool).nonzero()[1] + 60] = 800
    labels = _kernels.segment_plane(
        plane, 400, smooth_radius=2, min_distance=6, min_radius=3, max_radius=20
    )
    assert labels.max() == 2
    assert labels[20, 20] != labels[32, 72] and labels[20, 20] > 0 and labels[32, 72] > 0


def test_filter_sizes_keeps_open_interval():
    labels = np.zeros((30, 30), np.int32)
    labels[0:1, 0:3] = 1  # area 3: r = 0.98
    labels[5:15, 5:15] = 2  # area 100: r = 5.64
    labels[20:30, 20:21] = 3  # area 10: r = 1.78
    out = _kernels.filter_sizes(labels, min_radius=1.0, max_radius=5.0)
    assert set(np.unique(out)) == {0, 1}
    assert np.array_equal(out > 0, labels == 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_otsu_from_counts_equals_threshold_otsu(dtype):
    for high in (3, 200, np.iinfo(dtype).max):
        image = RNG.integers(1, high, (50, 40), endpoint=True).astype(dtype)
        counts = np.bincount(image.ravel(), minlength=np.iinfo(dtype).max + 1)
        assert _kernels.otsu_from_counts(counts) == threshold_otsu(image)


def test_otsu_from_counts_constant_and_empty():
    counts = np.zeros(256, np.int64)
    assert _kernels.otsu_from_counts(counts) == 0.0
    counts[7] = 10
    assert _kernels.otsu_from_counts(counts) == threshold_otsu(np.full((3, 3), 7, np.uint8))
