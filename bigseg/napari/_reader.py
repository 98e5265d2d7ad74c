"""Open a bigseg output directory in napari: image, label pyramid and centres, lazy, in µm."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..pipeline.outputs import is_run_record
from ..plots import napari_layers

LayerData = tuple[Any, dict, str]


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """Return the reader of a bigseg output directory, or None for anything else.

    Parameters
    ----------
    path : str or list of str
        What napari was asked to open: one output directory (with the
        ``run.json`` bigseg wrote), or its ``labels.zarr``.
    """
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if len(paths) != 1:
        return None
    return read_output if _output_of(paths[0]) is not None else None


def read_output(path: str | list[str]) -> list[LayerData]:
    """Layers of a bigseg output (:func:`bigseg.plots.napari_layers`), the image as a pyramid.

    The image is shown as the levels of its OME-Zarr pyramid when the run read
    one whole (no channel or time selection), e.g. the output of ``bigseg convert``.
    """
    out = _output_of(path if isinstance(path, str | os.PathLike) else path[0])
    if out is None:
        return []
    layers = napari_layers(out)
    image, kwargs, kind = layers[0]
    levels = _image_levels(out, image)
    if levels is not None:
        layers[0] = (levels, {**kwargs, "multiscale": True}, kind)
    return layers


def _output_of(path: str | os.PathLike) -> Path | None:
    """Return the output directory ``path`` is (or whose ``labels.zarr`` it is), or None."""
    p = Path(os.fspath(path).rstrip("/"))
    if p.name == "labels.zarr":
        p = p.parent
    record = p / "run.json"
    try:
        return p if record.is_file() and is_run_record(record.read_text()) else None
    except OSError:
        return None


def _image_levels(out: Path, image: Any) -> list | None:
    """Return the input's pyramid levels when the run read a whole OME-Zarr pyramid."""
    from ..io import open_levels

    inp = json.loads((out / "run.json").read_text())["input"]
    source = inp.get("source", "")
    if inp.get("t_selected") is not None or not os.path.isdir(source):
        return None
    try:
        levels = open_levels(source)
    except Exception:  # noqa: BLE001 - not an OME-Zarr image: the stack as napari_layers gives it
        return None
    if len(levels) < 2 or tuple(levels[0].shape) != tuple(image.shape):
        return None
    return levels
