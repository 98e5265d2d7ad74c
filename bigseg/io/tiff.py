"""TIFF, OME-TIFF and ImageJ hyperstacks, read lazily page by page through tifffile."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import dask.array as da
import numpy as np

from .._errors import InputError
from ..reads import read_by_chunks, remember_read
from .checks import check_shape
from .scale import UNIT_TO_UM

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")


class _TiffArray:
    """A picklable, lazily read view of one TIFF series through tifffile's zarr store.

    Only the path travels to workers; each process opens the file once
    (cached) and reads the requested chunk through ``zarr``.
    """

    def __init__(self, path: str, series: int, shape: tuple[int, ...], dtype: np.dtype):
        self.path = path
        self.series = series
        self.shape = shape
        self.dtype = dtype
        self.ndim = len(shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            array = _tiff_zarr(self.path, self.series, os.path.getmtime(self.path))
            return read_by_chunks(array, key, array.chunks)
        except Exception as exc:  # codecs and tifffile raise many types for broken data
            raise InputError(
                f"Could not read {self.path!r} ({type(exc).__name__}: {exc}); the TIFF file "
                "may be truncated or corrupt: restore it from a copy or re-export it."
            ) from exc


@functools.lru_cache(maxsize=16)
def _tiff_zarr(path: str, series: int, mtime: float) -> Any:
    import tifffile
    import zarr

    store = tifffile.imread(path, aszarr=True, series=series, level=0)
    array = zarr.open(store, mode="r")
    # Close the file once the array is gone (evicted from this cache and no longer read),
    # rather than leave it to the garbage collector, which warns about unclosed files.
    weakref.finalize(array, store.close)
    return array


def open_tiff(path: str) -> tuple[da.Array, tuple[str, ...], list | None, tuple, str]:
    """Open a TIFF file lazily: its data, dims, voxel size, translation and format."""
    import tifffile

    try:
        with _tifffile_warnings() as warned, tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            axes = series.axes
            shape = tuple(series.shape)
            dtype = np.dtype(series.dtype)
            # Touch the last page: a truncated file fails here, not mid-run.
            if series.keyframe is None or len(tif.pages) == 0:
                raise ValueError("no image pages")
            _check_tiff_extent(tif, series, path)
            scale, fmt = _tiff_scale(tif, axes)
            broken = [m for m in warned if re.search("offset|corrupt|truncat", m, re.I)]
            if broken:
                raise ValueError(broken[0])
            arr = _tiff_zarr(path, 0, os.path.getmtime(path))
            chunks = arr.chunks
    except InputError:
        raise
    except Exception as exc:  # tifffile raises many types for broken files
        raise InputError(
            f"Could not read {path!r} as a TIFF ({type(exc).__name__}: {exc}); "
            "the file may be truncated, corrupt or not an image."
        ) from exc
    dims = _tiff_dims(axes, path)
    check_shape(shape, chunks, dtype, f"TIFF {path!r}")
    source = _TiffArray(path, 0, shape, dtype)
    data = da.from_array(
        source,
        chunks=chunks,
        name=f"tiff-{_token(path)}",
        asarray=False,
        lock=False,
        meta=np.empty((0,) * len(shape), dtype),
    )
    return remember_read(data, source), dims, scale, (0.0, 0.0, 0.0), fmt


@contextlib.contextmanager
def _tifffile_warnings() -> Iterator[list[str]]:
    """Collect tifffile's logged warnings (it logs, not raises, on broken files)."""
    messages: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("tifffile")
    handler = _Collect(logging.WARNING)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _check_tiff_extent(tif: Any, series: Any, path: str) -> None:
    """Refuse a TIFF whose image data would lie beyond the end of the file (truncated).

    Only the file's metadata is read: the data offsets of a contiguous series,
    otherwise of every page.
    """
    size = os.path.getsize(path)
    end = 0
    if series.dataoffset is not None:
        end = series.dataoffset + series.size * np.dtype(series.dtype).itemsize
    else:
        for page in tif.pages:
            offsets = getattr(page, "dataoffsets", ()) or ()
            counts = getattr(page, "databytecounts", ()) or ()
            for offset, count in zip(offsets, counts):
                end = max(end, offset + count)
    if end > size:
        raise InputError(
            f"TIFF {path!r} is truncated: its image data needs {end} bytes but the file has "
            f"{size}; copy or export it again."
        )


def _token(path: str) -> str:
    from dask.base import tokenize

    st = os.stat(path)
    return tokenize(os.path.abspath(path), st.st_mtime_ns, st.st_size)


def _tiff_dims(axes: str, path: str) -> tuple[str, ...]:
    mapping = {"T": "t", "Z": "z", "C": "c", "S": "c", "Y": "y", "X": "x"}
    dims = []
    for letter in axes:
        if letter in mapping:
            dims.append(mapping[letter])
        elif letter in "QIP" and "Z" not in axes and "z" not in dims:
            dims.append("z")  # an untagged page sequence is a z stack
        else:
            raise InputError(
                f"TIFF {path!r} has axes {axes!r}; bigseg understands T, Z, C, Y and X "
                "(save it as an ImageJ hyperstack or OME-TIFF with those axes)."
            )
    if dims.count("c") > 1:
        raise InputError(f"TIFF {path!r} has two channel-like axes ({axes!r}); split it first.")
    return tuple(dims)


def _tiff_scale(tif: Any, axes: str) -> tuple[list | None, str]:
    if tif.is_ome and tif.ome_metadata:
        return _ome_xml_scale(tif.ome_metadata), "ome-tiff"
    if tif.is_imagej:
        meta = tif.imagej_metadata or {}
        unit = str(meta.get("unit", "micron")).replace("\\u00B5", "µ")
        factor = UNIT_TO_UM.get(unit.lower(), None)
        xy = _resolution_um(tif.pages[0], factor)
        z = meta.get("spacing")
        if xy is None or factor is None:
            return None, "imagej-tiff"
        # No spacing: enough for one plane per time point (2D); resolve_scale decides.
        z_um = None if z is None else float(z) * factor
        return [z_um, xy[0], xy[1]], "imagej-tiff"
    return None, "tiff"


def _resolution_um(page: Any, factor: float | None) -> tuple[float, float] | None:
    if factor is None:
        return None
    out = []
    for tag in ("YResolution", "XResolution"):
        value = page.tags.get(tag)
        if value is None:
            return None
        num, den = value.value
        if num == 0 or (num == 1 and den == 1):
            return None
        out.append(den / num * factor)
    return out[0], out[1]


def _ome_xml_scale(xml: str) -> list | None:
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    pixels = next((el for el in root.iter() if el.tag.endswith("Pixels")), None)
    if pixels is None:
        return None
    values = []
    for ax in "ZYX":
        size = pixels.get(f"PhysicalSize{ax}")
        unit = pixels.get(f"PhysicalSize{ax}Unit", "µm")
        if size is None:
            if ax == "Z" and pixels.get("SizeZ", "1") == "1":
                size, unit = "1", "µm"  # a single plane: z spacing is irrelevant
            else:
                return None
        factor = UNIT_TO_UM.get(unit.lower())
        if factor is None:
            return None
        values.append(float(size) * factor)
    return values
