"""The time between time points, from an input's metadata.

ImageJ hyperstacks keep it as ``finterval`` (in ``tunit``, seconds by default),
OME-TIFF as ``Pixels/@TimeIncrement`` (in ``TimeIncrementUnit``, seconds by
default), OME-Zarr as the scale of its ``t`` axis (in that axis's ``unit``).
Anything unreadable gives None: the frame interval is optional.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

__all__ = ["TIME_UNIT_TO_S", "frame_interval"]

#: Seconds per time unit, by the names ImageJ, OME and NGFF use.
TIME_UNIT_TO_S: dict[str, float] = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "seconds": 1.0,
    "ms": 1e-3,
    "msec": 1e-3,
    "millisecond": 1e-3,
    "milliseconds": 1e-3,
    "min": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "day": 86400.0,
    "d": 86400.0,
}


def _seconds(value: Any, unit: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    factor = TIME_UNIT_TO_S.get(str(unit or "s").strip().lower())
    if factor is None or not math.isfinite(number) or number <= 0:
        return None
    return number * factor


def frame_interval(path: str, fmt: str) -> tuple[float | None, str | None]:
    """Seconds between time points of the input ``path`` of format ``fmt``, and where from.

    Returns
    -------
    (float or None, str or None)
        The interval and the metadata it came from (``"imagej:finterval"``,
        ``"ome-xml:TimeIncrement"``, ``"ome-zarr:t-scale"``); (None, None) when unknown.
    """
    try:
        if fmt.startswith("ome-zarr"):
            return _ome_zarr(path)
        if fmt in ("imagej-tiff", "ome-tiff", "tiff"):
            return _tiff(path)
    except Exception:  # noqa: BLE001 - optional metadata never fails a run
        return None, None
    return None, None


def _tiff(path: str) -> tuple[float | None, str | None]:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if tif.is_ome and tif.ome_metadata:
            root = ET.fromstring(tif.ome_metadata)
            pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
            if pixels is not None and pixels.get("TimeIncrement") is not None:
                value = _seconds(pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit"))
                if value is not None:
                    return value, "ome-xml:TimeIncrement"
        if tif.is_imagej:
            meta = tif.imagej_metadata or {}
            if "finterval" in meta:
                value = _seconds(meta["finterval"], meta.get("tunit"))
                if value is not None:
                    return value, "imagej:finterval"
    return None, None


def _ome_zarr(path: str) -> tuple[float | None, str | None]:
    import zarr

    attrs = dict(zarr.open_group(path, mode="r").attrs)
    meta = attrs.get("ome", attrs)
    ms = meta["multiscales"][0]
    names = [a["name"] if isinstance(a, dict) else a for a in ms["axes"]]
    if "t" not in names:
        return None, None
    k = names.index("t")
    axis = ms["axes"][k]
    scale = 1.0
    for owner in (ms["datasets"][0], ms):
        for tf in owner.get("coordinateTransformations", []):
            if tf.get("type") == "scale":
                scale *= float(tf["scale"][k])
    unit = axis.get("unit") if isinstance(axis, dict) else None
    if unit is None:
        return None, None
    value = _seconds(scale, unit)
    return (value, "ome-zarr:t-scale") if value is not None else (None, None)
