"""Reading stacks lazily and writing labels and tables.

`open_stack` turns a TIFF, OME-TIFF, ImageJ hyperstack, OME-Zarr (0.4 or 0.5),
plain Zarr array, or a folder or glob pattern of TIFF files (one per time point
or plane) into an :class:`xarray.DataArray` with dims
``("z", "y", "x")`` or ``("t", "z", "y", "x")``, coordinates in µm and a dask
array whose chunks line up with the storage chunks.  Nothing is read until a
sink computes.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import logging
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from . import _objstore
from ._errors import InputError
from .colours import label_rgba
from .stack import (
    PLANAR_Z,
    SPATIAL,
    fmt_values,
    labelled,
    validated_scale,
    warn_implausible,
)

__all__ = ["open_stack", "write_labels", "write_ngff_image"]

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
_UNIT_TO_UM = {
    "micrometer": 1.0,
    "micron": 1.0,
    "um": 1.0,
    "µm": 1.0,
    "\u03bcm": 1.0,  # Greek mu
    "nanometer": 1e-3,
    "nm": 1e-3,
    "millimeter": 1e3,
    "mm": 1e3,
    "centimeter": 1e4,
    "cm": 1e4,
    "meter": 1e6,
    "m": 1e6,
}
_SUPPORTED_KINDS = "uif"  # unsigned, signed integer, float
#: The metadata each format's voxel size is read from (recorded as ``scale_source``).
_SCALE_KEYS = {
    "ome-tiff": "OME-XML Pixels PhysicalSizeZ/Y/X",
    "imagej-tiff": "ImageJ spacing and TIFF X/YResolution",
    "ome-zarr": "multiscales coordinateTransformations scale",
}


def open_stack(
    path: str | os.PathLike,
    *,
    scale: Sequence[float] | None = None,
    chunks: Mapping[str, int] | Sequence[int] | None = None,
    channel: int | None = None,
    files_axis: str | None = None,
) -> xr.DataArray:
    """Open a microscopy stack lazily as a labelled dask-backed array.

    Parameters
    ----------
    path : str or path-like
        A TIFF / OME-TIFF / ImageJ file, an OME-Zarr image group (NGFF 0.4 or
        0.5; the highest resolution level is used) or a Zarr array.  Zarr
        inputs may also be fsspec URLs (``s3://bucket/stack.zarr``;
        credentials from the environment).  A folder that is not a Zarr
        store, or a glob pattern (``"planes/*.tif"``), is a sequence of TIFF
        files in natural order (``t2`` before ``t10``), such as the Cell
        Tracking Challenge's ``t000.tif, t001.tif, ...``: all files must have
        one shape and dtype, and the voxel size comes from the first file.
    scale : sequence of 3 floats, optional
        Voxel size ``(z, y, x)`` in µm.  Overrides the file's metadata; needed
        when the file has none.  A 2D image or time-lapse (one plane per time
        point) needs only ``(y, x)``; its z size is unused and stored as 1.0.
        A value above 50 µm or below 5 nm, a probable X Y Z order, or a size
        more than 2x away from the file's metadata is warned about
        (:class:`bigseg.ScaleWarning`), naming both values.
    chunks : mapping or sequence, optional
        Dask chunks per dim (``{"z": 4}`` or ``(z, y, x)``); by default the
        storage chunks.
    channel : int, optional
        Which channel to keep when the data has a channel axis of size > 1.
    files_axis : {"t", "z"}, optional
        For a sequence of files: the axis the files make, ``"t"`` (the
        default; one file per time point) or ``"z"`` (one file per plane, or
        per slab of planes).  Files that have this axis themselves are joined
        along it.

    Returns
    -------
    xarray.DataArray
        Dims ``("z", "y", "x")`` or ``("t", "z", "y", "x")``; coordinates in µm
        (``z = index * scale_z + translation_z``); ``attrs`` hold ``scale``,
        ``translation`` (dicts of µm per spatial dim), ``scale_source``
        (``"option"`` or ``"metadata:<where>"``), ``source`` and ``format``.
        A 2D image becomes a stack of one plane.

    Raises
    ------
    InputError
        When the path is missing or unreadable, the array is not an image
        bigseg can segment, or no voxel size is known.
    """
    path_str = os.fspath(path)
    remote = _objstore.is_url(path_str)  # fsspec URL: Zarr / OME-Zarr on object storage
    if remote and path_str.lower().endswith(TIFF_SUFFIXES):
        raise InputError(
            f"Input {path_str!r}: TIFF inputs must be local files; convert to OME-Zarr to "
            "read from object storage."
        )
    files = None if remote else _sequence_files(path_str)
    if files_axis is not None and files is None:
        raise InputError(
            f"files_axis={files_axis!r} applies to a folder or a glob pattern of TIFF files, "
            f"not to {path_str!r}; drop it."
        )
    if files is None and not remote and not os.path.exists(path_str):
        raise InputError(f"Input {path_str!r} does not exist; check the path.")
    if remote:
        _objstore.configure_retries()
    if files is not None:
        data, dims, meta_scale, translation, fmt = _open_sequence(
            files, "t" if files_axis is None else files_axis, path_str
        )
    elif remote or os.path.isdir(path_str):
        data, dims, meta_scale, translation, fmt = _open_zarr(path_str)
    elif path_str.lower().endswith(TIFF_SUFFIXES):
        data, dims, meta_scale, translation, fmt = _open_tiff(path_str)
    else:
        raise InputError(
            f"Input {path_str!r} is neither a TIFF file (.tif/.tiff) nor a Zarr "
            "directory; convert it to one of these formats."
        )
    if any(d not in ("t", "c", "z", "y", "x") for d in dims) or len(dims) > 5:
        raise InputError(
            f"Input {path_str!r} has dims {dims}; bigseg reads images with dims among "
            "t, c, z, y, x including y and x."
        )
    data, dims = _select_channel(data, dims, channel, path_str)
    data, dims = _to_standard_dims(data, dims, path_str)
    _check_dtype(data.dtype, path_str)
    if any(n == 0 for n in data.shape):
        raise InputError(
            f"Input {path_str!r} has an empty axis (shape {dict(zip(dims, data.shape))}); "
            "it holds no image to segment."
        )
    resolved = _resolve_scale(scale, meta_scale, path_str, data.shape[dims.index("z")])
    if chunks is not None:
        data = data.rechunk(_chunks_for(chunks, dims))
    stack = labelled(data, dims, resolved, translation, path_str, fmt)
    if files is not None:
        stack.attrs["files"] = len(files)
        stack.attrs["files_axis"] = "t" if files_axis is None else files_axis
    # Provenance for run.json: where the voxel size came from, which channel was kept.
    kind = fmt.split("-0.")[0].removesuffix("-sequence")
    stack.attrs["scale_source"] = (
        "option" if scale is not None else f"metadata:{_SCALE_KEYS.get(kind, fmt)}"
    )
    stack.attrs["channel"] = channel
    return stack


# --------------------------------------------------------------------------- TIFF


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
            return np.asarray(_tiff_zarr(self.path, self.series, os.path.getmtime(self.path))[key])
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
    return zarr.open(store, mode="r")


def _open_tiff(path: str) -> tuple[da.Array, tuple[str, ...], list | None, tuple, str]:
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
    _check_shape(shape, chunks, dtype, f"TIFF {path!r}")
    data = da.from_array(
        _TiffArray(path, 0, shape, dtype),
        chunks=chunks,
        name=f"tiff-{_token(path)}",
        asarray=False,
        lock=False,
        meta=np.empty((0,) * len(shape), dtype),
    )
    return data, dims, scale, (0.0, 0.0, 0.0), fmt


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
        factor = _UNIT_TO_UM.get(unit.lower(), None)
        xy = _resolution_um(tif.pages[0], factor)
        z = meta.get("spacing")
        if xy is None or factor is None:
            return None, "imagej-tiff"
        # No spacing: enough for one plane per time point (2D); _resolve_scale decides.
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
        factor = _UNIT_TO_UM.get(unit.lower())
        if factor is None:
            return None
        values.append(float(size) * factor)
    return values


# --------------------------------------------------------------------------- TIFF sequences

#: Files whose presence makes a folder a Zarr store (v3, or v2 array / group / attributes).
ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def _is_tiff_file(path: str) -> bool:
    name = os.path.basename(path)
    return (
        not name.startswith(".") and name.lower().endswith(TIFF_SUFFIXES) and os.path.isfile(path)
    )


def _sequence_files(path: str) -> list[str] | None:
    """Return the TIFF files of a folder or glob pattern in natural order (None: not one).

    A folder with Zarr metadata is a Zarr store, not a sequence.  Hidden files
    (``._t000.tif`` from macOS) are left out, as are files that are not TIFF.
    """
    import tifffile

    if os.path.isdir(path):
        if any(os.path.exists(os.path.join(path, n)) for n in ZARR_METADATA):
            return None
        with os.scandir(path) as entries:
            files = [e.path for e in entries if _is_tiff_file(e.path)]
        if not files:
            raise InputError(
                f"Input {path!r} is a folder that is neither a Zarr store nor holds TIFF "
                "files (.tif/.tiff); give a Zarr image, a folder of TIFF files or a "
                f"pattern such as {os.path.join(path, '*.tif')!r}."
            )
        return tifffile.natural_sorted(files)
    if os.path.exists(path) or not glob.has_magic(path):
        return None
    matches = glob.glob(path)
    if not matches:
        raise InputError(
            f"The pattern {path!r} matches no files; check the folder and the pattern "
            "(e.g. 'planes/*.tif', quoted so that the shell leaves it to bigseg)."
        )
    files = [m for m in matches if _is_tiff_file(m)]
    if not files:
        raise InputError(
            f"The pattern {path!r} matches {len(matches)} file{'s' if len(matches) > 1 else ''} "
            "but no TIFF file (.tif/.tiff); bigseg reads sequences of TIFF files."
        )
    return tifffile.natural_sorted(files)


def _open_sequence(
    files: Sequence[str], files_axis: str, path: str
) -> tuple[da.Array, tuple[str, ...], list | None, tuple, str]:
    """Open TIFF files lazily as one array, the files making the ``files_axis`` axis.

    Each file is opened as a single TIFF (its headers only, page-sized chunks);
    all must have the dims, shape and dtype of the first, whose metadata gives
    the voxel size.
    """
    if files_axis not in ("t", "z"):
        raise InputError(
            f"files_axis={files_axis!r} is not an axis the files can make; choose 't' "
            "(one file per time point) or 'z' (one file per plane)."
        )
    first, dims, meta_scale, translation, fmt = _open_tiff(files[0])
    arrays = [first]
    for name in files[1:]:
        data, file_dims = _open_tiff(name)[:2]
        if file_dims != dims or data.shape != first.shape or data.dtype != first.dtype:
            raise InputError(
                f"File {os.path.basename(name)!r} of {path!r} has shape {data.shape} "
                f"({''.join(file_dims)}) and dtype {data.dtype}, but the first file "
                f"{os.path.basename(files[0])!r} has shape {first.shape} ({''.join(dims)}) "
                f"and dtype {first.dtype}; every file of a sequence must match: re-export "
                "it or leave it out of the folder or pattern."
            )
        arrays.append(data)
    if files_axis == "z" and "t" in dims:
        raise InputError(
            f"The files of {path!r} have a time axis ({''.join(dims)}), so they cannot be "
            "the planes of one stack; open them with files_axis='t'."
        )
    if files_axis in dims:
        data = da.concatenate(arrays, axis=dims.index(files_axis))
    else:
        data, dims = da.stack(arrays, axis=0), (files_axis, *dims)
        if files_axis == "z":
            meta_scale = None  # single planes carry no z spacing: --scale must give it
    return data, dims, meta_scale, translation, f"{fmt}-sequence"


# --------------------------------------------------------------------------- Zarr


def _open_zarr(path: str) -> tuple[da.Array, tuple[str, ...], list | None, tuple, str]:
    import zarr

    _check_raw_zarr_metadata(path, path)
    try:
        node = zarr.open(path, mode="r")
    except Exception as exc:
        raise InputError(
            f"Could not open {path!r} as Zarr ({type(exc).__name__}: {exc}); a directory "
            "input must be a Zarr array or an OME-Zarr image."
        ) from exc
    if isinstance(node, zarr.Array):
        _check_codecs(node, path)
        dims = _zarr_dim_names(node)
        scale = None
        return _from_zarr(node, path), dims, scale, (0.0, 0.0, 0.0), "zarr"
    where = _group_metadata_file(path)
    attrs = dict(node.attrs)
    ome = attrs.get("ome", attrs)
    _expect(ome, Mapping, "attributes 'ome'", where)
    multiscales = ome.get("multiscales")
    if not multiscales:
        arrays = sorted(name for name, _ in node.arrays())
        hint = (
            f" It holds the arrays {arrays}: pass one of them, e.g. {path}/{arrays[0]}."
            if arrays
            else ""
        )
        raise InputError(f"Zarr group {path!r} has no OME-Zarr 'multiscales' metadata.{hint}")
    _expect(multiscales, list, "'multiscales'", where)
    ms = _expect(multiscales[0], Mapping, "'multiscales[0]'", where)
    version = str(ome.get("version", ms.get("version", "0.4")))
    axes_meta = _expect(ms.get("axes", []), list, "'multiscales[0].axes'", where)
    for i, a in enumerate(axes_meta):
        key = f"'multiscales[0].axes[{i}]'"
        if isinstance(a, Mapping):
            _expect(a.get("name"), str, key[:-1] + ".name'", where)
            _expect(a.get("unit", ""), (str, type(None)), key[:-1] + ".unit'", where)
        else:
            _expect(a, str, key, where)
    axes = [a["name"] if isinstance(a, Mapping) else a for a in axes_meta]
    datasets = _expect(ms.get("datasets"), list, "'multiscales[0].datasets'", where)
    if not datasets:
        _expect(datasets, list, "'multiscales[0].datasets'", where, "a non-empty list")
    dataset = _expect(datasets[0], Mapping, "'multiscales[0].datasets[0]'", where)
    dataset_path = _expect(dataset.get("path"), str, "'multiscales[0].datasets[0].path'", where)
    if dataset_path.strip("/") in ("", ".") or ".." in dataset_path.split("/"):
        _expect(dataset_path, str, "'multiscales[0].datasets[0].path'", where, "an array's path")
    _check_raw_zarr_metadata(os.path.join(path, dataset_path), path)
    try:
        array = node[dataset_path]
        if not isinstance(array, zarr.Array):
            raise TypeError(f"{dataset_path!r} is a group, not an array")
    except Exception as exc:
        raise InputError(
            f"Could not open the array {dataset_path!r} of the OME-Zarr image {path!r} "
            f"({type(exc).__name__}: {exc}); the image is incomplete or corrupt."
        ) from exc
    _check_codecs(array, path)
    if not axes:
        axes = list(_zarr_dim_names(array))
    elif len(axes) != array.ndim:
        raise InputError(
            f"The OME-Zarr metadata {where!r} lists {len(axes)} axes for an array of "
            f"{array.ndim} dims (shape {array.shape}); the image is corrupt: repair or "
            "re-export it."
        )
    units = [a.get("unit") if isinstance(a, Mapping) else None for a in axes_meta]
    scale_all = [1.0] * len(axes)
    trans_all = [0.0] * len(axes)
    lists = (
        ("'multiscales[0].datasets[0].coordinateTransformations'", dataset),
        ("'multiscales[0].coordinateTransformations'", ms),
    )
    for key, owner in lists:
        transforms = _expect(owner.get("coordinateTransformations", []), list, key, where)
        for i, tf in enumerate(transforms):
            tf_key = f"{key[:-1]}[{i}]'"
            _expect(tf, Mapping, tf_key, where)
            kind = tf.get("type")
            if kind not in ("scale", "translation"):
                continue
            values = _numbers(tf.get(kind), len(axes), f"{tf_key[:-1]}.{kind}'", where)
            if kind == "scale":
                scale_all = [a * b for a, b in zip(scale_all, values)]
                trans_all = [a * b for a, b in zip(trans_all, values)]
            else:
                trans_all = [a + b for a, b in zip(trans_all, values)]
    factors = [_UNIT_TO_UM.get(str(u).lower(), 1.0) if u else 1.0 for u in units] or [1.0] * len(
        axes
    )
    by_name = {n: (s * f, o * f) for n, s, o, f in zip(axes, scale_all, trans_all, factors)}
    has_scale = any(
        tf.get("type") == "scale" for tf in dataset.get("coordinateTransformations", [])
    )
    scale = [by_name.get(n, (1.0, 0.0))[0] for n in SPATIAL] if has_scale else None
    translation = tuple(by_name.get(n, (1.0, 0.0))[1] for n in SPATIAL)
    if not all(math.isfinite(v) for v in translation):
        raise InputError(
            f"The OME-Zarr metadata {where!r} gives a non-finite translation {translation}; "
            "repair or re-export the image."
        )
    return _from_zarr(array, path), tuple(axes), scale, translation, f"ome-zarr-{version}"


def _group_metadata_file(path: str) -> str:
    """Name the file that holds a Zarr group's attributes (``zarr.json`` or ``.zattrs``)."""
    if _objstore.is_url(path):
        return path
    for name in ("zarr.json", ".zattrs"):
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name)
    return path


_TYPE_NAMES = {Mapping: "an object", list: "a list", str: "a string"}


def _expect(value: Any, kind: Any, key: str, where: str, wanted: str | None = None) -> Any:
    """Return ``value`` when it is of type ``kind``; otherwise refuse the metadata."""
    if wanted is None and isinstance(value, kind) and not isinstance(value, bool):
        return value
    wanted = wanted or _TYPE_NAMES.get(kind[0] if isinstance(kind, tuple) else kind, "valid")
    shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
    raise InputError(
        f"The OME-Zarr metadata {where!r} has an invalid {key}: {shown} is not {wanted}; "
        "repair or re-export the image."
    )


def _numbers(value: Any, n: int, key: str, where: str) -> list[float]:
    """Return the ``n`` finite numbers of a scale or translation, or refuse the metadata."""
    ok = (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        and all(math.isfinite(float(v)) for v in value)
    )
    if not ok:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
        raise InputError(
            f"The OME-Zarr metadata {where!r} has an invalid {key}: {shown} is not a list of "
            f"{n} finite numbers (one per axis); repair or re-export the image."
        )
    return [float(v) for v in value]


def _zarr_dim_names(array: Any) -> tuple[str, ...]:
    names = getattr(array.metadata, "dimension_names", None)
    if not names:
        names = array.attrs.get("_ARRAY_DIMENSIONS")
    if names and not (
        isinstance(names, (list, tuple))
        and len(names) == array.ndim
        and all(isinstance(n, str) or n is None for n in names)
    ):
        raise InputError(
            f"Zarr array with shape {array.shape} has invalid dimension names {names!r:.60}; "
            "they must be one name per dim: repair the metadata or re-export the image."
        )
    if names and all(names):
        return tuple(str(n).lower() for n in names)
    if not 2 <= array.ndim <= 4:
        raise InputError(
            f"Zarr array with shape {array.shape} has no dimension names; bigseg reads "
            "2D (y, x), 3D (z, y, x) or 4D (t, z, y, x) arrays, or named dims."
        )
    return ("t", "z", "y", "x")[-array.ndim :]


#: Codecs of object (non-numeric) data; ``pickle`` runs arbitrary code when decoded.
UNSAFE_CODECS = frozenset(
    {"pickle", "msgpack", "msgpack2", "json", "json2", "vlen-utf8", "vlen-bytes", "vlen-array"}
)


def _codec_ids(meta: Mapping[str, Any]) -> list[str]:
    """Codec identifiers of Zarr v2 or v3 array metadata (nested sharding codecs too)."""
    ids: list[str] = []

    def listed(value: Any) -> list:
        return value if isinstance(value, list) else [value] if value else []

    def visit(codec: Any) -> None:
        if isinstance(codec, str):
            ids.append(codec.lower())
        elif isinstance(codec, Mapping):
            name = codec.get("id", codec.get("name"))
            if name is not None:
                ids.append(str(name).lower())
            config = codec.get("configuration")
            config = config if isinstance(config, Mapping) else {}
            for inner in listed(config.get("codecs")) + listed(config.get("index_codecs")):
                visit(inner)

    for key in ("codecs", "filters"):
        for codec in listed(meta.get(key)):
            visit(codec)
    if meta.get("compressor"):
        visit(meta["compressor"])
    dtype = meta.get("dtype", meta.get("data_type"))
    if isinstance(dtype, Mapping) and dtype.get("object_codec_id"):
        visit(str(dtype["object_codec_id"]))
    return ids


def _unsafe_reason(meta: Mapping[str, Any]) -> str | None:
    """Why an array with this metadata must not be decoded, or None when it is safe."""
    ids = _codec_ids(meta)
    bad = sorted(set(ids) & UNSAFE_CODECS)
    if "pickle" in bad:
        return "uses the pickle codec, which could run code when its chunks are decoded"
    if bad:
        return f"stores objects (codec {bad[0]!r}), not numbers"
    dtype = meta.get("dtype", meta.get("data_type"))
    name = dtype.get("name") if isinstance(dtype, Mapping) else dtype
    if isinstance(name, str) and (name.lstrip("|<>=") == "O" or name in ("string", "bytes")):
        return f"has object dtype {name!r}, not numbers"
    return None


def _check_raw_zarr_metadata(array_path: str, path: str) -> None:
    """Refuse an object/pickle array from its raw metadata, before zarr parses it."""
    for name in (".zarray", "zarr.json"):
        meta_path = os.path.join(array_path, name)
        if not os.path.isfile(meta_path):
            continue
        try:
            with open(meta_path, encoding="utf-8") as f:
                meta = json.load(f)
        except (OSError, ValueError, RecursionError) as exc:
            raise InputError(
                f"Could not read the Zarr metadata {meta_path!r} ({exc}); the store is corrupt."
            ) from exc
        if not isinstance(meta, Mapping) or meta.get("node_type", "array") != "array":
            continue
        reason = _unsafe_reason(meta)
        if reason:
            raise InputError(
                f"Zarr array {array_path!r} {reason}; bigseg refuses it: re-save the image "
                f"with a numeric dtype (uint8, uint16 or float32) and a standard codec."
            )


def _check_codecs(array: Any, path: str) -> None:
    """Refuse an opened Zarr array whose codecs decode to Python objects (see UNSAFE_CODECS)."""
    reason = _unsafe_reason(array.metadata.to_dict())
    if reason:
        raise InputError(
            f"Zarr array in {path!r} {reason}; bigseg refuses it: re-save the image with a "
            "numeric dtype (uint8, uint16 or float32) and a standard codec."
        )


class _ZarrChunks:
    """A Zarr array seen through dask, with read errors named by array and chunk.

    A chunk that fails to decode raises inside a dask worker; this turns it into
    one :class:`InputError` sentence that the sink (CLI) can print.  A *missing*
    chunk is not an error: Zarr reads it as the fill value (the spec's meaning,
    and how zarr 3 stores chunks that hold only the fill value).
    """

    def __init__(self, array: Any, where: str):
        self.array = array
        self.where = where
        self.shape = tuple(array.shape)
        self.dtype = np.dtype(array.dtype)
        self.ndim = len(self.shape)
        self.chunks = tuple(array.chunks)

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self.array[key])
        except Exception as exc:  # codecs raise RuntimeError, ValueError, ...
            index = tuple(
                (k.start or 0) // c if isinstance(k, slice) else int(k) // c
                for k, c in zip(key if isinstance(key, tuple) else (key,), self.chunks)
            )
            raise InputError(
                f"Chunk {index} of the Zarr array {self.where!r} could not be read "
                f"({type(exc).__name__}: {exc}); the chunk file is corrupt: restore it "
                "from a copy or convert the image again."
            ) from exc


def _from_zarr(array: Any, path: str) -> da.Array:
    from dask.base import tokenize

    _check_shape(array.shape, array.chunks, np.dtype(array.dtype), f"Zarr array in {path!r}")

    if _objstore.is_url(path):  # no local file to stat: name the data by URL and metadata
        where = f"{path.rstrip('/')}/{array.path}" if array.path else path
        token = tokenize(where, array.metadata.to_dict(), array.shape, str(array.dtype))
    else:
        where = os.path.join(path, array.path) if array.path else path
        meta_file = next(
            (
                os.path.join(where, n)
                for n in ("zarr.json", ".zarray")
                if os.path.exists(os.path.join(where, n))
            ),
            where,
        )
        token = tokenize(
            os.path.abspath(where), os.stat(meta_file).st_mtime_ns, array.shape, str(array.dtype)
        )
    return da.from_array(
        _ZarrChunks(array, where),
        chunks=array.chunks,
        name=f"zarr-{token}",
        asarray=False,
        lock=False,
        meta=np.empty((0,) * array.ndim, array.dtype),
    )


# --------------------------------------------------------------------------- common

#: Largest axis and voxel count bigseg accepts from a file's metadata: beyond them the
#: metadata is corrupt (no microscope writes such a stack), and merely indexing it
#: would allocate more than memory (coordinates, chunk lists).
MAX_AXIS = 2**24
MAX_VOXELS = 2**50


def _check_shape(shape: Sequence[int], chunks: Sequence[int], dtype: np.dtype, what: str) -> None:
    """Refuse a declared shape no storage could hold, before anything is allocated for it."""
    if len(chunks) != len(shape) or any(int(c) < 1 and int(n) > 0 for n, c in zip(shape, chunks)):
        raise InputError(
            f"{what} declares chunks {tuple(chunks)} for shape {tuple(shape)}; chunk sizes must "
            "be positive, one per dim: its metadata is corrupt: repair or re-export it."
        )
    voxels = math.prod(int(n) for n in shape)
    n_chunks = math.prod(-(-int(n) // max(int(c), 1)) for n, c in zip(shape, chunks))
    if max(shape, default=0) > MAX_AXIS or voxels > MAX_VOXELS or n_chunks > MAX_VOXELS // 2**20:
        raise InputError(
            f"{what} declares shape {tuple(shape)} ({voxels} voxels of {dtype} in {n_chunks} "
            f"chunks), larger than bigseg accepts (at most {MAX_AXIS} per axis and "
            f"{MAX_VOXELS} voxels); its metadata is likely corrupt: repair or re-export it."
        )


def _select_channel(
    data: da.Array, dims: tuple[str, ...], channel: int | None, path: str
) -> tuple[da.Array, tuple[str, ...]]:
    if "c" not in dims:
        if channel not in (None, 0):
            raise InputError(f"Input {path!r} has no channel axis; drop --channel.")
        return data, dims
    axis = dims.index("c")
    n = data.shape[axis]
    if channel is None:
        if n != 1:
            raise InputError(
                f"Input {path!r} has {n} channels; choose one with --channel (0 to {n - 1})."
            )
        channel = 0
    if not 0 <= channel < n:
        raise InputError(
            f"--channel {channel} is out of range: {path!r} has channels 0 to {n - 1}."
        )
    index = tuple(channel if i == axis else slice(None) for i in range(data.ndim))
    return data[index], dims[:axis] + dims[axis + 1 :]


def _to_standard_dims(
    data: da.Array, dims: tuple[str, ...], path: str
) -> tuple[da.Array, tuple[str, ...]]:
    unknown = [d for d in dims if d not in ("t", "z", "y", "x")]
    if unknown or len(set(dims)) != len(dims) or not {"y", "x"} <= set(dims):
        raise InputError(
            f"Input {path!r} has dims {dims}; bigseg reads images with dims among "
            "t, c, z, y, x including y and x."
        )
    if "z" not in dims:
        data = data[..., None, :, :] if dims[-2:] == ("y", "x") else data
        dims = tuple(d for d in dims if d not in ("y", "x")) + ("z", "y", "x")
    order = [d for d in ("t", "z", "y", "x") if d in dims]
    data = data.transpose([dims.index(d) for d in order])
    return data, tuple(order)


def _check_dtype(dtype: np.dtype, path: str) -> None:
    if dtype.kind not in _SUPPORTED_KINDS or dtype.itemsize > 8:
        raise InputError(
            f"Input {path!r} has dtype {dtype}, which bigseg cannot segment; convert it "
            "to an integer (e.g. uint16) or float32 intensity image."
        )


def _resolve_scale(
    scale: Sequence[float] | None, meta: list | None, path: str, n_z: int = 2
) -> tuple[float, float, float]:
    """Return an input's ``(z, y, x)`` voxel size; warn on doubtful ones."""
    planar = n_z == 1
    from_file = f"the metadata of {path!r}"
    if meta is not None and meta[0] is None and not planar:
        if scale is None:
            raise InputError(
                f"Input {path!r} has {n_z} planes and an x/y pixel size "
                f"({fmt_values(meta[1:])} µm) but no z step; give it with --scale Z Y X "
                f"(µm, e.g. --scale 1.5 {fmt_values(meta[1:])}) or scale=(z, y, x)."
            )
        meta = None  # nothing to compare z with; y/x compared below would be partial
    if meta is not None and meta[0] is None:
        meta = [PLANAR_Z, *meta[1:]]
    if scale is not None:
        values = validated_scale(scale, "--scale", n_z)
        warn_implausible(values, f"--scale {fmt_values(scale)}", planar=planar, stacklevel=4)
        if meta is not None:
            try:
                file_values = validated_scale(meta, from_file, n_z)
            except InputError:
                file_values = None  # unusable metadata: --scale replaces it
            if file_values is not None:
                _warn_contradiction(tuple(scale), values, file_values, path, planar)
        elif not planar:
            _warn_xyz_order(values)
        return values
    if meta is None:
        if planar:
            raise InputError(
                f"Input {path!r} carries no pixel size; give it with --scale Y X "
                "(µm, e.g. --scale 0.71 0.71) or scale=(y, x)."
            )
        raise InputError(
            f"Input {path!r} carries no voxel size; give it with --scale Z Y X "
            "(µm, e.g. --scale 1.5 0.71 0.71) or scale=(z, y, x)."
        )
    values = validated_scale(meta, f"The voxel size in {path!r}", n_z)
    warn_implausible(values, f"The metadata of {path!r}", planar=planar, stacklevel=4)
    return values


def _warn_xyz_order(values: Sequence[float]) -> None:
    """Warn when a ``(z, y, x)`` scale looks given as X Y Z: z equal to y, x far from both."""
    from ._errors import ScaleWarning

    z, y, x = values
    if math.isclose(z, y, rel_tol=0.02) and not 0.5 <= x / y <= 2:
        warnings.warn(
            f"--scale {fmt_values(values)} is read as z={z:g}, y={y:g}, x={x:g} µm: x differs from "
            f"y by more than 2x, which looks like X Y Z order; bigseg reads Z Y X (e.g. "
            f"--scale {fmt_values(values[::-1])}).",
            ScaleWarning,
            stacklevel=4,
        )


def _warn_contradiction(
    given: tuple,
    values: tuple[float, float, float],
    file_values: tuple[float, float, float],
    path: str,
    planar: bool,
) -> None:
    """Warn when ``--scale`` is more than 2x away from the file's voxel size on some axis."""
    from ._errors import ScaleWarning

    names = ("y", "x") if planar else SPATIAL
    pick = slice(1, 3) if planar else slice(0, 3)
    ours, theirs = values[pick], file_values[pick]
    far = [n for n, a, b in zip(names, ours, theirs) if not 0.5 <= a / b <= 2]
    if not far:
        return
    reversed_order = not planar and all(
        math.isclose(a, b, rel_tol=0.02) for a, b in zip(ours, theirs[::-1])
    )
    hint = (
        "it is the file's in reverse, X Y Z order: bigseg reads Z Y X"
        if reversed_order
        else f"check its units (µm) and order ({'Y X' if planar else 'Z Y X'})"
    )
    warnings.warn(
        f"--scale {fmt_values(given)} differs by more than 2x in {', '.join(far)} from the voxel "
        f"size {fmt_values(theirs)} µm ({' '.join(names)}) in the metadata of {path!r}; bigseg "
        f"uses --scale ({hint}; drop --scale to use the file's).",
        ScaleWarning,
        stacklevel=4,
    )


def _chunks_for(chunks: Mapping[str, int] | Sequence[int], dims: tuple[str, ...]) -> dict:
    if isinstance(chunks, Mapping):
        bad = set(chunks) - set(dims)
        if bad:
            raise InputError(f"chunks names dims {sorted(bad)} that the stack lacks ({dims}).")
        return {dims.index(d): c for d, c in chunks.items()}
    chunks = tuple(chunks)
    spatial = [d for d in dims if d in SPATIAL]
    if len(chunks) != len(spatial):
        raise InputError(f"chunks {chunks} must give one size per dim z, y, x.")
    if any(int(c) < 1 and int(c) != -1 for c in chunks):
        raise InputError(f"chunks {chunks} must be positive sizes (or -1 for a whole axis).")
    return {dims.index(d): int(c) for d, c in zip(spatial, chunks)}


def parse_chunks(text: str) -> tuple[int, int, int]:
    """Parse ``"Z,Y,X"`` (``-1`` for a whole axis) as given to ``--chunks``."""
    parts = [p for p in re.split(r"[,x\s]+", text.strip()) if p]
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        raise InputError(
            f"--chunks {text!r} must be three integers Z,Y,X (e.g. 4,-1,-1)."
        ) from None
    if len(values) != 3 or any(v == 0 or v < -1 for v in values):
        raise InputError(
            f"--chunks {text!r} must be three positive integers Z,Y,X (-1: whole axis)."
        )
    return values  # type: ignore[return-value]


# --------------------------------------------------------------------------- writers


def _ngff_multiscales(
    dims: Sequence[str], scale: Mapping[str, float], translation: Mapping[str, float], name: str
) -> dict:
    axes = []
    for d in dims:
        if d == "t":
            axes.append({"name": "t", "type": "time"})
        else:
            axes.append({"name": d, "type": "space", "unit": "micrometer"})
    s = [1.0 if d == "t" else float(scale[d]) for d in dims]
    o = [0.0 if d == "t" else float(translation[d]) for d in dims]
    transforms: list[dict] = [{"type": "scale", "scale": s}]
    if any(o):
        transforms.append({"type": "translation", "translation": o})
    return {
        "name": name,
        "axes": axes,
        "datasets": [{"path": "0", "coordinateTransformations": transforms}],
    }


def _compressor(labels: bool = False) -> Any:
    """Return the Zarr compressor of bigseg's outputs.

    Images: Blosc-zstd with byte shuffle (the smallest for noisy intensities).
    Labels: plain zstd, which on mostly-zero label planes writes about twice as
    fast, reads faster and is smaller (measured on 1024 x 1024 planes of nuclei).
    """
    from zarr.codecs import BloscCodec, ZstdCodec

    if labels:
        return ZstdCodec(level=3)
    return BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")


def write_ngff_image(
    data: da.Array,
    path: str | os.PathLike,
    *,
    dims: Sequence[str],
    scale: Mapping[str, float],
    translation: Mapping[str, float] | None = None,
    name: str = "image",
    extra_attrs: Mapping[str, Any] | None = None,
    group_attrs: Mapping[str, Any] | None = None,
    compute: bool = True,
    compressors: Any = None,
) -> Any:
    """Write a dask array as a single-level OME-Zarr 0.5 image (Zarr v3).

    Dask chunks become Zarr chunks, so every task writes whole chunks and
    parallel writes are safe.  With ``compute=False`` the delayed store is
    returned for the caller to compute together with other work.
    ``compressors`` are Zarr v3 codecs (default: Blosc-zstd with shuffle).
    """
    import zarr

    translation = translation or dict.fromkeys(SPATIAL, 0.0)
    data = _regular_chunks(data)
    group = zarr.open_group(os.fspath(path), mode="w", zarr_format=3)
    ome: dict[str, Any] = {
        "version": "0.5",
        "multiscales": [_ngff_multiscales(dims, scale, translation, name)],
    }
    if extra_attrs:
        ome.update(extra_attrs)
    group.attrs["ome"] = ome
    if group_attrs:
        group.attrs.update(dict(group_attrs))
    array = group.create_array(
        "0",
        shape=data.shape,
        chunks=tuple(c[0] for c in data.chunks),
        dtype=data.dtype,
        compressors=compressors if compressors is not None else _compressor(),
        fill_value=0,
        dimension_names=tuple(dims),
    )
    return da.store(data, array, lock=False, compute=compute)


def _regular_chunks(data: da.Array) -> da.Array:
    """Rechunk so every dask chunk except the last along each axis has one size."""
    regular = all(len(set(c[:-1])) <= 1 and c[-1] <= c[0] for c in data.chunks)
    return data if regular else data.rechunk(tuple(max(c) for c in data.chunks))


#: Above this many nuclei, ``labels.zarr`` lists no per-label colours and properties
#: (they would make its metadata file large); viewers then pick their own colours.
MAX_LISTED_LABELS = 10_000

_LABEL_PROPERTIES = (
    "t",
    "z_um",
    "y_um",
    "x_um",
    "volume_um3",
    "radius_um",
    "intensity_mean",
    "n_planes",
)


def write_labels(
    labels: xr.DataArray | da.Array,
    path: str | os.PathLike,
    *,
    scale: Mapping[str, float] | None = None,
    translation: Mapping[str, float] | None = None,
    dims: Sequence[str] | None = None,
    source: str | None = None,
    nuclei: Any = None,
    compute: bool = True,
) -> Any:
    """Write a label volume as an OME-Zarr 0.5 label image (NGFF ``image-label``).

    The group holds one full-resolution array ``0`` (Zarr v3, chunks as the
    dask chunks) and, in ``attributes["ome"]``, the ``multiscales`` metadata
    (axes in micrometer, the voxel size as a ``scale`` transformation and
    the origin as a ``translation``) and an ``image-label`` object: so
    napari with the ome-zarr reader overlays it on the image at the right
    size, and other NGFF readers know it is a label image.

    Parameters
    ----------
    labels : xarray.DataArray or dask.array.Array
        Integer labels, 0 = background.  A DataArray brings its own dims and
        ``attrs['scale']``.
    path : path-like
        Where to create the Zarr v3 group (must not exist, or is replaced).
    scale, translation, dims : optional
        Physical metadata when ``labels`` is a bare dask array.
    source : str, optional
        The image the labels belong to.  When it is a local OME-Zarr image,
        ``image-label.source.image`` is its path relative to ``path`` (as
        NGFF asks), so viewers open the image with the labels.  It is also
        recorded verbatim in ``attributes["bigseg"]["source"]``.
    nuclei : pandas.DataFrame, optional
        The nuclei table (``nucleus`` ids and measurements).  Up to
        :data:`MAX_LISTED_LABELS` nuclei get an ``image-label`` colour (the
        colour :mod:`bigseg.plots` draws them in) and ``properties`` (time
        point, centre in µm, volume, radius, mean intensity, planes).
    compute : bool
        Write now (default) or return the delayed store.

    Returns
    -------
    None or dask.delayed.Delayed
        The delayed store when ``compute=False``.
    """
    if isinstance(labels, xr.DataArray):
        dims = labels.dims
        scale = scale or labels.attrs["scale"]
        translation = translation or labels.attrs.get("translation")
        data = labels.data
    else:
        data = labels
    if dims is None or scale is None:
        raise InputError("write_labels needs dims and scale for a bare array.")
    if np.dtype(data.dtype).kind not in "iu":
        raise InputError(
            f"Labels must have an integer dtype (NGFF label images do), not {data.dtype}; "
            "cast them, e.g. labels.astype('uint32')."
        )
    image_label: dict[str, Any] = {"version": "0.5"}
    image_label.update(_label_listing(nuclei))
    relative = _relative_image_path(source, path) if source else None
    if relative is not None:
        image_label["source"] = {"image": relative}
    return write_ngff_image(
        data,
        path,
        dims=dims,
        scale=scale,
        translation=translation,
        name="labels",
        extra_attrs={"image-label": image_label},
        group_attrs={"bigseg": {"source": str(source)}} if source else None,
        compute=compute,
        compressors=_compressor(labels=True),
    )


def _label_listing(nuclei: Any) -> dict[str, list]:
    """NGFF ``colors`` and ``properties`` of the nuclei (nothing when too many or none)."""
    if nuclei is None or "nucleus" not in getattr(nuclei, "columns", ()):
        return {}
    if not 0 < len(nuclei) <= MAX_LISTED_LABELS:
        return {}

    ids = nuclei["nucleus"].to_numpy(np.int64)
    rgba = label_rgba(ids)
    colors = [{"label-value": int(i), "rgba": [int(c) for c in col]} for i, col in zip(ids, rgba)]
    columns = [c for c in _LABEL_PROPERTIES if c in nuclei.columns]
    values = nuclei[columns].to_numpy(np.float64)
    properties = []
    for i, row in zip(ids, values):
        entry: dict[str, Any] = {"label-value": int(i)}
        for name, v in zip(columns, row):
            if name in ("t", "n_planes"):
                entry[name] = int(v)
            elif math.isfinite(v):  # 2D nuclei have no volume
                entry[name] = round(float(v), 3)
        properties.append(entry)
    return {"colors": colors, "properties": properties}


def _relative_image_path(source: str, labels_path: str | os.PathLike) -> str | None:
    """Path of ``source`` relative to the label group when it is a local OME-Zarr image."""
    if not os.path.isdir(source):
        return None
    import zarr

    try:
        attrs = dict(zarr.open_group(source, mode="r").attrs)
    except Exception:  # not a Zarr group (e.g. a bare array): nothing to point at
        return None
    if "multiscales" not in attrs.get("ome", attrs):
        return None
    rel = os.path.relpath(os.path.abspath(source), os.path.abspath(os.fspath(labels_path)))
    return rel.replace(os.sep, "/")


def read_table(path: str | os.PathLike) -> Any:
    """Read a bigseg table (Parquet or CSV) into pandas."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise InputError(f"Table {os.fspath(path)!r} does not exist; check the path.")
    if p.suffix == ".parquet" or p.is_dir():
        return pd.read_parquet(p)
    if p.suffix in (".csv", ".txt"):
        return pd.read_csv(p)
    raise InputError(f"Table {os.fspath(path)!r} must be .parquet or .csv.")
