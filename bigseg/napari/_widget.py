"""The "Find nuclei" widget: a method on the current image layer, previewed, then run in full.

Parameters are in µm; the voxel size is the image layer's ``scale`` in its
``units`` (:func:`voxel_um`): converted to µm where they are lengths (bigseg's
reader gives µm), taken as µm, and said so under the layer's name, where they are
not (napari's ``pixel``, the units of a plain array added without them).
*Preview* segments the part in view (at most :data:`PREVIEW_SIDE` px square) of the
plane shown (the current z and time point) in memory and shows it as a ``preview``
labels layer on that plane, updated in place by the next preview (one redraw); the
part read is kept, so a preview with other parameters of the same view reads
nothing.  Its global statistic is that part's own, so it may differ a little from
the full run's, which has one per time point.  *Run* starts :func:`bigseg.run` on a local
cluster (threads in this process, bound to 127.0.0.1) in a background thread,
shows each pass's progress and the dashboard link, can be cancelled, and adds
the label pyramid and the centres (with the nuclei table as features) as layers.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
)

from .. import methods
from .._errors import InputError
from ..colours import label_rgba
from ..io import MAX_LISTED_LABELS, open_levels, read_table
from ..params import Params
from ..pipeline import run
from ..pipeline.sink import dashboard_text
from ..segment import global_threshold, segment
from ..stack import as_stack

#: The preview segments at most this many px along y and x: the part of the plane in view,
#: around its centre (a 2048² plane whole would take seconds with the default method).
PREVIEW_SIDE = 768


class Cancelled(Exception):
    """The full run was cancelled from the widget."""


class SegmentWidget(Container):
    """Find nuclei in the current image layer (the plugin's dock widget).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose image layers the widget segments (napari passes it).
    """

    def __init__(self, napari_viewer: Any):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        defaults = Params()
        self._image = ComboBox(label="image", choices=self._image_layers, nullable=True)
        self._method = ComboBox(label="method", choices=list(methods.names()), value="default")
        self._min_radius = _um("min radius (µm)", defaults.min_radius)
        self._max_radius = _um("max radius (µm)", defaults.max_radius)
        self._smooth_radius = _um("smoothing (µm)", defaults.smooth_radius)
        self._output = FileEdit(label="output", mode="d", value="")
        self._preview_button = PushButton(text="Preview current plane")
        self._run_button = PushButton(text="Run")
        self._cancel_button = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, min=0, max=100)
        self._status = Label(label="", value="")
        self._voxel = Label(label="voxel", value="")
        with contextlib.suppress(AttributeError):  # a sentence, when the units are unknown
            self._voxel.native.setWordWrap(True)
        self.extend(
            [
                self._image,
                self._voxel,
                self._method,
                self._min_radius,
                self._max_radius,
                self._smooth_radius,
                self._output,
                self._preview_button,
                self._run_button,
                self._cancel_button,
                self._progress,
                self._status,
            ]
        )
        self._preview_button.changed.connect(self.preview)
        self._run_button.changed.connect(self.start_run)
        self._cancel_button.changed.connect(self.cancel)
        for event in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            event.connect(self._layers_changed)
        self._image.changed.connect(self._show_voxel)
        self._show_voxel()
        self._worker: Any = None
        #: The part of a plane the last preview read: the layer's data, where, the part.
        self._read: tuple[Any, tuple, np.ndarray] | None = None
        self._cancel = threading.Event()
        #: Seconds of the last preview: in all, and segmenting only (the rest is napari's).
        self.preview_seconds: float | None = None
        self.segment_seconds: float | None = None

    # --- the parameters -------------------------------------------------------------------------

    def _image_layers(self, _widget: Any = None) -> list[tuple[str, Any]]:
        from napari.layers import Image

        return [(layer.name, layer) for layer in self._viewer.layers if isinstance(layer, Image)]

    def params(self) -> Params:
        """Return the parameters the widget shows (µm)."""
        return Params.from_preset(
            self._method.value,
            min_radius=float(self._min_radius.value),
            max_radius=float(self._max_radius.value),
            smooth_radius=float(self._smooth_radius.value),
        )

    def _layers_changed(self, *_: Any) -> None:
        self._image.reset_choices()
        self._show_voxel()

    def _show_voxel(self, *_: Any) -> None:
        """Show the voxel size of the layer the widget would segment (the sentence)."""
        layer = self._image.value
        if layer is None:  # the last image layer, as _layer picks it
            choices = self._image_layers()
            layer = choices[-1][1] if choices else None
        self._voxel.value = "" if layer is None else voxel_um(layer)[2]

    def _layer(self) -> Any:
        layer = self._image.value
        if layer is None:
            choices = self._image_layers()
            if not choices:
                raise InputError("Add an image layer first: the widget segments an image layer.")
            layer = choices[-1][1]
            self._image.value = layer
        return layer

    # --- preview --------------------------------------------------------------------------------

    def preview(self, *_: Any) -> Any:
        """Segment the current plane (z and time point shown) into a ``preview`` layer.

        Returns the layer, or None when bigseg refuses the input or parameters (the
        sentence is shown in the widget's status line).
        """
        try:
            return self._preview()
        except InputError as exc:
            self._status.value = f"preview: {exc}"
            return None

    def _preview(self) -> Any:
        layer = self._layer()
        started = time.perf_counter()
        data = layer.data[0] if layer.multiscale else layer.data
        index = _current_index(self._viewer, layer)
        leading = index[:-2]
        (y0, y1), (x0, x1) = _in_view(layer, data.shape[-2:])
        key = (tuple(leading), y0, y1, x0, x1)
        if self._read is None or self._read[0] is not data or self._read[1] != key:
            part = np.asarray(data[(*leading, slice(y0, y1), slice(x0, x1))])
            self._read = (data, key, part)  # another view, plane or layer: read again
        plane = self._read[2]
        scale, _, note = voxel_um(layer)
        stack = as_stack(plane, scale=scale[-2:])
        params = self.params()
        threshold = global_threshold(stack, params=params)
        labels = segment(stack, params=params, threshold=threshold).data
        found = np.asarray(labels.compute(scheduler="threads"))[0].astype(np.uint32)
        self.segment_seconds = time.perf_counter() - started
        place = {
            "scale": tuple(float(s) for s in layer.scale),
            "translate": tuple(
                float(t) + float(s) * i
                for t, s, i in zip(layer.translate, layer.scale, (*leading, y0, x0))
            ),
        }
        shaped = found.reshape((1,) * len(leading) + found.shape)
        if "preview" in self._viewer.layers and self._viewer.layers["preview"].ndim != shaped.ndim:
            self._viewer.layers.remove("preview")  # of a layer with other dims: made anew
        if "preview" in self._viewer.layers:
            added = self._viewer.layers["preview"]
            _update_in_place(added, shaped, place)
        else:
            added = self._viewer.add_labels(shaped, name="preview", **place, **_units_of(layer))
        self.preview_seconds = time.perf_counter() - started
        count = len(np.unique(found)) - (1 if (found == 0).any() else 0)
        self._voxel.value = note
        self._status.value = (
            f"preview: {count} regions in {self.preview_seconds * 1000:.0f} ms "
            f"({self.segment_seconds * 1000:.0f} ms segmenting)"
        )
        return added

    # --- the full run ---------------------------------------------------------------------------

    def start_run(self, *_: Any) -> Any:
        """Run the method on the whole layer in the background; returns the napari worker.

        Returns None, with the sentence in the status line, when bigseg refuses the layer.
        """
        from napari.qt.threading import create_worker

        try:
            layer = self._layer()
            out = _output_path(self._output.value, layer.name)
            stack = _layer_stack(layer)
        except InputError as exc:
            self._status.value = f"run: {exc}"
            return None
        self._voxel.value = voxel_um(layer)[2]
        self._cancel.clear()
        worker = create_worker(_run_in_background, stack, out, self.params(), self._cancel)
        worker.yielded.connect(self._on_event)
        worker.returned.connect(lambda result: self._on_done(result, layer))
        worker.errored.connect(self._on_error)
        worker.finished.connect(self._on_finished)
        self._run_button.enabled = False
        self._cancel_button.enabled = True
        self._progress.value = 0
        self._status.value = "starting a local cluster ..."
        self._worker = worker
        worker.start()
        return worker

    def cancel(self, *_: Any) -> None:
        """Stop the full run at its next finished task."""
        self._cancel.set()
        self._status.value = "cancelling ..."

    def _on_event(self, event: tuple) -> None:
        kind, *values = event
        if kind == "dashboard":
            self._status.value = f"running; {dashboard_text(values[0])}"
        elif kind == "progress":
            done, total, n = values
            self._progress.value = int(100 * done / max(total, 1))
            self._progress.label = f"pass {n}"

    def _on_done(self, result: Any, layer: Any) -> None:
        if result is None:
            self._status.value = "cancelled"
            return
        for data, kwargs, kind in output_layers(result, layer):
            getattr(self._viewer, f"add_{kind}")(data, **kwargs)
        self._progress.value = 100
        self._status.value = (
            f"{len(read_table(Path(result) / 'nuclei.parquet'))} nuclei in {result}"
        )

    def _on_error(self, exc: BaseException) -> None:
        self._status.value = "cancelled" if isinstance(exc, Cancelled) else f"failed: {exc}"

    def _on_finished(self) -> None:
        self._run_button.enabled = True
        self._cancel_button.enabled = False
        self._worker = None


def _um(label: str, value: float) -> FloatSpinBox:
    return FloatSpinBox(label=label, value=value, min=0.01, max=10_000.0, step=0.1)


def voxel_um(layer: Any) -> tuple[tuple[float, ...], tuple[float, ...], str]:
    """Return the layer's voxel size and origin in µm (its spatial axes), and a sentence.

    A layer's ``scale`` and ``translate`` are in its ``units``: where every spatial
    axis (the last three, or two for a 2D layer) has a length unit they are converted
    to µm; otherwise (napari's ``pixel``, which a plain array added without units
    has) the numbers are taken as µm, and the sentence says so.
    """
    spatial = min(3, layer.ndim)
    scale = [float(s) for s in layer.scale[-spatial:]]
    origin = [float(t) for t in layer.translate[-spatial:]]
    units = list(getattr(layer, "units", None) or ())[-spatial:]
    factors = [_to_um(u) for u in units]
    shown = " x ".join(f"{v:.4g}" for v in scale)
    if len(factors) == spatial and all(f is not None for f in factors):
        scale = [v * f for v, f in zip(scale, factors)]
        origin = [v * f for v, f in zip(origin, factors)]
        size = " x ".join(f"{v:.4g}" for v in scale)
        return tuple(scale), tuple(origin), f"{size} µm, from the layer's scale"
    named = sorted({str(u) for u in units}) or ["none"]
    note = (
        f"The layer's scale ({shown}) has no length units ({', '.join(named)}), so it is "
        f"taken as µm: voxels of {shown} µm; if that is wrong, set the layer's scale to its "
        "voxel size in µm."
    )
    return tuple(scale), tuple(origin), note


def _to_um(unit: Any) -> float | None:
    """Return µm per ``unit`` for a length unit (pint), None for anything else."""
    try:
        quantity = 1 * unit
        return float(quantity.to("micrometer").magnitude)
    except Exception:  # noqa: BLE001 - pixel, seconds, or not a pint unit: not a length
        return None


def _units_of(layer: Any) -> dict[str, Any]:
    """Return ``{"units": ...}`` of the layer, to place new layers as it is (napari >= 0.5)."""
    units = getattr(layer, "units", None)
    return {} if units is None else {"units": tuple(units)}


def _update_in_place(layer: Any, data: np.ndarray, place: dict[str, tuple]) -> None:
    """Give an existing layer new data (and new place, when changed), redrawn once.

    Each of napari's setters (``scale``, ``translate``, ``data``) slices and redraws
    the layer; the place is set with that held back, and ``data`` redraws.
    """
    hold = getattr(layer, "_block_refresh", contextlib.nullcontext)
    with hold():
        for name, value in place.items():
            if not np.allclose(getattr(layer, name), value):
                setattr(layer, name, value)
    layer.data = data


def _current_index(viewer: Any, layer: Any) -> list[int]:
    """Return the data index of the layer at the viewer's current position (all axes)."""
    point = np.asarray(viewer.dims.point)[-layer.ndim :]
    coords = layer.world_to_data(point)
    shape = (layer.data[0] if layer.multiscale else layer.data).shape
    return [int(np.clip(round(float(c)), 0, n - 1)) for c, n in zip(coords, shape)]


def _in_view(layer: Any, shape: tuple) -> tuple[tuple[int, int], tuple[int, int]]:
    """Return the y and x ranges in view, at most :data:`PREVIEW_SIDE` around their centre."""
    try:  # the canvas's corners in data pixels, the last one inclusive
        corners = np.asarray(layer.corner_pixels, dtype=float)[:, -2:] + [[0.0], [1.0]]
    except (AttributeError, IndexError, ValueError):
        corners = np.array([[0.0, 0.0], [shape[0], shape[1]]])
    ranges = []
    for axis, n in enumerate(shape):
        lo, hi = (int(np.clip(v, 0, n)) for v in corners[:, axis])
        if hi - lo < 2:  # nothing in view along this axis (no canvas yet): the whole plane
            lo, hi = 0, int(n)
        if hi - lo > PREVIEW_SIDE:
            centre = (lo + hi) // 2
            lo = max(0, min(centre - PREVIEW_SIDE // 2, int(n) - PREVIEW_SIDE))
            hi = lo + PREVIEW_SIDE
        ranges.append((lo, hi))
    return ranges[0], ranges[1]


def _layer_stack(layer: Any) -> Any:
    """Return the image layer as a bigseg stack: ``(z, y, x)`` or ``(t, z, y, x)`` in µm."""
    data = layer.data[0] if layer.multiscale else layer.data
    scale, origin, _ = voxel_um(layer)
    if data.ndim == 2:  # one plane (no result depends on a z voxel size)
        return as_stack(data, scale=scale, translation=(0.0, *origin))
    if data.ndim in (3, 4):  # a time-lapse's t step is not a voxel size
        return as_stack(data, scale=scale, translation=origin)
    raise InputError(
        f"The image layer has {data.ndim} dims; bigseg segments 2, 3 or 4 (t, z, y, x)."
    )


def _output_path(value: Any, name: str) -> Path:
    text = os.fspath(value) if value is not None else ""
    if text in ("", "."):
        return Path.cwd() / f"{name}-nuclei"
    return Path(text)


def _run_in_background(
    stack: Any, out: Path, params: Params, cancel: threading.Event
) -> Iterator[tuple]:
    """Run bigseg on a local cluster; yield ``("dashboard", link)`` and ``("progress", ...)``.

    Returns the output directory, or None when cancelled before the run started.
    """
    import dask
    from distributed import Client, LocalCluster, as_completed

    from ..pipeline.sink import LOCAL_CLUSTER_CONFIG

    events: queue.Queue = queue.Queue()
    outcome: dict[str, Any] = {}
    threads = max(1, min(4, os.cpu_count() or 1))
    with (
        dask.config.set(LOCAL_CLUSTER_CONFIG),  # no profiler growing napari's process
        LocalCluster(
            n_workers=1,
            threads_per_worker=threads,
            processes=False,
            host="127.0.0.1",
            protocol="tcp://",  # with the dashboard, nothing listens beyond 127.0.0.1
            dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield ("dashboard", client.dashboard_link)
        if cancel.is_set():
            return None
        passes = [0]

        def watch(futures: list) -> None:
            passes[0] += 1
            done = 0
            for _ in as_completed(futures):
                done += 1
                events.put(("progress", done, len(futures), passes[0]))
                if cancel.is_set():
                    client.cancel(futures)
                    raise Cancelled("cancelled from the widget")

        def work() -> None:
            try:
                outcome["result"] = run(stack, out, params=params, client=client, progress=watch)
            except BaseException as exc:  # noqa: BLE001 - handed to the widget's thread
                outcome["error"] = exc

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while thread.is_alive() or not events.empty():
            try:
                yield events.get(timeout=0.1)
            except queue.Empty:
                pass
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return str(outcome["result"].output)


def output_layers(out: str | os.PathLike, layer: Any) -> list[tuple[Any, dict, str]]:
    """Label pyramid and centres of a run of ``layer``, placed like ``layer``.

    Parameters
    ----------
    out : path-like
        The run's output directory.
    layer : napari.layers.Image
        The image layer that was segmented.
    """
    out = Path(out)
    levels = open_levels(out / "labels.zarr")
    nuclei = read_table(out / "nuclei.parquet")
    two_d = layer.ndim == 2
    if two_d:
        levels = [level[0] for level in levels]
    position = {2: ["y", "x"], 3: ["z", "y", "x"], 4: ["t", "z", "y", "x"]}[layer.ndim]
    place = {"scale": tuple(layer.scale), "translate": tuple(layer.translate), **_units_of(layer)}
    ids = nuclei["nucleus"].to_numpy(np.int64)
    labels_kwargs: dict[str, Any] = {
        "name": "nuclei",
        "features": nuclei.rename(columns={"nucleus": "index"}),
        **place,
    }
    if len(levels) > 1:
        labels_kwargs["multiscale"] = True
    colours = label_rgba(ids) / 255.0 if len(ids) else np.zeros((0, 4))
    if 0 < len(ids) <= MAX_LISTED_LABELS:
        labels_kwargs["colormap"] = {
            None: (0.0, 0.0, 0.0, 0.0),
            **{int(i): tuple(c) for i, c in zip(ids, colours)},
        }
    points_kwargs = {
        "name": "centres",
        "size": 2.0 / float(np.mean(voxel_um(layer)[0][-2:])),  # 2 µm across
        "face_color": colours if len(ids) else "white",
        "features": nuclei,
        **place,
    }
    return [
        (levels if len(levels) > 1 else levels[0], labels_kwargs, "labels"),
        (nuclei[position].to_numpy(np.float64), points_kwargs, "points"),
    ]
