import dask
import dask.array as da
import matplotlib
import numpy as np
import pandas as pd
import pytest

import bigseg
from bigseg import plots
from bigseg.stack import as_4d, as_stack

from .conftest import SCALE, raise_if_dask_computes, synthetic

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def series():
    stack, truth = synthetic((6, 64, 64), 3, t=3, seed=4)
    result_nuclei = bigseg.nuclei_table(
        bigseg.link(bigseg.measure(bigseg.segment(stack), stack).compute()), scale=SCALE
    )
    return stack, truth, result_nuclei


def recording_stack(data: np.ndarray, chunks):
    """A lazy stack that records the location of every block it reads."""
    reads: list[tuple] = []

    def read(block, block_info=None):
        loc = tuple(tuple(r) for r in block_info[0]["array-location"])
        reads.append(loc)
        return data[tuple(slice(a, b) for a, b in loc)]

    template = da.zeros(data.shape, dtype=data.dtype, chunks=chunks)
    lazy = template.map_blocks(read, dtype=data.dtype, meta=np.empty((0,) * data.ndim, data.dtype))
    return as_stack(lazy, scale=SCALE), reads


def test_palette_colours_are_shared_and_background_is_transparent():
    rgba = plots.label_rgba([0, 1, 2, 1 + len(plots.PALETTE)])
    assert rgba.dtype == np.uint8 and rgba.shape == (4, 4)
    assert rgba[0, 3] == 0 and (rgba[1:, 3] == 255).all()
    np.testing.assert_array_equal(rgba[1], rgba[3])  # the palette cycles
    assert not np.array_equal(rgba[1], rgba[2])


def test_projections_compute_once_and_draw_centres_in_um(series):
    stack, _, nuclei = series
    with raise_if_dask_computes(max_computes=1):
        fig = plots.orthogonal_projections(stack, nuclei, t=1)
    ax_xy = fig.axes[0]
    sel = nuclei[nuclei["t"] == 1]
    offsets = ax_xy.collections[0].get_offsets()
    np.testing.assert_allclose(offsets, sel[["x_um", "y_um"]].to_numpy())
    np.testing.assert_allclose(
        ax_xy.collections[0].get_facecolors(), plots.label_rgba(sel["nucleus"]) / 255
    )
    # Physical extent: x spans nx * scale_x µm, z spans nz * scale_z µm.
    x0, x1 = ax_xy.images[0].get_extent()[:2]
    assert x1 - x0 == pytest.approx(64 * SCALE[2])
    z0, z1 = fig.axes[1].images[0].get_extent()[:2]
    assert z1 - z0 == pytest.approx(6 * SCALE[0])
    np.testing.assert_array_equal(ax_xy.images[0].get_array(), stack.values[1].max(axis=0))


def test_projections_read_only_the_time_point():
    data = np.random.default_rng(0).integers(0, 4000, (3, 4, 16, 16)).astype(np.uint16)
    stack, reads = recording_stack(data, (1, 2, 16, 16))
    with dask.config.set(scheduler="sync"):
        plots.orthogonal_projections(stack, t=2)
    assert reads and {loc[0] for loc in reads} == {(2, 3)}
    assert len(reads) == 2  # each block once, though three projections were drawn


def test_montage_reads_only_the_chosen_planes(series):
    data = np.asarray(series[0].values)
    stack, reads = recording_stack(data, (1, 1, 64, 64))
    labels, label_reads = recording_stack(
        np.asarray(bigseg.segment(series[0]).values), (1, 2, 64, 64)
    )
    with dask.config.set(scheduler="sync"):
        fig = plots.plane_montage(stack, labels, t=1, z=[1, 4], ncols=2)
    assert sorted(reads) == [((1, 2), (1, 2), (0, 64), (0, 64)), ((1, 2), (4, 5), (0, 64), (0, 64))]
    assert sorted(loc[1] for loc in label_reads) == [(0, 2), (4, 6)]
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 2
    np.testing.assert_array_equal(drawn[1].images[0].get_array(), data[1, 4])
    outline = drawn[1].images[1].get_array()
    assert outline.shape == (64, 64, 4) and outline[..., 3].any()  # label outlines drawn


def test_montage_default_planes_and_bad_planes(small_stack):
    stack, _ = small_stack
    fig = plots.plane_montage(stack, n=4)
    assert len([ax for ax in fig.axes if ax.images]) == 4
    with pytest.raises(bigseg.InputError, match="planes between 0 and 9"):
        plots.plane_montage(stack, z=[12])


def test_montage_of_a_2d_image_is_as_wide_as_three_panels():
    # One plane drawn 3 inches wide made a 700 x 1100 px frame of 170 nuclei unreadable.
    image = bigseg.as_stack(np.zeros((70, 110), np.uint16), scale=(0.5, 0.5))
    fig = plots.plane_montage(image)
    assert len([ax for ax in fig.axes if ax.images]) == 1
    assert fig.get_size_inches()[0] == pytest.approx(plots.MONTAGE_WIDTH)
    stack = bigseg.as_stack(np.zeros((9, 70, 110), np.uint16), scale=(1.0, 0.5, 0.5))
    assert plots.plane_montage(stack, n=6).get_size_inches()[0] == pytest.approx(9.0)
    assert plots.plane_montage(stack, n=8, ncols=4).get_size_inches()[0] == pytest.approx(12.0)


def test_histogram_counts_every_grey_level_lazily(series):
    stack, _, _ = series
    values = stack.values
    seed = bigseg.Params(preset="seed")  # the recipe's Otsu threshold: on grey levels
    with raise_if_dask_computes(max_computes=1):  # histogram and thresholds in one pass
        fig = plots.intensity_histogram(stack.chunk({"t": 1, "z": 2}), params=seed)
    ax = fig.axes[0]
    counts, edges, _ = ax.patches[0].get_data()
    assert len(counts) == 65536
    np.testing.assert_array_equal(counts, np.bincount(values.ravel(), minlength=65536))
    assert ax.get_yscale() == "log"
    assert ax.get_xlim() == (-0.5, 4095.5)  # 12-bit data in 16-bit pixels
    drawn = sorted(line.get_xdata()[0] for line in ax.lines)
    np.testing.assert_allclose(drawn, sorted(bigseg.global_threshold(stack, params=seed).values))


def test_histogram_of_the_default_floor_is_of_the_signal_it_is_taken_on(series):
    # The default preset's floor is a level of the smoothed signal above the background
    # map, not a grey level (over a camera offset it fell below every voxel): drawn over
    # the histogram of that signal, computed in the same single pass.
    from bigseg.methods import default

    stack, _, _ = series
    chunked = stack.chunk({"t": 1, "z": 2})
    with raise_if_dask_computes(max_computes=1):
        fig = plots.intensity_histogram(chunked)
    ax = fig.axes[0]
    counts, edges, _ = ax.patches[0].get_data()
    signal = default.signal_of(as_4d(chunked).data, bigseg.Params(), SCALE).compute()
    np.testing.assert_array_equal(counts, np.histogram(signal, bins=edges)[0])
    assert ax.get_xscale() == "log" and "signal above the background" in ax.get_xlabel()
    drawn = sorted(line.get_xdata()[0] for line in ax.lines)
    expected = sorted(bigseg.global_threshold(stack, params=bigseg.Params()).values)
    np.testing.assert_allclose(drawn, expected)
    assert all(0 < v < signal.max() for v in drawn)


@pytest.mark.parametrize("computed", [True, False])
def test_global_threshold_s_floors_are_drawn_over_their_signal_too(series, computed):
    """A notebook's ``global_threshold(stack)``, handed on: not drawn over grey levels."""
    stack, _, _ = series
    chunked = stack.chunk({"t": 1, "z": 2})
    floors = bigseg.global_threshold(chunked)
    expected = floors.values
    if computed:
        floors = floors.compute()
    with raise_if_dask_computes(max_computes=1):  # a lazy one in the histogram's pass
        fig = plots.intensity_histogram(chunked, floors, t=1)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and "signal above the background" in ax.get_xlabel()
    assert [line.get_xdata()[0] for line in ax.lines] == pytest.approx([expected[1]])
    seed = bigseg.global_threshold(chunked, params=bigseg.Params(preset="seed")).compute()
    ax = plots.intensity_histogram(chunked, seed).axes[0]  # the recipe's: on grey levels
    assert "grey level" in ax.get_xlabel() and ax.get_xscale() == "linear"


def test_histogram_of_one_time_point_reads_only_it():
    data = np.random.default_rng(1).integers(0, 255, (3, 2, 8, 8)).astype(np.uint8)
    stack, reads = recording_stack(data, (1, 1, 8, 8))
    with dask.config.set(scheduler="sync"):
        fig = plots.intensity_histogram(stack, [10.0, 20.0, 30.0], t=1)
    assert {loc[0] for loc in reads} == {(1, 2)}
    ax = fig.axes[0]
    assert [line.get_xdata()[0] for line in ax.lines] == [20.0]
    counts = ax.patches[0].get_data().values
    np.testing.assert_array_equal(counts, np.bincount(data[1].ravel(), minlength=256))


def test_histogram_of_float_data_and_empty_stack():
    data = np.linspace(0, 1, 2 * 8 * 8, dtype=np.float32).reshape(2, 8, 8)
    fig = plots.intensity_histogram(as_stack(data, scale=SCALE), False)
    counts, edges, _ = fig.axes[0].patches[0].get_data()
    assert counts.sum() == data.size and len(edges) == 513 and not fig.axes[0].lines
    blank = as_stack(np.zeros((2, 8, 8), np.uint16), scale=SCALE)
    fig = plots.intensity_histogram(blank, False)
    assert fig.axes[0].patches[0].get_data().values[0] == 128


def test_time_table_and_summary_need_no_image(series):
    _, _, nuclei = series
    with raise_if_dask_computes():
        table = plots.time_table(nuclei, time_points=5)
        fig = plots.time_summary(nuclei, time_points=5)
    assert list(table.index) == [0, 1, 2, 3, 4]
    assert list(table["nuclei"]) == [*nuclei.groupby("t").size().tolist(), 0, 0]
    first = nuclei[nuclei["t"] == 0]
    assert table.loc[0, "mean_volume_um3"] == pytest.approx(first["volume_um3"].mean())
    assert table.loc[0, "mean_intensity"] == pytest.approx(first["intensity_mean"].mean())
    assert np.isnan(table.loc[4, "mean_volume_um3"])
    assert len(fig.axes) == 3
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), table["nuclei"])


def test_histogram_of_data_on_a_camera_offset_shows_the_occupied_grey_levels():
    rng = np.random.default_rng(0)
    data = (33_000 + rng.integers(0, 1500, size=(2, 32, 32))).astype(np.uint16)
    fig = plots.intensity_histogram(as_stack(data, scale=SCALE), 33_400.0)
    lo, hi = fig.axes[0].get_xlim()
    assert 32_900 < lo < data.min() and data.max() < hi < 34_700  # not a sliver of 0-65535
    assert "grey levels 33000" in fig.axes[0].get_xlabel()


def test_time_summary_of_a_2d_time_lapse_draws_the_radius():
    """2D nuclei have an area, not a volume: the size panel shows their mean radius."""
    nuclei = pd.DataFrame(
        {
            "t": [0, 0, 1],
            "volume_um3": [np.nan] * 3,
            "radius_um": [4.0, 6.0, 5.0],
            "intensity_mean": [10.0, 20.0, 30.0],
        }
    )
    fig = plots.time_summary(nuclei)
    assert fig.axes[1].get_ylabel() == "mean radius (µm)"
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [5.0, 5.0])


@pytest.mark.parametrize(
    ("interval", "unit", "step", "apart"),
    [(600.0, "time (min)", 10.0, "10 min apart"), (7200.0, "time (h)", 2.0, "2 h apart")],
)
def test_time_summary_with_a_frame_interval_draws_time(interval, unit, step, apart):
    # Known seconds between time points (run.json's input.frame_interval_s): the x axis
    # is time, in minutes (in hours beyond five).
    nuclei = pd.DataFrame(
        {"t": [0, 1, 3], "volume_um3": [100.0, 110.0, 120.0], "intensity_mean": [1.0, 2.0, 3.0]}
    )
    fig = plots.time_summary(nuclei, time_points=4, frame_interval_s=interval)
    assert fig.axes[-1].get_xlabel() == unit
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), np.arange(4) * step)
    assert fig.axes[0].get_title(loc="left") == f"3 nuclei in 4 time points, {apart}"
    with pytest.raises(bigseg.InputError, match="frame_interval_s"):
        plots.time_summary(nuclei, frame_interval_s=0)


def test_time_table_of_empty_and_bad_tables():
    empty = pd.DataFrame({"t": [], "volume_um3": [], "intensity_mean": []})
    assert len(plots.time_table(empty)) == 0
    assert list(plots.time_table(empty, time_points=2)["nuclei"]) == [0, 0]
    with pytest.raises(bigseg.InputError, match="volume_um3"):
        plots.time_table(pd.DataFrame({"t": [0]}))


def test_functions_draw_into_given_axes_and_figures(small_stack):
    stack, _ = small_stack
    fig, ax = plt.subplots()
    assert plots.intensity_histogram(stack, 500.0, ax=ax) is fig
    other = plt.figure()
    assert plots.orthogonal_projections(stack, fig=other) is other
    assert plots.plane_montage(stack, fig=other, n=2) is other


def test_bad_time_point(small_stack):
    with pytest.raises(bigseg.InputError, match="time points 0 to 0"):
        plots.orthogonal_projections(small_stack[0], t=3)


def test_napari_layers_line_up_in_um_and_stay_lazy(tmp_path):
    from bigseg.pipeline import run
    from bigseg.synth import synth

    image, _ = synth(tmp_path / "ts.ome.zarr", shape=(6, 48, 48), nuclei=2, t=2, seed=6)
    result = run(image, tmp_path / "out")
    with raise_if_dask_computes():
        layers = plots.napari_layers(tmp_path / "out")
    assert [kind for _, _, kind in layers] == ["image", "labels", "points", "tracks"]
    (img, img_kw, _), (lab, lab_kw, _), (pts, pts_kw, _), (trk, trk_kw, _) = layers
    assert isinstance(img, da.Array) and isinstance(lab, da.Array) and img.shape == lab.shape
    for kw in (img_kw, lab_kw, pts_kw):
        assert kw["scale"] == [1.0, *SCALE] and kw["translate"] == [0.0, 0.0, 0.0, 0.0]
    nuclei = result.nuclei
    world = pts * np.array(pts_kw["scale"]) + np.array(pts_kw["translate"])
    np.testing.assert_allclose(world, nuclei[["t", "z_um", "y_um", "x_um"]].to_numpy())
    # Each centre lies in its own nucleus in the label volume.
    under = lab.compute()[tuple(np.round(pts).astype(int).T)]
    np.testing.assert_array_equal(under, nuclei["nucleus"])
    ids = nuclei["nucleus"].tolist()
    assert set(lab_kw["colormap"]) == {None, *ids}
    np.testing.assert_allclose(lab_kw["colormap"][ids[0]], plots.label_rgba(ids[:1])[0] / 255)
    np.testing.assert_allclose(pts_kw["face_color"], plots.label_rgba(ids) / 255)
    assert lab_kw["features"]["index"].tolist() == ids
    # Tracks: (track_id, t, z, y, x) at the centres, in the same place.
    assert trk_kw["scale"] == pts_kw["scale"] and trk.shape == (len(nuclei), 5)
    at = {tuple(np.round(row, 6)) for row in pts}
    assert {tuple(np.round(row, 6)) for row in trk[:, 1:]} == at
    assert set(trk[:, 0].astype(int)) == set(nuclei["track_id"])


def test_napari_layers_name_the_fix_when_the_input_moved(tmp_path):
    from bigseg.pipeline import run
    from bigseg.synth import synth

    image, _ = synth(tmp_path / "a.ome.zarr", shape=(4, 32, 32), nuclei=1, seed=2)
    run(image, tmp_path / "out")
    moved = image.rename(tmp_path / "b.ome.zarr")
    with pytest.raises(bigseg.InputError, match="source="):
        plots.napari_layers(tmp_path / "out")
    layers = plots.napari_layers(tmp_path / "out", source=moved)
    assert layers[0][0].shape == (4, 32, 32) and layers[0][1]["scale"] == list(SCALE)
    with pytest.raises(bigseg.InputError, match="no run.json"):
        plots.napari_layers(tmp_path)


def _lineage_tables():
    """Track 1 divides into 2 and 3 at t = 3; 3 into 4 and 5 at t = 8; 6 never divides."""
    tracks = pd.DataFrame(
        {
            "track_id": [1, 2, 3, 4, 5, 6],
            "parent_track_id": [0, 1, 1, 3, 3, 0],
            "t_first": [0, 4, 4, 9, 9, 0],
            "t_last": [3, 6, 8, 10, 9, 10],
        }
    )
    rows = []
    for track, parent, first, last in tracks.itertuples(index=False):
        for t in range(first, last + 1):
            rows.append((track, parent, t, 10.0 * track + t, 5.0 * track))
    nuclei = pd.DataFrame(rows, columns=["track_id", "parent_track_id", "t", "y_um", "x_um"])
    return tracks, nuclei


def _segments(ax):
    return [tuple(map(tuple, line.get_xydata())) for line in ax.lines if len(line.get_xydata()) > 1]


def test_lineage_draws_daughters_beside_each_other_under_their_mother():
    tracks, _ = _lineage_tables()
    fig = plots.lineage(tracks)
    (ax,) = fig.axes
    assert ax.get_title(loc="left") == "2 trees, 6 tracks, 2 divisions"
    lines = _segments(ax)
    # Leaves 2, 4, 5, 6 at x = 0, 1, 2, 3; each mother centred over her daughters.
    for x, first, last in [(0, 4, 6), (1, 9, 10), (2, 9, 9), (1.5, 4, 8), (0.75, 0, 3), (3, 0, 10)]:
        assert ((x, first), (x, last)) in lines
    assert ((0, 3), (1.5, 3)) in lines and ((1, 8), (2, 8)) in lines  # the divisions
    plt.close(fig)
    fig = plots.lineage(tracks, roots=[3])
    assert fig.axes[0].get_title(loc="left") == "1 trees, 3 tracks, 1 divisions"
    plt.close(fig)
    with pytest.raises(bigseg.InputError, match=r"roots=\[9\]"):
        plots.lineage(tracks, roots=[9])
    with pytest.raises(bigseg.InputError, match="parent_track_id"):
        plots.lineage(tracks.drop(columns="parent_track_id"))


def test_track_paths_start_each_daughter_at_her_mother_s_last_centre():
    _, nuclei = _lineage_tables()
    fig = plots.track_paths(nuclei.sample(frac=1.0, random_state=0))  # any row order
    (ax,) = fig.axes
    paths = [line.get_xydata() for line in ax.lines if len(line.get_xydata()) > 1]
    assert len(paths) == 6 and ax.get_title(loc="left") == "6 tracks"
    # Tracks 2 and 3 start where track 1 ends (x 5, y 13), then run along their centres.
    daughters = sorted((p[1:].tolist() for p in paths if tuple(p[0]) == (5.0, 13.0)), key=len)
    assert daughters == [[[10.0, 10.0 * 2 + t] for t in range(4, 7)],
                         [[15.0, 10.0 * 3 + t] for t in range(4, 9)]]  # fmt: skip
    plt.close(fig)
    fig = plots.track_paths(nuclei, min_length=3)
    assert fig.axes[0].get_title(loc="left") == "4 tracks"  # 4 and 5 are shorter
    plt.close(fig)
    with pytest.raises(bigseg.InputError, match="track_id"):
        plots.track_paths(nuclei.drop(columns="track_id"))


def test_a_2d_image_s_histogram_shows_where_its_nuclei_are_seen():
    # In a 2D image the default method sees a nucleus whose peak is above half the floor
    # (methods.default.PLANAR_PEAK): the figure draws that level beside the floor.
    from bigseg.methods import default
    from bigseg.synth import make_truth, render

    truth = make_truth((1, 96, 128), 6, scale=(1.0, 0.5, 0.5), seed=3, radius_um=(3.0, 5.0))
    image = render(truth, (0, 0, 0, 0), (1, 1, 96, 128), scale=(1.0, 0.5, 0.5), noise_seed=3)
    ax = plots.intensity_histogram(as_stack(image[0, 0], scale=(0.5, 0.5))).axes[0]
    floor, seen = (line.get_xdata()[0] for line in ax.lines)
    assert seen == pytest.approx(default.PLANAR_PEAK * floor) and seen < floor
    labels = [text.get_text() for text in ax.get_legend().get_texts()]
    assert labels[0].startswith("floor") and labels[1].startswith("2D nuclei seen")
    stack = as_stack(np.repeat(image[0], 3, axis=0), scale=SCALE)  # a stack: the floor only
    assert len(plots.intensity_histogram(stack).axes[0].lines) == 1


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_the_floor_of_a_frame_without_nuclei_is_drawn_inside_the_axes(dtype):
    # Its floor is a multiple of the noise, above every voxel of the signal
    # (kernels.threshold.NOISE_FLOOR): the axes reach it.
    image = np.random.default_rng(2).normal(1000, 20, (4, 96, 96)).astype(dtype)
    ax = plots.intensity_histogram(as_stack(image, scale=SCALE)).axes[0]
    (floor,) = (line.get_xdata()[0] for line in ax.lines)
    low, high = ax.get_xlim()
    assert low < floor < high
    assert "(0.0% of voxels above)" in ax.get_legend().get_texts()[0].get_text()
