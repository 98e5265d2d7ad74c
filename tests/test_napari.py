"""The napari plugin with real napari (the ``napari`` extra), headless under Xvfb.

`make test` installs the extra and pytest-xvfb starts a virtual display; without napari
(or without a display) these tests are skipped, with the reason.
"""

import os

import numpy as np
import pandas as pd
import pytest

napari = pytest.importorskip("napari", reason="the napari extra is not installed")
npe2 = pytest.importorskip("npe2")
if not os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
    pytest.skip("no display: install Xvfb (see .ci/run) for pytest-xvfb", allow_module_level=True)

from bigseg import ScaleWarning, open_stack  # noqa: E402
from bigseg.io import ngff  # noqa: E402
from bigseg.napari._widget import SegmentWidget  # noqa: E402
from bigseg.pipeline import run  # noqa: E402
from bigseg.synth import synth  # noqa: E402

SCALE = (1.5, 0.71, 0.71)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("napari")
    image, _ = synth(root / "s.ome.zarr", shape=(6, 96, 96), nuclei=6, t=2, seed=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ngff, "PYRAMID_TILE", 24)  # three levels of a small run
        result = run(image, root / "out")
    return image, result


def test_the_manifest_is_found_through_its_entry_point():
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("bigseg")
    assert [w.display_name for w in manifest.contributions.widgets] == ["Find nuclei"]
    assert manifest.contributions.readers[0].accepts_directories


def test_npe2_reads_an_output_as_image_label_pyramid_and_centres_in_um(finished_run):
    image, result = finished_run
    npe2.PluginManager.instance().discover()  # as napari does when it starts
    layers = npe2.read([str(result.output)], stack=False, plugin_name="bigseg")
    # a series of two time points is tracked: its tracks come as a fourth layer
    assert [kind for _, _, kind in layers] == ["image", "labels", "points", "tracks"]
    (img, img_kw, _), (labels, lab_kw, _), (points, pts_kw, _), (tracks, trk_kw, _) = layers
    assert trk_kw["scale"] == pts_kw["scale"] and len(tracks) == len(points)
    assert img_kw["scale"] == [1.0, *SCALE] == lab_kw["scale"] == pts_kw["scale"]
    um = ["pixel", "micrometer", "micrometer", "micrometer"]  # t has no length
    assert img_kw["units"] == lab_kw["units"] == pts_kw["units"] == trk_kw["units"] == um
    assert lab_kw["multiscale"] and [lv.shape[-1] for lv in labels] == [96, 48, 24]
    assert hasattr(labels[0], "dask") and hasattr(img, "dask")  # lazy
    nuclei = pd.read_parquet(result.output / "nuclei.parquet")
    assert len(points) == len(nuclei) > 0
    world = points[:, 1:] * np.asarray(SCALE) + np.asarray(pts_kw["translate"][1:])
    np.testing.assert_allclose(world, nuclei[["z_um", "y_um", "x_um"]].to_numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="refused"):  # not an output: the reader declines
        npe2.read([str(result.output.parent)], stack=False, plugin_name="bigseg")


def test_the_reader_opens_in_a_viewer_at_the_image_s_extent(make_napari_viewer, finished_run):
    _, result = finished_run
    viewer = make_napari_viewer()
    viewer.open(str(result.output), plugin="bigseg")
    assert [type(layer).__name__ for layer in viewer.layers] == [
        "Image", "Labels", "Points", "Tracks",
    ]  # fmt: skip
    image, labels, _, tracks = viewer.layers
    inside = image.extent.world  # the tracks (at the centres) lie within the image
    assert (tracks.extent.world[0] >= inside[0] - 1e-6).all()
    assert (tracks.extent.world[1] <= inside[1] + 1e-6).all()
    np.testing.assert_allclose(image.extent.world, labels.extent.world)
    assert labels.multiscale and len(labels.data) == 3


def _widget(make_napari_viewer, image):
    viewer = make_napari_viewer()
    stack = open_stack(image)
    layer = viewer.add_image(stack.values, scale=(1.0, *SCALE), name="s")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    return viewer, widget, layer, stack


def test_widget_previews_the_current_plane(make_napari_viewer, finished_run):
    image, result = finished_run
    viewer, widget, layer, stack = _widget(make_napari_viewer, image)
    full = open_stack(result.labels_path).values
    t, z = np.argwhere(full.reshape(full.shape[0], full.shape[1], -1).any(axis=2))[0]
    viewer.dims.set_point(range(4), layer.data_to_world((t, z, 0, 0)))
    added = widget.preview()
    assert added.name == "preview" and added.data.shape == (1, 1, 96, 96)
    assert added.data.max() > 0  # nuclei on a plane where the run found some
    np.testing.assert_allclose(added.translate[:2], [t, z * SCALE[0]])
    assert widget.preview_seconds is not None and "regions" in widget._status.value


def test_preview_updates_its_layer_in_place_redrawn_once(make_napari_viewer, finished_run):
    image, _ = finished_run
    viewer, widget, layer, _ = _widget(make_napari_viewer, image)
    viewer.dims.set_point(range(4), layer.data_to_world((1, 2, 0, 0)))
    added = widget.preview()
    read = widget._read[2]
    redraws = []
    added.events.set_data.connect(lambda event: redraws.append(event))
    widget._min_radius.value = widget._min_radius.value * 1.5
    assert widget.preview() is added and len(redraws) == 1  # the same layer, drawn once
    assert widget._read[2] is read  # other parameters, same view: nothing read again
    viewer.dims.set_point(range(4), layer.data_to_world((0, 3, 0, 0)))
    redraws.clear()
    assert widget.preview() is added and len(redraws) == 1  # moved to another plane
    assert widget._read[2] is not read
    np.testing.assert_allclose(added.translate[:2], [0, 3 * SCALE[0]])
    assert len(viewer.layers) == 2
    widget._image.value = viewer.add_image(layer.data[0, 2], scale=SCALE[1:], name="plane")
    plane = widget.preview()  # a 2D layer: its own preview layer, in place of the 4D one
    assert plane.ndim == 2 and plane.data.shape == (96, 96) and plane.data.max() > 0
    assert [lyr.name for lyr in viewer.layers] == ["s", "plane", "preview"]


def test_the_voxel_size_comes_from_the_layer_s_units_or_is_said(make_napari_viewer, finished_run):
    from bigseg.napari._widget import _layer_stack, voxel_um

    image, _ = finished_run
    viewer, widget, um_layer, stack = _widget(make_napari_viewer, image)
    # A plain array (napari's units: pixel): its scale is taken as µm, and the widget says so.
    assert voxel_um(um_layer)[0] == SCALE
    assert "no length units" in widget._voxel.value and "taken as µm" in widget._voxel.value
    plain = viewer.add_image(stack.values[0, 2], name="plain")  # scale 1, 2D
    widget._image.value = plain
    assert "voxels of 1 x 1 µm" in widget._voxel.value
    # Units that are lengths are converted: nm here, the same voxels as the µm layer. (A
    # viewer of layers in other units draws none in units: one layer at a time.)
    viewer.layers.clear()
    nm = viewer.add_image(
        stack.values,
        name="nm",
        scale=(1.0, *(1000 * s for s in SCALE)),
        translate=(0.0, 0.0, 500.0, 0.0),
        units=("pixel", "nm", "nm", "nm"),
    )
    scale, origin, note = voxel_um(nm)
    np.testing.assert_allclose(scale, SCALE)
    np.testing.assert_allclose(origin, (0.0, 0.5, 0.0))
    assert widget._voxel.value == note == "1.5 x 0.71 x 0.71 µm, from the layer's scale"
    assert _layer_stack(nm).attrs["scale"] == pytest.approx(dict(zip("zyx", SCALE)))
    assert _layer_stack(nm).attrs["translation"] == pytest.approx({"z": 0, "y": 0.5, "x": 0})
    segmented = {}
    for name, scale, units in [("nm", 1000, "nm"), ("um", 1, "um"), ("plain", 1000, None)]:
        viewer.layers.clear()
        extra = {"units": ("pixel", units, units, units)} if units else {}
        layer = viewer.add_image(
            stack.values, name=name, scale=(1.0, *(scale * s for s in SCALE)), **extra
        )
        viewer.reset_view()
        viewer.dims.set_point(range(4), layer.data_to_world((1, 2, 0, 0)))
        if not units:  # the numbers in nm taken as µm: bigseg refuses them in one sentence
            with pytest.warns(ScaleWarning, match=r"in nm that is scale=\(0.71, 0.71\)"):
                assert widget.preview() is None
            assert widget._status.value.startswith("preview: The pixel size 710 µm")
            assert "taken as µm: voxels of 1500 x 710 x 710 µm" in widget._voxel.value
            continue
        segmented[name] = widget.preview().data.copy()
        assert segmented[name].shape == (1, 1, 96, 96)  # the whole plane in view
    np.testing.assert_array_equal(segmented["nm"], segmented["um"])
    assert segmented["um"].max() > 0


def test_widget_runs_in_the_background_and_adds_the_results(
    make_napari_viewer, finished_run, qtbot, tmp_path
):
    image, result = finished_run
    viewer, widget, layer, stack = _widget(make_napari_viewer, image)
    widget._output.value = tmp_path / "out"
    worker = widget.start_run()
    with qtbot.waitSignal(worker.finished, timeout=180_000):
        pass
    assert "nuclei" in viewer.layers and "centres" in viewer.layers, widget._status.value
    nuclei = pd.read_parquet(tmp_path / "out" / "nuclei.parquet")
    expected = pd.read_parquet(result.output / "nuclei.parquet")
    assert len(nuclei) == len(expected) > 0  # the same method, on the same voxels
    labels = viewer.layers["nuclei"]
    assert not labels.multiscale  # 96² planes fit one chunk: level 0 only
    np.testing.assert_array_equal(np.asarray(labels.data), open_stack(result.labels_path).values)
    assert len(viewer.layers["centres"].data) == len(nuclei)
    assert widget._progress.value == 100 and "nuclei in" in widget._status.value


def test_the_widget_s_cluster_runs_no_profiler(finished_run, tmp_path):
    # napari's own process holds the widget's worker: a profiler's history would grow it
    # with every minute of a run.
    import threading

    from distributed import Worker

    from bigseg.napari._widget import _run_in_background
    from bigseg.params import Params

    image, _ = finished_run
    runs = _run_in_background(image, tmp_path / "out", Params(), threading.Event())
    assert next(runs)[0] == "dashboard"
    workers = list(Worker._instances)
    assert workers and all(
        not any("profile" in name for name in w.periodic_callbacks) for w in workers
    )
    runs.close()


def test_widget_run_can_be_cancelled(make_napari_viewer, finished_run, qtbot, tmp_path):
    image, _ = finished_run
    viewer, widget, _, _ = _widget(make_napari_viewer, image)
    widget._output.value = tmp_path / "out"
    worker = widget.start_run()
    widget.cancel()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert widget._status.value == "cancelled"
    assert "nuclei" not in viewer.layers and not (tmp_path / "out" / "run.json").exists()
    assert widget._run_button.enabled


def test_the_preview_covers_at_most_768_px_of_the_part_in_view():
    from bigseg.napari._widget import _in_view

    class Layer:
        corner_pixels = np.array([[0, 0, 100, 0], [0, 0, 1999, 2047]])  # max inclusive

    assert _in_view(Layer, (2048, 2048)) == ((666, 1434), (640, 1408))
    Layer.corner_pixels = np.array([[3, 10, 20], [3, 50, 70]])
    assert _in_view(Layer, (96, 96)) == ((10, 51), (20, 71))
