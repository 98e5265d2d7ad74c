"""What a run records in run.json, the tables it writes, and the tools that read them."""

import json
import os
import subprocess
import sys

import dask.array as da
import matplotlib
import numpy as np
import pandas as pd
import pytest

import bigseg
from bigseg import plots
from bigseg.cli import main, summary
from bigseg.io import open_stack
from bigseg.pipeline import run
from bigseg.pipeline.sink import compute as _compute
from bigseg.stack import as_stack
from bigseg.synth import synth

from .conftest import SCALE, synthetic

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COMMAND = ["bigseg", "segment", "ts.ome.zarr", "-o", "sel", "--t", "1:3"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def selected(tmp_path_factory):
    """A run of time points 1 and 2 of three, started with a relative input path."""
    root = tmp_path_factory.mktemp("record")
    synth(root / "ts.ome.zarr", shape=(6, 48, 48), nuclei=3, t=3, seed=6)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = run("ts.ome.zarr", "sel", t=slice(1, 3), command=COMMAND)
    finally:
        os.chdir(cwd)
    return root, root / "sel", result


def test_run_json_records_absolute_input_time_points_command_and_scale_source(selected):
    root, out, result = selected
    record = json.loads((out / "run.json").read_text())
    assert record == json.loads(json.dumps(result.record))
    inp = record["input"]
    assert inp["source"] == str(root / "ts.ome.zarr") and inp["source_as_given"] == "ts.ome.zarr"
    assert inp["t_selected"] == [1, 2] and inp["t_selection"] == {"start": 1, "stop": 3, "step": 1}
    assert inp["shape"] == [2, 6, 48, 48] and inp["source_shape"] == [3, 6, 48, 48]
    assert inp["channel"] is None
    assert inp["scale_source"] == "metadata:multiscales coordinateTransformations scale"
    assert record["command"] == COMMAND
    assert record["cluster"] == {"scheduler": "dask default"}


def test_run_json_records_scale_option_and_cluster_settings(tmp_path):
    from distributed import Client

    image, _ = synth(tmp_path / "s.ome.zarr", shape=(4, 32, 32), nuclei=1, seed=2)
    # In-process, the worker's limit counts the whole test process (pytest and all it has
    # loaded, ~0.8 GiB late in the suite): a limit well above it, or the worker pauses.
    with Client(processes=False, n_workers=1, threads_per_worker=2, memory_limit="4GiB") as c:
        result = run(image, tmp_path / "out", scale=(2.0, 0.5, 0.5), client=c)
        address = c.scheduler.address
    assert result.record["input"]["scale_source"] == "option"
    assert result.record["input"]["scale_um"] == {"z": 2.0, "y": 0.5, "x": 0.5}
    assert result.record["command"] is None  # not started from the command line
    assert result.record["cluster"] == {
        "scheduler": address,
        "workers": 1,
        "threads": 2,
        "memory_limit_bytes": [4 * 2**30],
    }


def test_plot_from_another_directory_uses_the_recorded_time_points(selected, tmp_path):
    _, out, result = selected
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-m", "bigseg.cli", "plot", str(out), "--t", "2"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("projections_t002.png", "montage_t002.png", "histogram_t002.png", "time.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert not (out / "projections.png").exists()
    assert main(["plot", str(out)]) == 0  # default: the run's first time point, t = 1
    assert (out / "projections_t001.png").exists()
    assert main(["plot", str(out), "--t", "0"]) == 2  # not segmented by this run


def test_napari_layers_of_a_time_selection_put_centres_on_their_labels(selected):
    _, out, result = selected
    (img, img_kw, _), (lab, lab_kw, _), (pts, pts_kw, _), *_ = plots.napari_layers(out)
    assert img.shape == lab.shape == (2, 6, 48, 48)
    assert img_kw["scale"][0] == 1.0 and img_kw["translate"][0] == 1.0  # slider shows t = 1, 2
    nuclei = result.nuclei
    under = lab.compute()[tuple(np.round(pts).astype(int).T)]
    np.testing.assert_array_equal(under, nuclei["nucleus"])
    world = pts * np.array(pts_kw["scale"]) + np.array(pts_kw["translate"])
    np.testing.assert_allclose(world[:, 0], nuclei["t"])
    # The image is the selected time points of the input, not its first ones.
    full = open_stack(result.record["input"]["source"]).data
    np.testing.assert_array_equal(img.compute(), full[1:3].compute())


def test_plot_and_napari_use_the_recorded_channel(tmp_path, capsys):
    import tifffile

    nuclei = synthetic((6, 48, 48), 3, seed=3)[0].values
    other = np.ascontiguousarray(nuclei[:, ::-1, ::-1] // 2)
    path = tmp_path / "two.tif"
    tifffile.imwrite(
        path,
        np.stack([other, nuclei], axis=1),  # (z, c, y, x)
        imagej=True,
        resolution=(1 / SCALE[1], 1 / SCALE[2]),
        metadata={"axes": "ZCYX", "spacing": SCALE[0], "unit": "um"},
    )
    result = run(path, tmp_path / "out", channel=1)
    assert result.record["input"]["channel"] == 1
    assert result.record["input"]["scale_source"].startswith("metadata:ImageJ")
    image = plots.napari_layers(tmp_path / "out")[0][0]
    np.testing.assert_array_equal(image.compute(), nuclei)
    assert main(["plot", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "projections.png").exists()
    capsys.readouterr()
    assert main(["plot", str(tmp_path / "out"), "--channel", "0"]) == 0
    assert "the run segmented channel 1" in capsys.readouterr().err


def test_tables_store_indices_and_ids_as_integers_with_original_t(selected):
    _, out, result = selected
    nuclei = pd.read_parquet(out / "nuclei.parquet")
    detections = pd.read_parquet(out / "detections.parquet")
    csv = pd.read_csv(out / "nuclei.csv")
    for table in (nuclei, csv):
        for name in ("nucleus", "t", "z_first", "z_last", "n_planes"):
            assert table[name].dtype == np.int64, name
    for name in ("t", "nucleus", "label"):
        assert np.issubdtype(detections[name].dtype, np.integer), name
    assert set(nuclei["t"]) == set(detections["t"]) == {1, 2}
    pd.testing.assert_frame_equal(result.nuclei, nuclei)


def test_csv_has_seven_significant_digits(selected):
    _, out, _ = selected
    nuclei = pd.read_parquet(out / "nuclei.parquet")
    text = (out / "nuclei.csv").read_text().splitlines()
    digits = [
        len(field.replace(".", "").replace("-", "").lstrip("0").split("e")[0])
        for line in text[1:]
        for field in line.split(",")
    ]
    assert max(digits) <= 7
    csv = pd.read_csv(out / "nuclei.csv")
    pd.testing.assert_frame_equal(nuclei, csv, check_dtype=False, check_exact=False, rtol=1e-6)


def test_histogram_marks_the_thresholds_the_run_used(selected):
    _, out, result = selected
    stack = open_stack(result.record["input"]["source"]).isel(t=[1, 2])
    fig = plots.intensity_histogram(stack, out)
    drawn = [line.get_xdata()[0] for line in fig.axes[0].lines]
    np.testing.assert_allclose(drawn, result.thresholds)
    fig = plots.intensity_histogram(stack, result, t=1)
    assert [line.get_xdata()[0] for line in fig.axes[0].lines] == [result.thresholds[1]]
    # By default: the statistic run() uses by default, not the recipe's Otsu.
    fig = plots.intensity_histogram(stack)
    np.testing.assert_allclose([ln.get_xdata()[0] for ln in fig.axes[0].lines], result.thresholds)
    with pytest.raises(bigseg.InputError, match="did not segment time point"):
        plots.intensity_histogram(open_stack(result.record["input"]["source"]), out)


def _height_px(ax):
    return ax.get_window_extent().height


def test_side_projections_of_a_wide_stack_are_legible():
    data = da.zeros((8, 2048, 2048), np.uint16, chunks=(1, 2048, 2048))
    fig = plots.orthogonal_projections(as_stack(data, scale=SCALE))
    fig.canvas.draw()
    ax_xy, ax_zy, ax_xz = fig.axes
    assert _height_px(ax_xz) >= 0.15 * _height_px(ax_xy)
    assert ax_zy.get_window_extent().width >= 0.15 * ax_xy.get_window_extent().width
    assert "×" in ax_xz.get_ylabel()  # says that z is stretched


def test_figures_of_a_single_plane_have_no_side_views_nor_overlaps():
    plane = as_stack(
        np.random.default_rng(0).integers(0, 999, (1, 60, 100), np.uint16), scale=SCALE
    )
    fig = plots.orthogonal_projections(plane)
    assert len([ax for ax in fig.axes if ax.images]) == 1
    fig = plots.plane_montage(plane)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [fig._suptitle.get_window_extent(renderer)]
    boxes += [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.images]
    boxes += [ax.get_tightbbox(renderer) for ax in fig.axes if ax.images]
    assert not boxes[0].overlaps(boxes[1]) and not boxes[0].overlaps(boxes[2])


def test_progress_bars_name_their_pass(capsys):
    _compute(da.ones(4, chunks=2).sum(), None, True, "segment")
    out = capsys.readouterr().out
    assert "segment pass" in out and "100% Completed" in out


def test_resumed_throughput_counts_only_the_work_done(tmp_path, monkeypatch):
    import bigseg.pipeline.partitions as pipeline  # linking runs there, per partition

    stack = synthetic((6, 48, 48), 2, seed=5)[0].chunk({"z": 2})
    params = bigseg.Params.from_preset("seed")
    out = tmp_path / "out"
    real_link = pipeline.link

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "link", fail)
    with pytest.raises(KeyboardInterrupt):
        run(stack, out, resume=True, params=params)
    monkeypatch.setattr(pipeline, "link", real_link)
    resumed = run(stack, out, resume=True, params=params)
    record = resumed.record
    assert record["blocks"]["reused"] == record["blocks"]["total"] == 3
    voxels = int(np.prod(stack.shape))
    assert record["voxels"] == {"total": voxels, "computed": 0, "reused": voxels}
    assert record["throughput_mvoxel_per_s"] == 0.0
    assert "(0.00 Mvoxel/s" in summary(record, "in", out, 1.0)
    fresh = run(stack, tmp_path / "fresh", params=params).record
    assert fresh["voxels"]["computed"] == voxels and fresh["throughput_mvoxel_per_s"] > 0
