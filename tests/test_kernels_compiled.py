"""The compiled kernels give exactly the values of the SciPy / NumPy code they replace."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from bigseg.kernels import filters
from bigseg.kernels import lut as lut_kernels

# --- box extremes -------------------------------------------------------------------------

BOX_CASES = [
    ((9, 40, 33), (3, 11, 11)),
    ((5, 7, 3), (19, 41, 41)),  # a box wider than the array
    ((12, 50, 60), (5, 1, 7)),  # an axis left alone
    ((1, 1, 1), (3, 3, 3)),  # one voxel
    ((3, 300), (1, 21)),  # 2D, more columns than one buffer holds
    ((700,), (9,)),  # 1D
    ((2, 37, 90), (1, 1, 41)),  # lines along x in tiles of 16, the last one part full
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("maximum", [True, False])
@pytest.mark.parametrize(("shape", "size"), BOX_CASES)
def test_box_extreme_is_scipy_filter(shape, size, maximum, dtype):
    rng = np.random.default_rng(len(shape) + sum(size))
    values = rng.normal(1000, 30, shape).astype(dtype)
    filt = ndi.maximum_filter if maximum else ndi.minimum_filter
    expected = filt(values, size=size, mode="nearest")
    got = filters.box_extreme(values, size, maximum=maximum)
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    keep = tuple((min(1, n - 1), n - (n > 3)) for n in shape)
    got = filters.box_extreme(values, size, maximum=maximum, keep=keep)
    np.testing.assert_array_equal(got, expected[tuple(slice(lo, hi) for lo, hi in keep)])


@pytest.mark.parametrize("maximum", [True, False])
def test_box_extreme_along_lines_is_scipy_filter_with_ties_and_kept_ranges(maximum):
    # The last axis runs windows doubling in length: every width from one value to wider
    # than the line, lines whose kept range starts and stops anywhere, many equal values.
    rng = np.random.default_rng(7)
    filt = ndi.maximum_filter if maximum else ndi.minimum_filter
    for _ in range(150):
        n, lines, size = int(rng.integers(1, 90)), int(rng.integers(1, 6)), int(rng.integers(0, 40))
        values = np.round(rng.normal(0, 2, (lines, n))).astype(np.float32)
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo, n + 1))
        got = filters.box_extreme(
            values, (1, 2 * size + 1), maximum=maximum, keep=((0, lines), (lo, hi))
        )
        expected = filt(values, size=(1, 2 * size + 1), mode="nearest")[:, lo:hi]
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("maximum", [True, False])
def test_box_extreme_edge_cases(maximum):
    filt = ndi.maximum_filter if maximum else ndi.minimum_filter
    empty = np.zeros((0, 4, 4), np.float32)
    assert filters.box_extreme(empty, (3, 3, 3), maximum=maximum).shape == (0, 4, 4)
    equal = np.full((4, 9, 9), 7.5, np.float32)
    np.testing.assert_array_equal(filters.box_extreme(equal, (3, 5, 5), maximum=maximum), equal)
    inf = np.zeros((3, 8, 8), np.float32)
    inf[1, 4, 4], inf[0, 0, 0] = np.inf, -np.inf
    np.testing.assert_array_equal(
        filters.box_extreme(inf, (3, 3, 3), maximum=maximum),
        filt(inf, size=(3, 3, 3), mode="nearest"),
    )
    # NaN: SciPy's own choice of picks (the compiled loop hands over).
    nan = np.random.default_rng(0).random((4, 20, 20)).astype(np.float32)
    nan[2, 5, 7] = np.nan
    np.testing.assert_array_equal(
        filters.box_extreme(nan, (3, 5, 5), maximum=maximum),
        filt(nan, size=(3, 5, 5), mode="nearest"),
    )
    # Even sizes and integer dtypes go through SciPy too.
    ints = np.random.default_rng(1).integers(0, 4000, (4, 20, 20)).astype(np.uint16)
    for values, size in [(ints, (3, 5, 5)), (nan, (2, 4, 4)), (ints.astype(np.float32), (2, 3, 3))]:
        np.testing.assert_array_equal(
            filters.box_extreme(values, size, maximum=maximum),
            filt(values, size=size, mode="nearest"),
        )


# --- label writing (NumPy indexing, checked here beside the compiled kernels) ---------------


def _indexed(block, lut):
    out = np.zeros(block.shape, lut.dtype)
    for t in range(min(block.shape[0], lut.shape[0])):
        for z in range(min(block.shape[1], lut.shape[1])):
            table = np.concatenate([lut[t, z], np.zeros(int(block.max()) + 1, lut.dtype)])
            if block[t, z].any():
                out[t, z] = table[block[t, z]]
    return out


@pytest.mark.parametrize("lut_dtype", [np.uint32, np.int64])
def test_apply_lut_is_numpy_indexing(lut_dtype):
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    rng = np.random.default_rng(7)
    block = rng.integers(0, 30, (2, 3, 17, 19)).astype(np.int32)
    block[block < 10] = 0
    block[1, 2] = 0  # an empty plane
    block[0, 1] = 0  # and one the table covers
    lut = rng.integers(1, 10**6, (2, 2, 25)).astype(lut_dtype)  # planes and labels beyond it
    lut[:, :, 0] = 0
    got = lut_kernels.apply_lut(block, lut)
    assert got.dtype == lut_dtype
    np.testing.assert_array_equal(got, _indexed(block, lut))
    lut[0, :, 0] = 5  # tables mapping the background too (an empty plane's): NumPy's way
    np.testing.assert_array_equal(lut_kernels.apply_lut(block, lut), _indexed(block, lut))
    empty = np.zeros((0, 0, 1), lut_dtype)
    np.testing.assert_array_equal(lut_kernels.apply_lut(block, empty), np.zeros_like(block))
    one = np.ones((1, 1, 1, 1), np.int32)
    assert lut_kernels.apply_lut(one, np.array([[[0, 4]]], lut_dtype)).item() == 4


def test_compiled_kernels_turned_off_give_the_same_values(monkeypatch):
    # BIGSEG_COMPILED=0 (set for small local workers): SciPy's filters, the same values.
    values = np.random.default_rng(4).random((6, 40, 50), dtype=np.float32)
    keep = ((1, 5), (3, 37), (0, 50))
    compiled = filters.box_extreme(values, (3, 7, 9), maximum=True, keep=keep)
    assert filters.compiled_kernels()
    monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
    assert not filters.compiled_kernels()
    calls = []
    real = filters._scipy_extreme
    monkeypatch.setattr(filters, "_scipy_extreme", lambda *a: calls.append(1) or real(*a))
    plain = filters.box_extreme(values, (3, 7, 9), maximum=True, keep=keep)
    assert calls  # SciPy's path was taken
    np.testing.assert_array_equal(plain, compiled)


def test_a_process_with_the_compiled_kernels_turned_off_never_imports_numba(tmp_path):
    # The background map called the compiled loop directly: workers told to skip numba
    # (BIGSEG_COMPILED=0) imported it on their first block all the same (+128 MiB kept
    # of a 512 MiB worker). The default method end to end, in a fresh process.
    import os
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, bigseg\n"
        "from bigseg.synth import make_truth, render\n"
        "scale = (1.5, 0.71, 0.71)\n"
        "truth = make_truth((8, 96, 96), 6, scale=scale, seed=1, radius_um=(3.0, 5.0))\n"
        "data = render(truth, (0, 0, 0, 0), (1, 8, 96, 96), scale=scale, noise_seed=1)[0]\n"
        "labels = bigseg.segment(bigseg.as_stack(data, scale=scale)).values\n"
        "assert labels.max() > 0\n"
        "print('numba' in sys.modules)\n"
    )
    env = {**os.environ, filters.COMPILED_VARIABLE: "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("limit", "small"),
    [
        ("512MiB", True),
        ("767MiB", True),
        ("768MiB", False),
        ("4GiB", False),
        ("auto", False),
        ("0.5", False),
    ],  # fmt: skip
)
def test_small_local_workers_run_without_the_compiled_kernels(limit, small):
    from bigseg.cli import _small_workers

    assert _small_workers(limit) is small


# --- the floor's histogram ----------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype", [np.float32, np.float64, np.uint16, np.uint8, np.int32, np.int64, np.uint64]
)
@pytest.mark.parametrize(("low", "width", "nbins"), [(0.0, 1.0, 65536), (-3.5, 0.37, 1000)])
def test_linear_histogram_is_numpy(dtype, low, width, nbins):
    from bigseg.kernels import threshold

    rng = np.random.default_rng(nbins)
    values = rng.normal(50, 400, (5, 33, 47))
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        values = np.clip(values, max(info.min, -(2**40)), min(info.max, 2**40))
    values = values.astype(dtype)
    got = threshold.linear_histogram(values, low=low, width=width, nbins=nbins)
    expected = threshold._linear_histogram(values, low=low, width=width, nbins=nbins)
    assert got.dtype == np.int64 and got.shape == (nbins,)
    assert got.sum() == values.size
    np.testing.assert_array_equal(got, expected)
    # A view that is not contiguous counts the same.
    view = values[:, ::2, 1:]
    np.testing.assert_array_equal(
        threshold.linear_histogram(view, low=low, width=width, nbins=nbins),
        threshold._linear_histogram(view, low=low, width=width, nbins=nbins),
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint16, np.uint8, np.int32])
@pytest.mark.parametrize(
    ("start", "stop", "width"),
    [(0, 46, 1.0), (3, 40, 0.37), (5, 5, 1.0), (1, 46, 1 / 256), (0, 46, 4.0)],
)
def test_difference_histogram_is_numpy(dtype, start, stop, width):
    # Integer data in bins of a power of 2 are counted by shifts; the rest by division.
    from bigseg.kernels import threshold

    rng = np.random.default_rng(stop)
    values = rng.normal(20, 40, (4, 9, 47))
    if np.dtype(dtype).kind in "iu":
        values = np.clip(values, 0 if np.dtype(dtype).kind == "u" else -100, np.iinfo(dtype).max)
    values = values.astype(dtype)
    values[1, 2, 7] = values[1, 2, 8]  # equal neighbours: the first bin
    for volume in (values, values[:, ::2, 1:]):  # a view that is not contiguous too
        got = threshold.difference_histogram(volume, start=start, stop=stop, width=width, nbins=700)
        pairs = volume[..., start : stop + 1].astype(np.float64)  # (46: the last pairs)
        expected = threshold._linear_histogram(
            np.abs(np.diff(pairs, axis=-1)), low=0.0, width=width, nbins=700
        )
        assert got.dtype == np.int64 and got.sum() == expected.sum()
        np.testing.assert_array_equal(got, expected)


def test_difference_histogram_turned_off_is_the_same(monkeypatch):
    from bigseg.kernels import threshold

    volume = np.random.default_rng(1).normal(0, 5, (3, 20, 31)).astype(np.float32)
    volume[0, 0, 4] = np.nan
    compiled = threshold.difference_histogram(volume, start=1, stop=30, width=0.5, nbins=64)
    monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
    calls = []
    real = threshold._linear_histogram
    counted = lambda *a, **k: calls.append(1) or real(*a, **k)  # noqa: E731
    monkeypatch.setattr(threshold, "_linear_histogram", counted)
    plain = threshold.difference_histogram(volume, start=1, stop=30, width=0.5, nbins=64)
    assert calls  # NumPy's path was taken
    np.testing.assert_array_equal(compiled, plain)
    assert compiled[0] >= 2  # NaN's two differences count in the first bin


def test_linear_histogram_edge_values_are_numpy():
    from bigseg.kernels import threshold

    values = np.array(
        [np.nan, np.inf, -np.inf, -1.0, 0.0, 0.5, 1.0, 9.999999, 10.0, 10.5, 11.0, 1e300, -0.0],
        np.float64,
    )
    for low, width, nbins in [(0.0, 1.0, 11), (0.0, 0.0, 4), (1.0, 1e-310, 3), (-1e308, 1e308, 5)]:
        for dtype in (np.float64, np.float32):
            with np.errstate(over="ignore", invalid="ignore"):
                v = values.astype(dtype)  # 1e300 is inf as float32
                expected = threshold._linear_histogram(v, low=low, width=width, nbins=nbins)
            got = threshold.linear_histogram(v, low=low, width=width, nbins=nbins)
            np.testing.assert_array_equal(got, expected)
    assert threshold.linear_histogram(
        np.zeros(0, np.float32), low=0, width=1, nbins=3
    ).tolist() == [
        0,
        0,
        0,
    ]


def test_linear_histogram_turned_off_is_the_same(monkeypatch):
    from bigseg.kernels import threshold

    values = np.random.default_rng(5).random((4, 30, 30), dtype=np.float32) * 70000
    compiled = threshold.linear_histogram(values, low=0.0, width=1.0, nbins=65536)
    monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
    calls = []
    real = threshold._linear_histogram
    monkeypatch.setattr(
        threshold, "_linear_histogram", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    plain = threshold.linear_histogram(values, low=0.0, width=1.0, nbins=65536)
    assert calls
    np.testing.assert_array_equal(plain, compiled)


# --- distance peaks of labelled planes ----------------------------------------------------


def _peak_cases():
    from scipy import ndimage

    rng = np.random.default_rng(7)
    for trial in range(240):
        shape = tuple(int(n) for n in rng.integers(1, 36, 2))
        kind = trial % 4
        if kind == 0:  # many ties
            image = rng.integers(0, 4, shape).astype(np.float64)
        elif kind == 1:  # distances, as the markers use them
            image = ndimage.distance_transform_edt(rng.random(shape) > 0.4)
        elif kind == 2:  # one plateau
            image = np.full(shape, float(rng.integers(0, 3)))
        else:
            image = rng.random(shape).astype(np.float32)
        if trial % 3 == 0:  # components, diagonal neighbours of other labels included
            labels = ndimage.label(rng.random(shape) > 0.3)[0]
        elif trial % 3 == 1:  # labels in pieces, touching each other
            labels = rng.integers(0, 4, shape)
        else:
            labels = ndimage.label(image > 0)[0]
        yield image, labels


def test_label_peaks_is_peak_local_max():
    from skimage.feature import peak_local_max

    from bigseg.kernels import watershed as kw

    for image, labels in _peak_cases():
        expected = peak_local_max(image, min_distance=1, labels=labels, exclude_border=False)
        got = kw.label_peaks(image, labels)
        np.testing.assert_array_equal(got, expected)


def test_label_peaks_edge_cases():
    from skimage.feature import peak_local_max

    from bigseg.kernels import watershed as kw

    def same(image, labels):
        expected = peak_local_max(image, min_distance=1, labels=labels, exclude_border=False)
        np.testing.assert_array_equal(kw.label_peaks(image, labels), expected)

    same(np.zeros((5, 5)), np.zeros((5, 5), np.int32))  # no label
    same(np.ones((6, 7)), np.ones((6, 7), np.int32))  # one label, all of the plane, flat
    one = np.zeros((5, 5), np.int32)
    one[2, 2] = 1
    same(np.arange(25.0).reshape(5, 5), one)  # a one-pixel label
    line = np.zeros((7, 9), np.int32)
    line[3, 1:8] = 4  # a line: every pixel a maximum (scikit-image's special case)
    same(np.where(line > 0, 1.0, 0.0), line)
    nan = np.random.default_rng(2).random((8, 8))
    nan[3, 3] = np.nan  # NaN: scikit-image's own code
    same(nan, np.ones((8, 8), np.int32))


def test_markers_apart_are_those_of_peak_local_max():
    # markers_apart before the compiled peaks, written out: the same markers, in order.
    from scipy import ndimage
    from skimage.feature import peak_local_max

    from bigseg import synth
    from bigseg.kernels import watershed as kw

    def markers_before(distance, components, apart):
        peaks = peak_local_max(distance, min_distance=1, labels=components, exclude_border=False)
        heights = distance[tuple(peaks.T)]
        owner = components[tuple(peaks.T)]
        kept = []
        for i in np.lexsort((peaks[:, 1], peaks[:, 0], -heights)):
            mine = [j for j in kept if owner[j] == owner[i]]
            if mine:
                gap = np.hypot(*(peaks[mine] - peaks[i]).T)
                if np.any(gap < apart * (heights[mine] + heights[i])):
                    continue
            kept.append(int(i))
        return peaks[np.sort(np.asarray(kept, int))]

    scale = (1.5, 0.71, 0.71)
    truth = synth.make_truth((6, 160, 160), 40, scale=scale, seed=3, radius_um=(3.0, 6.0))
    data = synth.render(truth, (0, 0, 0, 0), (1, 6, 160, 160), scale=scale, noise_seed=3)[0]
    for plane in data:
        binary = plane > np.percentile(plane, 70)
        distance = kw.distance_to_background(binary)
        components = ndimage.label(binary)[0]
        for apart in (0.5, 0.9, 1.3):
            np.testing.assert_array_equal(
                kw.markers_apart(distance, components, apart=apart),
                markers_before(distance, components, apart),
            )


# --- Gaussian smoothing -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.int32, np.float32])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("sigma", [0.3, 0.79, 1.67, 4.0])
def test_gaussian_axis_is_scipy(dtype, axis, sigma):
    rng = np.random.default_rng(int(sigma * 10) + axis)
    values = (rng.random((9, 23, 700)) * 3000).astype(dtype)  # more columns than one buffer
    expected = ndi.gaussian_filter1d(
        values, sigma, axis=axis, output=np.float32, mode="nearest", truncate=filters.TRUNCATE
    )
    np.testing.assert_array_equal(filters._gaussian_axis(values, sigma, axis, None), expected)
    # In place on a strided float32 view (as the smoothing filters its cropped pieces).
    base = rng.random((11, 25, 40)).astype(np.float32)
    view = base[1:10, 2:24, 3:38]
    expected = ndi.gaussian_filter1d(view, sigma, axis=axis, mode="nearest", truncate=3.0)
    assert filters._gaussian_axis(view, sigma, axis, view) is view
    np.testing.assert_array_equal(view, expected)


def test_smooth_volume_compiled_is_scipy(monkeypatch):
    rng = np.random.default_rng(11)
    for trial in range(40):
        shape = tuple(int(n) for n in rng.integers(1, 30, 3))
        dtype = [np.uint16, np.float32, np.uint8][trial % 3]
        values = (rng.random(shape) * 4000).astype(dtype)
        sigma = tuple(float(s) for s in rng.choice([0.0, 0.3, 0.79, 1.67, 3.0], 3))
        margin = tuple((int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(3))
        compiled = filters.smooth_volume(values, sigma, margin=margin)
        monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
        plain = filters.smooth_volume(values, sigma, margin=margin)
        monkeypatch.delenv(filters.COMPILED_VARIABLE)
        np.testing.assert_array_equal(compiled, plain)
    # The whole block's: SciPy's gaussian_filter itself.
    values = (rng.random((12, 64, 64)) * 4000).astype(np.uint16)
    expected = ndi.gaussian_filter(
        values.astype(np.float32), (0.79, 1.67, 1.67), mode="nearest", truncate=filters.TRUNCATE
    )
    np.testing.assert_array_equal(filters.smooth_volume(values, (0.79, 1.67, 1.67)), expected)
    # A plane (2D) too.
    plane = values[3]
    np.testing.assert_array_equal(
        filters.smooth_volume(plane, (1.67, 1.67)),
        ndi.gaussian_filter(plane.astype(np.float32), 1.67, mode="nearest", truncate=3.0),
    )


def test_filled_plane_is_remove_small_holes():
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    from skimage.morphology import remove_small_holes

    from bigseg.kernels.watershed import filled_plane

    rng = np.random.default_rng(11)
    planes = [rng.random(rng.integers(1, 70, 2)) < rng.random() for _ in range(300)]
    planes += [np.ones((5, 7), bool), np.zeros((5, 7), bool), np.ones((1, 1), bool)]
    planes += [np.zeros((1, 1), bool), (rng.random((40, 60)) < 0.6)[::2, ::3]]  # a view
    for i, plane in enumerate(planes):
        radius = (0.0, 0.4, 0.6, 1.0, 2.0, 3.5, 20.0)[i % 7]
        want = remove_small_holes(plane, max_size=int(np.pi * radius**2))
        got = filled_plane(plane, max_radius=radius)
        assert got.dtype == bool and got.shape == plane.shape
        np.testing.assert_array_equal(got, want, err_msg=f"plane {i}, radius {radius}")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint16, np.uint8])
def test_filter_sizes_compiled_is_numpy(monkeypatch, dtype):
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    from bigseg.kernels.watershed import filter_sizes

    rng = np.random.default_rng(12)
    blocks = [rng.integers(0, rng.integers(1, 60), rng.integers(1, 50, 2)) for _ in range(200)]
    blocks += [np.zeros((4, 4), int), rng.integers(0, 9, (30, 40))[1::2, ::3]]  # a view
    for i, labels in enumerate(blocks):
        labels = labels.astype(dtype)
        got = filter_sizes(labels, min_radius=0.6, max_radius=2.5)
        monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
        want = filter_sizes(labels, min_radius=0.6, max_radius=2.5)
        monkeypatch.delenv(filters.COMPILED_VARIABLE)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want, err_msg=f"block {i}")
    negative = np.array([[1, -1], [2, 2]], np.int32)  # NumPy's error, compiled or not
    with pytest.raises(ValueError):
        filter_sizes(negative, min_radius=0.1, max_radius=5.0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_median_at_compiled_is_the_gathered_median(monkeypatch, dtype):
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    # The sliding histogram (kernels._compiled.median_runs) against the windows gathered and
    # ranked (BIGSEG_COMPILED=0): pixels in row-major runs with gaps, in any order, repeated.
    rng = np.random.default_rng(13)
    top = int(np.iinfo(dtype).max)
    for i in range(150):
        ny, nx = (int(v) for v in rng.integers(1, 45, 2))
        high = int(rng.choice([1, 3, 255, 4095, top]))
        plane = rng.integers(0, min(high, top) + 1, (ny, nx)).astype(dtype)
        if i % 5 == 0:
            plane[:, : nx // 2] = top  # the highest value: the padding's, in the NumPy path
        ys, xs = np.nonzero(rng.random((ny, nx)) < rng.random())
        if i % 3 == 1:  # any order, some pixels twice
            pick = rng.integers(0, ys.size, ys.size) if ys.size else np.zeros(0, int)
            ys, xs = ys[pick], xs[pick]
        radius = int(rng.integers(0, 8))
        got = filters._median_at(plane, ys, xs, radius)
        monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
        want = filters._median_at(plane, ys, xs, radius)
        monkeypatch.delenv(filters.COMPILED_VARIABLE)
        assert got.dtype == want.dtype == np.uint16
        np.testing.assert_array_equal(got, want, err_msg=f"case {i}, radius {radius}")


def test_small_calls_load_numba_only_where_it_is_loaded_already(monkeypatch):
    assert filters.compiled_pays(filters.COMPILED_PAYS)
    monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
    assert not filters.compiled_pays(filters.COMPILED_PAYS)  # turned off: never


# --- distance and flooding of planes --------------------------------------------------------


def _planes(rng, count):
    """Boolean planes of every kind: sizes 1-70 px, densities, discs, one row, one column."""
    for i in range(count):
        ny, nx = (int(v) for v in rng.integers(1, 70, 2))
        if i % 4 == 3:  # discs, touching and not: what the kernels split
            yy, xx = np.mgrid[:ny, :nx]
            plane = np.zeros((ny, nx), bool)
            for _ in range(int(rng.integers(1, 6))):
                cy, cx, r = rng.uniform(0, ny), rng.uniform(0, nx), rng.uniform(1, 12)
                plane |= (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
            yield plane
        else:
            yield rng.random((ny, nx)) < rng.uniform(0.2, 0.99)


def test_distance_to_background_compiled_is_scipy_edt():
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    from bigseg.kernels import _compiled
    from bigseg.kernels.watershed import distance_to_background

    rng = np.random.default_rng(21)
    planes = list(_planes(rng, 300))
    planes += [np.zeros((6, 9), bool), np.ones((1, 30), bool) | (np.arange(30) == 7)[None]]
    planes += [~(np.arange(40) == 39)[:, None], (rng.random((50, 60)) < 0.9)[1::2, ::3]]  # a view
    for i, plane in enumerate(planes):
        want = ndi.distance_transform_edt(plane)
        got = distance_to_background(plane)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, want, err_msg=f"plane {i}")
    # A plane without background: the compiled pass declines, the box transform answers.
    full = np.ones((5, 8), bool)
    assert not _compiled.plane_distance(full, np.empty(full.shape))
    np.testing.assert_array_equal(distance_to_background(full), ndi.distance_transform_edt(full))


def test_flood_is_skimage_watershed_where_marker_levels_differ():
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    from skimage.segmentation import watershed

    from bigseg.kernels.watershed import flood, flood_levels, markers_apart

    rng = np.random.default_rng(22)
    for i, plane in enumerate(_planes(rng, 300)):
        if i % 2:  # what the kernels flood: flood_levels of the distance from split markers
            distance = ndi.distance_transform_edt(plane)
            components = ndi.label(plane)[0]
            peaks = markers_apart(distance, components, apart=0.8)
            seeds = np.zeros(plane.shape, bool)
            seeds[tuple(peaks.T)] = True
            markers = ndi.label(seeds)[0]
            levels = flood_levels(distance, peaks)
        else:  # any whole-number levels, many ties; markers of distinct levels, some outside
            levels = rng.integers(-5, int(rng.integers(1, 30)), plane.shape).astype(np.float64)
            where = rng.choice(plane.size, min(plane.size, int(rng.integers(1, 9))), replace=False)
            markers = np.zeros(plane.size, np.int32)
            markers[where] = rng.integers(1, 5, where.size)
            markers = markers.reshape(plane.shape)
            flat = levels.reshape(-1)
            flat[where] = rng.choice(60, where.size, replace=False) - 30
        want = watershed(levels, markers, mask=plane)
        got = flood(levels, markers, plane)
        assert got.dtype == np.int32
        np.testing.assert_array_equal(got, want, err_msg=f"plane {i}")


def test_flood_hands_other_levels_to_skimage(monkeypatch):
    from skimage.segmentation import watershed

    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path
    from bigseg.kernels import _compiled
    from bigseg.kernels import watershed as kw

    rng = np.random.default_rng(23)
    mask = rng.random((30, 40)) < 0.8
    markers = np.zeros(mask.shape, np.int32)
    markers[[3, 20, 25], [5, 30, 8]] = [1, 2, 3]
    fractions = rng.random(mask.shape)  # levels that are not whole numbers
    out = np.empty(mask.shape, np.int32)
    assert not _compiled.flood(fractions, markers, mask, out, 10**6)
    np.testing.assert_array_equal(
        kw.flood(fractions, markers, mask), watershed(fractions, markers, mask=mask)
    )
    wide = np.round(fractions * 1e7)  # levels spanning more than FLOOD_LEVELS per pixel
    assert not _compiled.flood(wide, markers, mask, out, kw.FLOOD_LEVELS * mask.size)
    np.testing.assert_array_equal(
        kw.flood(wide, markers, mask), watershed(wide, markers, mask=mask)
    )
    monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")  # turned off: scikit-image's own
    levels = np.round(fractions * 10)
    np.testing.assert_array_equal(
        kw.flood(levels, markers, mask), watershed(levels, markers, mask=mask)
    )


def test_label_plane_compiled_is_scipy_label():
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    from bigseg.kernels.watershed import label_plane

    rng = np.random.default_rng(24)
    planes = list(_planes(rng, 300))
    comb = np.zeros((40, 41), bool)  # a comb joined at the bottom: many provisional labels
    comb[:, ::2], comb[-1] = True, True
    planes += [comb, ~comb, np.ones((1, 1), bool), np.zeros((3, 1), bool), ~comb[::3, 1::2]]
    for i, plane in enumerate(planes):
        for value in (True, False):
            want, n = ndi.label(plane if value else ~plane)
            got, counts = label_plane(plane, value)
            assert got.dtype == np.int32 and counts.size == n + 1
            np.testing.assert_array_equal(got, want, err_msg=f"plane {i}, {value}")
            np.testing.assert_array_equal(counts, np.bincount(want.ravel(), minlength=n + 1))


def test_spaced_peaks_compiled_is_peak_local_max(monkeypatch):
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    from skimage.feature import peak_local_max

    from bigseg.kernels import watershed as kw
    from bigseg.kernels.watershed import spaced_peaks

    handed = []  # the calls handed to scikit-image (its special cases)
    monkeypatch.setattr(
        kw, "peak_local_max", lambda *a, **k: handed.append(1) or peak_local_max(*a, **k)
    )
    rng = np.random.default_rng(25)
    planes = list(_planes(rng, 300))
    planes += [np.ones((30, 30), bool), np.zeros((20, 20), bool), np.eye(25, dtype=bool)]
    for i, plane in enumerate(planes):
        for image in (ndi.distance_transform_edt(plane), rng.random(plane.shape).round(1)):
            for md in (1, 2, 4, 8):
                want = peak_local_max(image, min_distance=md, labels=plane)
                got = spaced_peaks(image, plane, min_distance=md)
                np.testing.assert_array_equal(got, want, err_msg=f"plane {i}, {md}")
    assert len(handed) < 0.05 * len(planes) * 2 * 4  # the compiled loops answered the rest


def test_markers_apart_compiled_is_the_loop_and_numbered_as_labelled(monkeypatch):
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    from bigseg.kernels.watershed import _numbered, label_plane, markers_apart

    rng = np.random.default_rng(26)
    for i, plane in enumerate(_planes(rng, 300)):
        distance = ndi.distance_transform_edt(plane)
        components = ndi.label(plane)[0]
        for apart in (0.5, 0.8, 1.3):
            got = markers_apart(distance, components, apart=apart)
            monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
            want = markers_apart(distance, components, apart=apart)
            monkeypatch.delenv(filters.COMPILED_VARIABLE)
            np.testing.assert_array_equal(got, want, err_msg=f"plane {i}, apart {apart}")
            # Numbered in raster order without labelling the plane: label_plane's numbers.
            mask = np.zeros(plane.shape, bool)
            mask[tuple(got.T)] = True
            np.testing.assert_array_equal(_numbered(got, plane.shape, apart), label_plane(mask)[0])


def test_smoothed_above_disk_extremes_compiled_are_the_filters(monkeypatch):
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    rng = np.random.default_rng(27)
    masks = list(_planes(rng, 200)) + [np.zeros((9, 7), bool), np.ones((9, 7), bool)]
    for i, mask in enumerate(masks):
        radius = int(rng.integers(0, 9))
        plane = rng.integers(0, 4000, mask.shape).astype(np.uint16)
        ys, xs = np.nonzero(mask)
        hi, lo = filters._disk_extremes_at(plane, ys, xs, radius)
        np.testing.assert_array_equal(hi, filters.disk_max(plane, radius)[ys, xs], f"{i}")
        np.testing.assert_array_equal(lo, filters.disk_min(plane, radius)[ys, xs], f"{i}")
    # The whole kernel, compiled or not.
    for i in range(40):
        plane = (rng.random((60, 70)) * 3000).astype(np.uint16)
        plane[20:40, 10:50] += 1500
        got = filters.smoothed_above(plane, 1800.0, 4)
        monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
        want = filters.smoothed_above(plane, 1800.0, 4)
        monkeypatch.delenv(filters.COMPILED_VARIABLE)
        np.testing.assert_array_equal(got, want, err_msg=f"plane {i}")
        np.testing.assert_array_equal(got, filters.smooth_plane(plane, 4) > 1800.0)


def test_region_box_max_compiled_is_a_maximum_filter_per_region(monkeypatch):
    import bigseg.kernels._compiled  # noqa: F401 - numba loaded: the compiled path

    assert filters.compiled_pays(1)
    rng = np.random.default_rng(21)
    for i in range(200):
        shape = tuple(int(n) for n in rng.integers(1, 60, 2))
        values = rng.random(shape).astype(np.float32)
        regions, _ = ndi.label(ndi.gaussian_filter(rng.random(shape), 1.5) > 0.5)
        regions = regions.astype(np.int32)
        size = tuple(int(s) for s in rng.choice([1, 3, 5, 9], 2))
        got = filters.region_box_max(values, regions, size)
        monkeypatch.setenv(filters.COMPILED_VARIABLE, "0")
        want = filters.region_box_max(values, regions, size)
        monkeypatch.delenv(filters.COMPILED_VARIABLE)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w, err_msg=f"plane {i}")
        inside = regions > 0
        box = filters.box_extreme(values, size, maximum=True)
        np.testing.assert_array_equal(got[1], np.where(inside, box, 0))
        # A region's peak never comes from another region: each region alone gives it.
        for label in np.unique(regions[inside])[:3]:
            alone = np.where(regions == label, regions, 0)
            mine = regions == label
            np.testing.assert_array_equal(
                filters.region_box_max(values, alone, size)[0][mine], got[0][mine]
            )
    empty = filters.region_box_max(values, np.zeros(shape, np.int32), (3, 3))
    assert not any(a.any() for a in empty)
