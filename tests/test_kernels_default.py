import numpy as np
import pytest
from skimage.filters import threshold_otsu

from bigseg.kernels import filters, watershed
from bigseg.kernels import threshold as kthreshold


def _blob(shape, centre, radius, value):
    zz, yy, xx = np.indices(shape)
    d = np.sqrt(sum((g - c) ** 2 for g, c in zip((zz, yy, xx), centre)))
    return np.where(d <= radius, value, 0.0)


def test_smooth_volume_keeps_shape_and_handles_empty():
    assert filters.smooth_volume(np.zeros((0, 5, 5), np.uint16), (1, 1, 1)).shape == (0, 5, 5)
    block = np.zeros((3, 8, 8), np.uint16)
    block[1, 4, 4] = 100
    out = filters.smooth_volume(block, (0.0, 1.0, 1.0))
    assert out.dtype == np.float32 and out.shape == block.shape
    assert out[1].sum() == pytest.approx(100, rel=1e-3) and out[0].max() == 0


def test_log_histogram_and_floor_separate_dim_and_bright_from_background():
    rng = np.random.default_rng(0)
    background = rng.normal(100, 3, 20_000)
    nuclei = np.exp(rng.uniform(np.log(300), np.log(3000), 4_000))  # tenfold brightness
    values = np.concatenate([background, nuclei])
    log_max = float(np.log(4096))
    counts = kthreshold.log_histogram(values, offset=0.0, log_max=log_max)
    assert counts.dtype == np.int64 and counts.sum() == values.size
    floor = kthreshold.log_otsu_from_counts(counts, offset=0.0, log_max=log_max)
    # Otsu of the log values: far above the background, low among the nuclei (a linear
    # Otsu would sit near the middle of their range).
    assert 110 < floor < 400 < threshold_otsu(values)
    assert np.log(floor + 1) == pytest.approx(threshold_otsu(np.log(values + 1)), abs=0.05)


def test_floor_of_empty_and_constant_histograms():
    log_max = float(np.log(256))
    empty = kthreshold.log_histogram(np.zeros(0), offset=0.0, log_max=log_max)
    assert (
        empty.sum() == 0
        and kthreshold.log_otsu_from_counts(empty, offset=5.0, log_max=log_max) == 5.0
    )
    const = kthreshold.log_histogram(np.full(100, 7.0), offset=0.0, log_max=log_max)
    floor = kthreshold.log_otsu_from_counts(const, offset=0.0, log_max=log_max)
    assert floor >= 7.0 - 1e-9  # nothing of a constant image is above its floor


def test_local_foreground_cuts_dim_and_bright_nuclei_at_the_same_size():
    shape = (9, 40, 80)
    vol = 100 + _blob(shape, (4, 20, 20), 6, 200.0) + _blob(shape, (4, 20, 60), 6, 3000.0)
    smoothed = filters.smooth_volume(vol, (1.0, 1.5, 1.5))
    fg = filters.local_foreground(smoothed, 150.0, fraction=0.5, size=(3, 9, 9))
    left, right = fg[4, :, :40].sum(), fg[4, :, 40:].sum()
    assert left > 0 and right > 0
    assert abs(left - right) <= 0.2 * max(left, right)
    # One global threshold low enough for the dim nucleus makes the bright one much larger.
    assert (smoothed[4, :, 40:] > 150).sum() > 1.3 * right > 1.3 * 0.8 * left


def test_local_foreground_by_peak_cuts_a_dim_nucleus_at_its_own_level_not_at_the_floor():
    # A dim nucleus whose peak is just above the floor: asking the floor of every voxel
    # cuts it near its top (small); asking it of the local peak cuts it at its own level.
    shape = (1, 40, 40)
    smoothed = filters.smooth_volume(_blob(shape, (0, 20, 20), 6, 240.0), (0.5, 1.5, 1.5))
    kw = {"fraction": 0.5, "size": (1, 9, 9), "base": 112.5}  # base: half the floor
    by_voxel = filters.local_foreground(smoothed, 225.0, **kw)
    by_peak = filters.local_foreground(smoothed, 225.0, by_peak=True, **kw)
    assert by_voxel.any() and (by_voxel <= by_peak).all()
    assert by_peak.sum() > 1.5 * by_voxel.sum()
    assert by_peak.sum() <= np.pi * 7.5**2  # not past the nucleus (radius 6, blurred)
    # A peak under the floor is no nucleus, however it is asked.
    assert not filters.local_foreground(smoothed, 260.0, by_peak=True, **kw).any()


def test_local_foreground_empty_and_background():
    assert filters.local_foreground(
        np.zeros((0, 4, 4), np.float32), 1.0, fraction=0.5, size=(1, 3, 3)
    ).shape == (0, 4, 4)
    flat = np.full((3, 10, 10), 5.0, np.float32)
    assert not filters.local_foreground(flat, 10.0, fraction=0.5, size=(1, 3, 3)).any()


def test_segment_foreground_splits_touching_discs_per_plane():
    fg = np.zeros((2, 40, 60), bool)
    yy, xx = np.indices((40, 60))
    fg[0] = ((yy - 20) ** 2 + (xx - 20) ** 2 <= 100) | ((yy - 20) ** 2 + (xx - 39) ** 2 <= 100)
    labels = watershed.segment_foreground(fg, min_distance=8, min_radius=4, max_radius=20)
    assert labels.dtype == np.int32
    assert labels[0].max() == 2 and labels[1].max() == 0
    empty = watershed.segment_foreground(
        np.zeros((0, 5, 5), bool), min_distance=2, min_radius=1, max_radius=3
    )
    assert empty.shape == (0, 5, 5) and empty.dtype == np.int32


def test_halo():
    assert filters.gaussian_reach(1.0) + 2 == 5 and filters.gaussian_reach(0.0) == 0


@pytest.fixture(params=["one strip", "strips of 1 to 3 rows"])
def strips(request, monkeypatch):
    """Run a test with the whole block in one strip, and again in strips of a few rows."""
    if request.param != "one strip":
        # 9 x 33 float32 per row, minus twice the reach: strips of 1-3 rows with context.
        monkeypatch.setattr(filters, "STRIP_BYTES", 4 * 9 * 33 * 13)
    return request.param


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.float32, np.float64, np.int32])
@pytest.mark.parametrize("sigma", [(0.79, 1.67, 1.67), (0.0, 1.5, 1.5), (2.0, 0.0, 1.0), (0, 0, 0)])
def test_smooth_volume_equals_gaussian_filter_cropped_and_keeps_input(dtype, sigma, strips):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(1)
    block = (rng.random((9, 40, 33)) * 4000).astype(dtype)
    before = block.copy()
    whole = ndi.gaussian_filter(
        block.astype(np.float32), sigma, mode="nearest", truncate=filters.TRUNCATE
    )
    for margin in [((0, 0),) * 3, ((2, 3), (5, 1), (0, 4))]:
        core = tuple(slice(b, n - a) for n, (b, a) in zip(block.shape, margin))
        got = filters.smooth_volume(block, sigma, margin=margin)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, whole[core])
        got[...] = -1  # the result is never a view of the input
        np.testing.assert_array_equal(block, before)


def test_local_foreground_margin_is_the_whole_result_cropped(strips):
    from scipy import ndimage as ndi

    rng = np.random.default_rng(2)
    smoothed = (rng.random((9, 40, 33)) * 4000).astype(np.float32)
    peak = ndi.maximum_filter(smoothed, size=(5, 11, 11), mode="nearest")
    expected = (smoothed > 1000.0) & (smoothed > 1000.0 + 0.5 * (peak - 1000.0))
    whole = filters.local_foreground(smoothed, 1000.0, fraction=0.5, size=(5, 11, 11))
    np.testing.assert_array_equal(whole, expected)
    margin = ((2, 3), (5, 1), (0, 4))
    core = tuple(slice(b, n - a) for n, (b, a) in zip(smoothed.shape, margin))
    got = filters.local_foreground(smoothed, 1000.0, fraction=0.5, size=(5, 11, 11), margin=margin)
    np.testing.assert_array_equal(got, expected[core])
    assert expected.any() and not expected.all()


def test_local_foreground_by_peak_margin_is_the_whole_result_cropped(strips):
    # The floor asked of the local peak (2D images): exact in every block too.
    from scipy import ndimage as ndi

    rng = np.random.default_rng(3)
    smoothed = (rng.random((1, 60, 47)) ** 8 * 4000).astype(np.float32)
    peak = ndi.maximum_filter(smoothed, size=(1, 11, 11), mode="nearest")
    expected = (peak > 3000.0) & (smoothed > 500.0 + 0.5 * (peak - 500.0))
    kw = {"fraction": 0.5, "size": (1, 11, 11), "base": 500.0, "by_peak": True}
    whole = filters.local_foreground(smoothed, 3000.0, **kw)
    np.testing.assert_array_equal(whole, expected)
    margin = ((0, 0), (5, 7), (6, 4))
    core = tuple(slice(b, n - a) for n, (b, a) in zip(smoothed.shape, margin))
    got = filters.local_foreground(smoothed, 3000.0, margin=margin, **kw)
    np.testing.assert_array_equal(got, expected[core])
    assert (expected & (smoothed < 3000.0)).any() and not expected.all()


def test_local_foreground_bright_peaks_drop_the_base_exactly_in_every_block(strips):
    # The base falls linearly from its value at peaks <= low to 0 at peaks >= high (3D
    # stacks): the formula, whole and in a block with margins, in strips or not.
    from scipy import ndimage as ndi

    rng = np.random.default_rng(5)
    shape = (7, 60, 47)
    volume = rng.normal(0.0, 20.0, shape)
    for i, value in enumerate((400.0, 700.0, 900.0, 1100.0, 3000.0, 500.0)):
        volume += _blob(shape, (3, 10 + 9 * i, 12 + 22 * (i % 2)), 4, value)
    smoothed = filters.smooth_volume(volume, (0.7, 1.2, 1.2))
    peak = ndi.maximum_filter(smoothed, size=(3, 11, 11), mode="nearest").astype(np.float64)
    floor, base, low, high = 300.0, 225.0, 600.0, 1200.0
    b = base * np.clip((high - peak) / (high - low), 0, 1)
    expected = (smoothed > floor) & (smoothed > b + 0.5 * (peak - b))
    kw = {"fraction": 0.5, "size": (3, 11, 11), "base": base, "bright": (low, high)}
    whole = filters.local_foreground(smoothed, floor, **kw)
    # float32 arithmetic in the kernel: equal but where a voxel sits on its threshold.
    threshold = b + 0.5 * (peak - b)
    close = np.abs(smoothed - threshold) < 1e-3 * np.maximum(threshold, 1)
    np.testing.assert_array_equal(whole[~close], expected[~close])
    margin = ((1, 2), (5, 7), (6, 4))
    core = tuple(slice(b_, n - a) for n, (b_, a) in zip(smoothed.shape, margin))
    got = filters.local_foreground(smoothed, floor, margin=margin, **kw)
    np.testing.assert_array_equal(got, whole[core])
    # Both ends of the ramp and its middle occur, and bright peaks gain voxels.
    assert ((peak <= low) & expected).any() and ((peak >= high) & expected).any()
    assert ((peak > low) & (peak < high) & expected).any()
    plain = filters.local_foreground(smoothed, floor, fraction=0.5, size=(3, 11, 11), base=base)
    assert (plain <= whole).all() and whole.sum() > plain.sum()
    # A step when low == high.
    step = filters.local_foreground(smoothed, floor, **{**kw, "bright": (900.0, 900.0)})
    b = np.where(peak < 900.0, base, 0.0)
    threshold = b + 0.5 * (peak - b)
    close = np.abs(smoothed - threshold) < 1e-3 * np.maximum(threshold, 1)
    np.testing.assert_array_equal(
        step[~close], ((smoothed > floor) & (smoothed > threshold))[~close]
    )


def test_local_foreground_cuts_a_bright_small_nucleus_at_its_own_half_maximum():
    # A small nucleus whose peak is well above the floor: cut from the base, it looks
    # smaller than it is; with the base dropped at bright peaks it is cut at half its peak.
    shape = (15, 40, 40)
    smoothed = filters.smooth_volume(_blob(shape, (7, 20, 20), 4, 900.0), (1.0, 1.5, 1.5))
    top = float(smoothed.max())
    floor = top / 5  # the peak is five floors
    kw = {"fraction": 0.5, "size": (3, 9, 9), "base": 0.75 * floor}
    cut_from_base = filters.local_foreground(smoothed, floor, **kw)
    own = filters.local_foreground(smoothed, floor, bright=(2 * floor, 4 * floor), **kw)
    assert (cut_from_base <= own).all() and (smoothed > 0.5 * top)[~own].sum() == 0
    assert own.sum() > 1.15 * cut_from_base.sum()
    # A dim one (peak 1.5 floors) is cut as before.
    dim = filters.local_foreground(
        smoothed,
        top / 1.5,
        bright=(2 * top / 1.5, 4 * top / 1.5),
        fraction=0.5,
        size=(3, 9, 9),
        base=0.75 * top / 1.5,
    )
    np.testing.assert_array_equal(
        dim,
        filters.local_foreground(
            smoothed, top / 1.5, fraction=0.5, size=(3, 9, 9), base=0.75 * top / 1.5
        ),
    )


def test_above_background_removes_offset_and_smooth_background_and_keeps_nuclei():
    zz, yy, xx = np.indices((8, 80, 80))
    ramp = 33000.0 + 2.0 * xx + 150.0 * np.sin(yy / 60.0)  # offset, autofluorescence
    nucleus = _blob((8, 80, 80), (4, 40, 40), 5, 500.0)
    signal = filters.above_background(ramp + nucleus, (5, 31, 31))
    assert signal.dtype == np.float32 and signal.min() >= 0
    assert signal[4, 40, 40] == pytest.approx(500.0, abs=15)
    # The background is gone, offset and all (but for a slope's last box at the edges).
    assert signal[:, 16:-16, 16:-16][nucleus[:, 16:-16, 16:-16] == 0].max() < 30


def test_above_background_margin_is_the_whole_result_cropped():
    rng = np.random.default_rng(3)
    block = rng.normal(1000, 30, (9, 60, 50)).astype(np.float32)
    whole = filters.above_background(block, (3, 11, 11))
    margin = ((2, 1), (10, 10), (0, 7))
    got = filters.above_background(block, (3, 11, 11), margin=margin)
    np.testing.assert_array_equal(got, whole[2:-1, 10:-10, 0:-7])
    assert filters.above_background(np.zeros((0, 4, 4), np.float32), (3, 3, 3)).shape == (0, 4, 4)


@pytest.mark.parametrize("compiled", ["1", "0"])
@pytest.mark.parametrize("size", [(3, 11, 11), (1, 1, 1)])
def test_above_background_leaves_its_input_alone(monkeypatch, compiled, size):
    # The result is written into the map's own buffer, never into the smoothed signal.
    monkeypatch.setenv(filters.COMPILED_VARIABLE, compiled)
    block = np.random.default_rng(5).normal(1000, 30, (5, 40, 30)).astype(np.float32)
    before = block.copy()
    got = filters.above_background(block, size, margin=((1, 1), (0, 5), (5, 0)))
    np.testing.assert_array_equal(block, before)
    assert not np.shares_memory(got, block)
    if size == (1, 1, 1):  # the opening of a single voxel is the voxel: nothing above it
        assert not got.any()


@pytest.mark.parametrize(
    ("size", "margin"),
    [
        ((3, 11, 11), ((1, 1), (0, 5), (5, 0))),
        ((5, 1, 9), ((2, 0), (3, 3), (0, 4))),  # an axis left alone
        ((19, 41, 41), ((0, 0), (0, 0), (0, 0))),  # a box wider than the block
        ((1, 1, 1), ((0, 0), (0, 0), (0, 0))),  # every axis left alone
    ],
)
def test_above_background_in_one_buffer_is_the_scipy_opening(monkeypatch, size, margin):
    # The opening's passes after the first run in place in one buffer (the maximum's
    # first one too): the values of SciPy's filters, cropped.
    rng = np.random.default_rng(11)
    block = np.round(rng.normal(1000, 30, (9, 50, 47))).astype(np.float32)  # ties too
    monkeypatch.setenv(filters.COMPILED_VARIABLE, "1")
    got = filters.above_background(block, size, margin=margin)
    monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
    np.testing.assert_array_equal(got, filters.above_background(block, size, margin=margin))


@pytest.mark.parametrize("offset", [0.0, 30000.0])
def test_floor_above_background_is_the_same_whatever_the_offset(offset):
    rng = np.random.default_rng(0)
    background = np.abs(rng.normal(0, 3, 20_000))  # the signal left by the background map
    nuclei = np.exp(rng.uniform(np.log(150), np.log(1500), 4_000))  # tenfold
    values = np.concatenate([background, nuclei])
    counts = kthreshold.linear_histogram(values, low=0.0, width=1.0, nbins=65536)
    assert counts.sum() == values.size
    floor = kthreshold.floor_above_background(counts, low=0.0, width=1.0)
    assert background.max() < floor < 150  # every nucleus above it, the noise below
    # The same signal measured from a camera offset: the same floor above it.
    shifted = kthreshold.linear_histogram(values + offset, low=offset, width=1.0, nbins=65536)
    assert kthreshold.floor_above_background(shifted, low=offset, width=1.0) == pytest.approx(
        floor + offset
    )
    empty = np.zeros(16, np.int64)
    assert kthreshold.floor_above_background(empty, low=5.0, width=1.0) == 5.0


def test_segment_signal_splits_touching_discs_of_any_size_and_fills_nucleoli():
    yy, xx = np.indices((80, 120))
    plane = np.zeros((80, 120), np.float32)
    for (cy, cx), r, value in [((20, 20), 4.5, 100.0), ((20, 29), 4.5, 900.0)]:
        plane[np.hypot(yy - cy, xx - cx) <= r] = value  # small, touching, unequal
    big = np.hypot(yy - 50, xx - 80) <= 14
    plane[big] = 300.0
    plane[np.hypot(yy - 50, xx - 80) <= 4] = 0.0  # a dark nucleolus
    labels = watershed.segment_signal(plane[None], apart=0.9, min_radius=2.0, max_radius=20.0)
    assert labels.dtype == np.int32
    assert labels[0, 20, 20] != labels[0, 20, 29] and labels[0, 20, 20] and labels[0, 20, 29]
    assert len(np.unique(labels[0][big])) == 1 and labels[0, 50, 80] == labels[0, 50, 70]
    assert not watershed.segment_signal(
        np.zeros((2, 8, 8), np.float32), apart=0.9, min_radius=1, max_radius=5
    ).any()


def _domes(shape, centres, radius, peak=100.0, base=50.0):
    """A plane of touching nuclei, each brightest at its centre (as a thick nucleus looks)."""
    yy, xx = np.indices(shape)
    plane = np.zeros(shape, np.float32)
    for cy, cx in centres:
        d = np.hypot(yy - cy, xx - cx)
        dome = peak * np.sqrt(np.clip(1 - (d / radius) ** 2, 0, 1)) + base
        plane = np.maximum(plane, np.where(d <= radius, dome, 0).astype(np.float32))
    return plane


@pytest.mark.parametrize("side", [14, 17])
def test_a_clump_larger_than_any_nucleus_is_split_at_its_peaks_of_light(side):
    # Three nuclei packed closer than their distance peaks can tell (one peak, the gap
    # between them filled as a hole), together larger than a disc of max_radius: the size
    # filter dropped all three; split at their peaks of light, each is kept.
    centres = [(30, 30), (30, 30 + side), (30 + side * np.sqrt(3) / 2, 30 + side / 2)]
    plane = _domes((80, 80), centres, radius=10.0)
    filled = watershed.filled_plane(plane > 0, max_radius=14)
    assert watershed.split_plane_apart(filled, apart=0.8).max() == 1
    kw = dict(apart=0.8, min_radius=2.0, max_radius=14.0)
    assert not watershed.segment_signal(plane[None], **kw).any()
    labels = watershed.segment_signal(plane[None], **kw, oversized=5.0)[0]
    assert sorted(labels[int(cy), int(cx)] for cy, cx in centres) == [1, 2, 3]
    assert labels.max() == 3 and (labels > 0).sum() == (filled).sum()


def test_split_oversized_leaves_other_regions_and_one_peaked_ones_alone():
    big = _domes((60, 60), [(30, 30)], radius=20.0)  # one nucleus, one peak
    labels = np.zeros((60, 60), np.int32)
    labels[big > 0] = 2
    labels[:3, :3] = 1  # a small region elsewhere
    assert watershed.split_oversized(labels, big, max_radius=10.0, spacing=4.0) is labels
    two = _domes((60, 90), [(30, 25), (30, 62)], radius=18.0)
    labels = (two > 0).astype(np.int32)  # touching domes as one region (a distance split missed)
    labels[0, 0] = 2
    out = watershed.split_oversized(labels, two, max_radius=20.0, spacing=4.0)
    assert out[30, 25] == 1 and out[30, 62] == 3 and out[0, 0] == 2
    assert np.array_equal(labels > 0, out > 0) and out is not labels
    area = watershed.region_areas(labels)
    assert np.array_equal(area, np.bincount(labels.ravel()))
    assert np.array_equal(
        watershed.split_oversized(labels, two, max_radius=20.0, spacing=4.0, area=area), out
    )


@pytest.mark.parametrize(
    ("sigma", "dtype"), [(3.0, np.uint16), (20.0, np.uint16), (7.5, np.float32)]
)
def test_noise_of_differences_is_the_noise_s_standard_deviation(sigma, dtype):
    # Gaussian noise over an offset, with bright discs on a tenth of the pixels: their
    # edges are few of the neighbours, their insides noise like the rest.
    rng = np.random.default_rng(int(sigma))
    yy, xx = np.mgrid[:256, :256]
    discs = np.zeros((256, 256))
    for cy, cx in rng.uniform(20, 236, (12, 2)):
        discs[(yy - cy) ** 2 + (xx - cx) ** 2 < 81] = 2000.0
    image = (1000.0 + discs + rng.normal(0, sigma, (2, 256, 256))).astype(dtype)
    width = 1.0 if dtype == np.uint16 else 0.05
    counts = kthreshold.difference_histogram(image, start=0, stop=255, width=width)
    assert counts.sum() == 2 * 256 * 255
    noise = kthreshold.noise_of_differences(counts, width=width)
    assert noise == pytest.approx(sigma, rel=0.05)


@pytest.mark.parametrize("sigma", [0.6, 1.0, 2.0])
def test_noise_of_differences_of_an_8_bit_image_under_a_few_grey_levels(sigma):
    # A quarter or more of the neighbours are equal: the noise is the Gaussian's whose
    # rounded differences are 0 as often (grey levels 256 bins apart here).
    image = np.random.default_rng(7).normal(20, sigma, (1, 384, 384)).round().astype(np.uint8)
    counts = kthreshold.difference_histogram(image, start=0, stop=383, width=1 / 256)
    noise = kthreshold.noise_of_differences(counts, width=1 / 256, step=1.0)
    assert noise == pytest.approx(sigma, rel=0.12)
    flat = np.full((1, 64, 64), 7, np.uint8)  # no noise
    counts = kthreshold.difference_histogram(flat, start=0, stop=63, width=1 / 256)
    assert kthreshold.noise_of_differences(counts, width=1 / 256, step=1.0) == 0.0
    assert kthreshold.noise_of_differences(np.zeros(8, np.int64), width=1.0) == 0.0


def test_floor_of_a_histogram_of_noise_alone_is_a_multiple_of_the_noise():
    # The signal above the background map of a frame without nuclei: one mode, which
    # Otsu splits; a noise of 1 puts the floor at NOISE_FLOOR noises, above it all.
    rng = np.random.default_rng(3)
    background = np.abs(rng.normal(0, 3, 50_000))
    counts = kthreshold.linear_histogram(background, low=0.0, width=1.0, nbins=65536)
    otsu = kthreshold.floor_above_background(counts, low=0.0, width=1.0)
    assert otsu < background.max()  # the noise split: hundreds of specks
    floor = kthreshold.floor_above_background(counts, low=0.0, width=1.0, noise=1.0)
    assert floor == kthreshold.NOISE_FLOOR * 1.0 > background.max()
    # Nuclei far above the noise keep Otsu's floor, whatever the noise says.
    nuclei = np.exp(rng.uniform(np.log(150), np.log(1500), 4_000))
    both = kthreshold.linear_histogram(
        np.concatenate([background, nuclei]), low=0.0, width=1.0, nbins=65536
    )
    kept = kthreshold.floor_above_background(both, low=0.0, width=1.0)
    assert kthreshold.floor_above_background(both, low=0.0, width=1.0, noise=1.0) == kept
    assert kept > kthreshold.FLOOR_APART * 1.0


@pytest.mark.parametrize(("planes", "scale"), [(40, (1.5, 0.71, 0.71)), (1, (1.0, 0.71, 0.71))])
def test_smoothing_gain_is_the_standard_deviation_of_smoothed_white_noise(planes, scale):
    from bigseg import Params
    from bigseg.methods import default as dm

    params = Params()
    noise = np.random.default_rng(1).normal(0, 1, (planes, 160, 160)).astype(np.float32)
    lp = dm.local_pixels(params, scale)
    smoothed = filters.smooth_volume(noise, lp.sigma)
    inside = smoothed[min(5, planes // 2) : max(planes - 5, 1), 10:-10, 10:-10]
    assert dm.smoothing_gain(params, scale, planes) == pytest.approx(inside.std(), rel=0.05)


@pytest.mark.parametrize("planes", [1, 2, 5, 48])
def test_smoothing_gain_is_that_of_the_compiled_smoothing_bit_for_bit(planes):
    # smoothing_gain smooths its impulse with SciPy (no numba where the graph is built).
    from bigseg import Params
    from bigseg.methods import default as dm

    params, scale = Params(), (1.5, 0.71, 0.71)
    lp = dm.local_pixels(params, scale)
    reach = [filters.gaussian_reach(s) for s in lp.sigma]
    reach[0] = min(reach[0], (planes - 1) // 2)
    impulse = np.zeros([2 * r + 1 for r in reach], np.float32)
    impulse[tuple(reach)] = 1.0
    assert filters.compiled_kernels()
    weights = filters.smooth_volume(impulse, lp.sigma).astype(np.float64)
    assert dm.smoothing_gain(params, scale, planes) == float(np.sqrt(np.sum(weights**2)))
