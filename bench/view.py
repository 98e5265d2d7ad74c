"""The napari plugin on a 4 x 2048 x 2048 run: what its reader opens, preview time, screenshots.

Synthesises a 4 x 2048 x 2048 stack (``bigseg synth``'s model), runs bigseg on it
(``bigseg.run``, dask's threads), opens the output through napari's reader machinery
(``npe2.read`` and ``viewer.open(..., plugin="bigseg")``) and prints each layer's kind,
scale (µm) and, for the labels, the pyramid's levels.  Then it docks the "Find nuclei"
widget and times its preview of the part of the plane in view: the first (which adds the
layer), ``--repeats`` with other parameters on the same view, ``--repeats`` on other
planes (medians; in all, reading and segmenting, and how many times napari redrew the
layer), against the same crop segmented in this process without napari, and writes
screenshots into ``--shots`` (docs/view-*.png).  Needs the napari extra and a display:
run it under ``xvfb-run -a`` on a headless machine.

Example (docs/view.md)::

    xvfb-run -a python bench/view.py --dir /tmp/bigseg-view --shots docs
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/bigseg-view")
    parser.add_argument("--shots", default=None, help="folder for the screenshots")
    parser.add_argument("--shape", type=int, nargs=3, default=(4, 2048, 2048))
    parser.add_argument("--nuclei", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=5, help="previews timed per case")
    args = parser.parse_args()

    import napari
    import npe2

    from bigseg import open_stack, run
    from bigseg.napari._widget import SegmentWidget
    from bigseg.params import Params
    from bigseg.segment import global_threshold, segment
    from bigseg.stack import as_stack
    from bigseg.synth import synth

    root = Path(args.dir)
    if root.exists():
        raise SystemExit(f"{root} exists; give another --dir")
    root.mkdir(parents=True)
    try:
        image, _ = synth(root / "stack.ome.zarr", shape=tuple(args.shape), nuclei=args.nuclei)
        started = time.perf_counter()
        result = run(image, root / "out")
        print(f"run: {tuple(args.shape)}, {time.perf_counter() - started:.0f} s")

        npe2.PluginManager.instance().discover()  # as napari does when it starts
        layers = npe2.read([str(result.output)], stack=False, plugin_name="bigseg")
        for data, kwargs, kind in layers:
            levels = data if kwargs.get("multiscale") else [data]
            shapes = " ".join("x".join(map(str, lv.shape)) for lv in levels)
            print(
                f"npe2.read: {kind:<7} scale {kwargs['scale']} µm, {len(levels)} level(s): {shapes}"
            )

        viewer = napari.Viewer(show=True)
        viewer.window.resize(1400, 900)
        viewer.open(str(result.output), plugin="bigseg")
        print("viewer.open:", [f"{type(layer).__name__} {layer.name}" for layer in viewer.layers])
        labels = viewer.layers["nuclei"]
        print(f"labels layer: multiscale {labels.multiscale}, {len(labels.data)} levels")
        viewer.dims.set_point(0, viewer.layers[0].data_to_world((1, 0, 0))[0])
        shots = Path(args.shots) if args.shots else None
        if shots:
            viewer.reset_view()
            viewer.screenshot(str(shots / "view-output.png"), canvas_only=True)
            viewer.scene.camera.zoom *= 6
            viewer.scene.camera.center = (0, 700, 700)
            viewer.screenshot(str(shots / "view-zoom.png"), canvas_only=True)

        stack_layer = viewer.layers[0]
        widget = SegmentWidget(viewer)
        viewer.window.add_dock_widget(widget, name="Find nuclei")
        widget._image.value = stack_layer
        timed = _time_previews(viewer, widget, stack_layer, repeats=args.repeats)
        shown = viewer.layers["preview"].data.shape
        stack = open_stack(image)
        side = shown[-1]
        plane = np.asarray(stack.data[1, :side, :side])
        params = Params()
        t0 = time.perf_counter()
        plain = as_stack(plane, scale=tuple(stack.attrs["scale"].values())[1:])
        segment(plain, params=params, threshold=global_threshold(plain, params=params)).compute()
        alone = time.perf_counter() - t0
        print(
            f"preview of {shown[-2]}x{shown[-1]} px in view, medians: ms in all, ms reading and "
            "segmenting, CPU ms of the process (all threads), napari's redraws of the layer:"
        )
        for case, rows in timed.items():
            total, seg, redraws, cpu = (statistics.median(r[k] for r in rows) for k in range(4))
            print(
                f"  {case:<30} {total * 1000:6.0f} {seg * 1000:6.0f} {cpu * 1000:6.0f} "
                f"{redraws:3.0f}   (n={len(rows)})"
            )
        print(f"  a {side}² crop in memory, segmented without napari: {alone * 1000:.0f} ms")
        if shots:
            from qtpy.QtWidgets import QApplication

            viewer.window.resize(1600, 900)
            for _ in range(5):
                QApplication.processEvents()
                time.sleep(0.2)
            viewer.window._qt_window.grab().save(str(shots / "view-widget.png"))
        viewer.close()
    finally:
        shutil.rmtree(root)


def _time_previews(viewer, widget, layer, *, repeats):
    """Time the widget's previews: the first, then the same view with other parameters, then
    other planes; each row (seconds in all, seconds reading and segmenting, redraws)."""
    from qtpy.QtWidgets import QApplication

    redraws = []

    def preview():
        redraws.clear()
        cpu = time.process_time()
        widget.preview()
        QApplication.processEvents()
        cpu = time.process_time() - cpu
        return widget.preview_seconds, widget.segment_seconds, len(redraws), cpu

    first = preview()
    viewer.layers["preview"].events.set_data.connect(lambda event: redraws.append(event))
    timed = {"first (adds the layer)": [first]}
    radius = widget._min_radius.value
    rows = []
    for i in range(repeats):
        widget._min_radius.value = radius * (1.0 + 0.05 * ((i % 2) + 1))
        rows.append(preview())
    widget._min_radius.value = radius
    timed["same view, other parameters"] = rows
    rows = []
    planes = (layer.data[0] if layer.multiscale else layer.data).shape[0]
    start = int(round(viewer.dims.point[0] / layer.scale[0]))
    for i in range(repeats):  # each preview on another plane than the one before
        viewer.dims.set_point(0, layer.data_to_world(((start + i + 1) % planes, 0, 0))[0])
        rows.append(preview())
    timed["another plane (reads it)"] = rows
    viewer.dims.set_point(0, layer.data_to_world((start, 0, 0))[0])
    widget.preview()
    return timed


if __name__ == "__main__":
    main()
