import numpy as np
import pytest
from skimage.filters import rank, threshold_otsu
from skimage.morphology import disk

from bigseg import kernels
from bigseg.kernels import filters, regions
from bigseg.kernels import threshold as kthreshold
from bigseg.kernels import watershed as kwatershed

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("radius", [1, 3, 5])
@pytest.mark.parametrize("dtype,high", [(np.uint8, 255), (np.uint16, 4095), (np.uint16, 200)])
def test_enhance_contrast_matches_rank(radius, dtype, high):
    # Few grey levels make many ties between the local max and min distances.
    for shape in [(40, 53), (7, 9), (1, 1)]:
        plane = RNG.integers(0, high, shape, endpoint=True).astype(dtype)
        expected = rank.enhance_contrast(plane, disk(radius))
        np.testing.assert_array_equal(filters.enhance_contrast_disk(plane, radius), expected)


def test_enhance_contrast_matches_rank_on_seed_planes(seed_stack):
    for plane in seed_stack[::4]:
        med = filters.median_disk(plane, 5)
        np.testing.assert_array_equal(
            filters.enhance_contrast_disk(med, 5), rank.enhance_contrast(med, disk(5))
        )


def test_enhance_contrast_float_follows_same_rule():
    plane = RNG.random((30, 31))
    out = filters.enhance_contrast_disk(plane, 2)
    assert out.dtype == plane.dtype
    from scipy import ndimage as ndi

    fp = disk(2).astype(bool)
    hi = ndi.maximum_filter(plane, footprint=fp, mode="nearest")
    lo = ndi.minimum_filter(plane, footprint=fp, mode="nearest")
    assert np.all((out == hi) | (out == lo))


def test_median_disk_is_rank_median_for_uint16():
    plane = RNG.integers(0, 4095, (33, 40)).astype(np.uint16)
    np.testing.assert_array_equal(filters.median_disk(plane, 3), rank.median(plane, disk(3)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_segment_plane_empty_and_background(dtype):
    zeros = np.zeros((20, 20), dtype)
    out = kwatershed.segment_plane(
        zeros, 0.0, smooth_radius=2, min_distance=2, min_radius=1, max_radius=5
    )
    assert out.dtype == kernels.LABEL_DTYPE and out.shape == (20, 20) and not out.any()
    empty = np.zeros((0, 5), dtype)
    out = kwatershed.segment_plane(
        empty, 0.0, smooth_radius=2, min_distance=2, min_radius=1, max_radius=5
    )
    assert out.shape == (0, 5) and out.dtype == kernels.LABEL_DTYPE


def test_segment_plane_finds_two_disks():
    plane = np.zeros((60, 100), np.uint16)
    plane[disk(10, dtype=bool).nonzero()[0] + 10, disk(10, dtype=bool).nonzero()[1] + 10] = 1000
    plane[disk(12, dtype=bool).nonzero()[0] + 20, disk(12, dtype=bool).nonzero()[1] + 60] = 800
    labels = kwatershed.segment_plane(
        plane, 400, smooth_radius=2, min_distance=6, min_radius=3, max_radius=20
    )
    assert labels.max() == 2
    assert labels[20, 20] != labels[32, 72] and labels[20, 20] > 0 and labels[32, 72] > 0


def test_filter_sizes_keeps_open_interval():
    labels = np.zeros((30, 30), np.int32)
    labels[0:1, 0:3] = 1  # area 3: r = 0.98
    labels[5:15, 5:15] = 2  # area 100: r = 5.64
    labels[20:30, 20:21] = 3  # area 10: r = 1.78
    out = kwatershed.filter_sizes(labels, min_radius=1.0, max_radius=5.0)
    assert set(np.unique(out)) == {0, 1}
    assert np.array_equal(out > 0, labels == 3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_otsu_from_counts_equals_threshold_otsu(dtype):
    for high in (3, 200, np.iinfo(dtype).max):
        image = RNG.integers(1, high, (50, 40), endpoint=True).astype(dtype)
        counts = np.bincount(image.ravel(), minlength=np.iinfo(dtype).max + 1)
        assert kthreshold.otsu_from_counts(counts) == threshold_otsu(image)


def test_otsu_from_counts_constant_and_empty():
    counts = np.zeros(256, np.int64)
    assert kthreshold.otsu_from_counts(counts) == 0.0
    counts[7] = 10
    assert kthreshold.otsu_from_counts(counts) == threshold_otsu(np.full((3, 3), 7, np.uint8))


# --------------------------------------------------------------------------- fast exact kernels


def _recipe_binary(plane, threshold, radius):
    """The recipe's foreground: rank median, rank enhance_contrast, threshold."""
    fp = disk(radius)
    return rank.enhance_contrast(rank.median(plane, fp), fp) > threshold


def _random_planes(rng, n):
    """Random planes of 8-, 12- and 16-bit ranges, tiny to medium, some with hot pixels."""
    for _ in range(n):
        shape = tuple(int(s) for s in rng.integers(1, 45, 2))
        high = int(rng.choice([1, 3, 40, 255, 1023, 4095, 65535]))
        dtype = np.uint8 if high <= 255 and rng.random() < 0.5 else np.uint16
        plane = rng.integers(0, high, shape, endpoint=True).astype(dtype)
        if rng.random() < 0.3:
            plane[rng.integers(0, shape[0]), rng.integers(0, shape[1])] = np.iinfo(dtype).max
        yield plane, high


def test_smoothed_above_is_recipe_foreground_on_random_planes():
    rng = np.random.default_rng(11)
    for plane, high in _random_planes(rng, 250):
        threshold = float(rng.integers(0, high + 1)) + float(rng.choice([0.0, 0.5, -0.5]))
        radius = int(rng.integers(1, 7))
        expected = _recipe_binary(plane, threshold, radius)
        np.testing.assert_array_equal(
            filters.smoothed_above(plane, threshold, radius),
            expected,
            err_msg=f"shape {plane.shape}, max {plane.max()}, threshold {threshold}, r {radius}",
        )


@pytest.mark.parametrize("radius", [1, 5, 8])
def test_smoothed_above_on_blobs_with_hot_pixels(radius):
    # Smooth bright blobs on a noisy 12-bit background: long foreground edges.
    rng = np.random.default_rng(radius)
    from scipy import ndimage as ndi

    blobs = ndi.gaussian_filter(rng.random((150, 170)), 6)
    plane = 100 + 3000 * (blobs - blobs.min()) / np.ptp(blobs) + rng.normal(0, 30, blobs.shape)
    plane = np.clip(plane, 0, 4095).astype(np.uint16)
    plane[[0, 75, 149], [0, 80, 169]] = 65535  # hot pixels, one in a corner
    for threshold in (0.0, 400.0, 1500.5, 3000.0, 70000.0):
        np.testing.assert_array_equal(
            filters.smoothed_above(plane, threshold, radius),
            _recipe_binary(plane, threshold, radius),
        )


def test_smoothed_above_on_seed_planes(seed_stack):
    thresh = threshold_otsu(seed_stack.max(axis=0))
    for plane in seed_stack:
        for t in (thresh, thresh / 2, 1.5 * thresh):
            np.testing.assert_array_equal(
                filters.smoothed_above(plane, t, 5), _recipe_binary(plane, t, 5)
            )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_smoothed_above_constant_empty_and_tiny(dtype):
    for shape in [(1, 1), (2, 3), (4, 4), (30, 20)]:
        for value in (0, 7, np.iinfo(dtype).max):
            plane = np.full(shape, value, dtype)
            for t in (value - 0.5, value, value + 0.5):
                out = filters.smoothed_above(plane, float(t), 5)
                assert out.dtype == bool and out.shape == shape
                np.testing.assert_array_equal(out, _recipe_binary(plane, float(t), 5))
    empty = filters.smoothed_above(np.zeros((0, 4), dtype), 1.0, 3)
    assert empty.shape == (0, 4) and empty.dtype == bool


def test_smoothed_above_other_dtypes_follow_smooth_plane():
    plane = RNG.random((25, 30)).astype(np.float32)
    np.testing.assert_array_equal(
        filters.smoothed_above(plane, 0.5, 2), filters.smooth_plane(plane, 2) > 0.5
    )


def test_median_at_is_rank_median_everywhere():
    rng = np.random.default_rng(3)
    for plane, _ in _random_planes(rng, 60):
        radius = int(rng.integers(1, 7))
        ys, xs = np.nonzero(np.ones(plane.shape, bool))
        expected = rank.median(plane, disk(radius))
        got = filters._median_at(plane, ys, xs, radius).reshape(plane.shape)
        np.testing.assert_array_equal(got, expected)


def test_disk_max_min_match_scipy_and_rank():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    for plane, _ in _random_planes(rng, 60):
        radius = int(rng.integers(1, 12))  # chained and filtered runs
        fp = disk(radius).astype(bool)
        hi = filters.disk_max(plane, radius)
        lo = filters.disk_min(plane, radius)
        assert hi.dtype == plane.dtype and lo.dtype == plane.dtype
        np.testing.assert_array_equal(hi, ndi.maximum_filter(plane, footprint=fp, mode="nearest"))
        np.testing.assert_array_equal(lo, ndi.minimum_filter(plane, footprint=fp, mode="nearest"))
        np.testing.assert_array_equal(hi, rank.maximum(plane, disk(radius)))
        np.testing.assert_array_equal(lo, rank.minimum(plane, disk(radius)))
    floats = rng.normal(size=(17, 23))
    np.testing.assert_array_equal(
        filters.disk_max(floats, 3),
        ndi.maximum_filter(floats, footprint=disk(3).astype(bool), mode="nearest"),
    )
    assert filters.disk_max(np.zeros((0, 3), np.uint16), 2).shape == (0, 3)


@pytest.mark.parametrize("compiled", ["1", "0"])
def test_disk_count_is_zero_padded_correlation(monkeypatch, compiled):
    from scipy import ndimage as ndi

    monkeypatch.setenv(filters.COMPILED_VARIABLE, compiled)
    if compiled == "1":  # numba loaded: the compiled counts run however small the plane
        import bigseg.kernels._compiled  # noqa: F401

        assert filters.compiled_plane(np.zeros((3, 3), bool)) is not None
    rng = np.random.default_rng(8)
    for _ in range(40):
        mask = rng.random(tuple(int(s) for s in rng.integers(1, 40, 2))) < rng.random()
        radius = int(rng.integers(0, 8))
        expected = ndi.correlate(
            mask.astype(np.int32), disk(radius).astype(np.int32), mode="constant"
        )
        np.testing.assert_array_equal(filters.disk_count(mask, radius), expected)


def test_enhance_contrast_with_hot_pixel_matches_rank():
    plane = RNG.integers(0, 4095, (40, 50)).astype(np.uint16)
    plane[20, 20] = 65535
    np.testing.assert_array_equal(
        filters.enhance_contrast_disk(plane, 4), rank.enhance_contrast(plane, disk(4))
    )


def test_distance_to_background_is_scipy_edt():
    from scipy import ndimage as ndi

    rng = np.random.default_rng(9)
    cases = [np.zeros((5, 7), bool), np.ones((6, 4), bool), np.eye(9, dtype=bool)]
    checker = np.indices((20, 20)).sum(axis=0) % 2 == 0  # many components: whole-plane path
    cases.append(checker)
    for _ in range(200):
        shape = tuple(int(s) for s in rng.integers(1, 70, 2))
        field = ndi.gaussian_filter(rng.random(shape), rng.uniform(0.5, 5))
        cases.append(field > np.quantile(field, rng.uniform(0.2, 0.99)))
    # Components whose boxes overlap, one inside another's hole, touching the border.
    ring = np.zeros((40, 40), bool)
    ring[5:35, 5:35] = True
    ring[10:30, 10:30] = False
    ring[15:25, 15:25] = True
    ring[0:3, :] = True
    cases.append(ring)
    for binary in cases:
        np.testing.assert_array_equal(
            kwatershed.distance_to_background(binary), ndi.distance_transform_edt(binary)
        )


def test_segment_plane_equals_recipe_chain_on_synthetic_plane():
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    from .conftest import synthetic

    stack, _ = synthetic(shape=(3, 160, 150), nuclei=12, seed=6)
    plane = stack.values[1]
    thresh = float(threshold_otsu(stack.values.max(axis=0)))
    binary = _recipe_binary(plane, thresh, 5)
    distance = ndi.distance_transform_edt(binary)
    peaks = peak_local_max(distance, min_distance=8, labels=binary)
    markers = np.zeros(binary.shape, bool)
    markers[tuple(peaks.T)] = True
    expected = watershed(-distance, ndi.label(markers)[0], mask=binary)
    expected = kwatershed.filter_sizes(expected, min_radius=4, max_radius=20)
    got = kwatershed.segment_plane(
        plane, thresh, smooth_radius=5, min_distance=8, min_radius=4, max_radius=20
    )
    assert expected.max() > 0
    np.testing.assert_array_equal(got, expected)


def test_median_disk_is_rank_median_on_random_planes_without_warnings():
    import warnings

    rng = np.random.default_rng(12)
    for plane, _ in _random_planes(rng, 60):
        radius = int(rng.integers(1, 7))
        expected = rank.median(plane, disk(radius))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = filters.median_disk(plane, radius)
        assert got.dtype == plane.dtype
        np.testing.assert_array_equal(got, expected)
    constant = np.full((9, 4), 4095, np.uint16)
    np.testing.assert_array_equal(filters.median_disk(constant, 5), constant)
    assert filters.median_disk(np.zeros((0, 3), np.uint16), 2).shape == (0, 3)


def test_region_stats_matches_regionprops_table():
    from skimage.measure import regionprops_table

    rng = np.random.default_rng(13)
    props = ("label", "area", "centroid", "centroid_weighted", "intensity_mean")
    for trial in range(40):
        shape = tuple(int(s) for s in rng.integers(1, 60, 2))
        labels = rng.integers(0, int(rng.integers(1, 12)), shape).astype(np.int32)
        if trial % 3 == 0:
            labels[labels == 2] = 0  # gaps in the label ids
        dtype = [np.uint8, np.uint16, np.float32][trial % 3]
        image = (rng.random(shape) * 4000).astype(dtype)
        if trial % 5 == 0:
            image[labels == 1] = 0  # zero intensity: NaN weighted centroid
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = regionprops_table(labels, intensity_image=image, properties=props)
        got = regions.region_stats(labels, image)
        assert list(got) == list(expected)
        for key in expected:
            np.testing.assert_array_equal(got[key].shape, expected[key].shape)
            exact = key in ("label", "area", "centroid-0", "centroid-1") or dtype != np.float32
            np.testing.assert_allclose(
                got[key], expected[key], rtol=1e-12 if exact else 1e-6, atol=1e-9, equal_nan=True
            )
    empty = regions.region_stats(np.zeros((4, 5), np.int32), np.zeros((4, 5), np.uint16))
    assert all(v.size == 0 for v in empty.values())
