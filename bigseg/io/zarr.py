"""Zarr arrays and OME-Zarr (NGFF 0.4 / 0.5) images: metadata validation, codec checks.

Metadata is checked field by field before it is used, and arrays whose codecs
decode to Python objects (pickle, ...) are refused before zarr parses them.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np

from .._errors import InputError
from ..reads import read_by_chunks, remember_read
from ..stack import SPATIAL
from . import objstore
from .checks import check_shape
from .scale import UNIT_TO_UM

#: Files whose presence makes a folder a Zarr store (v3, or v2 array / group / attributes).
ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def open_zarr(path: str) -> tuple[da.Array, tuple[str, ...], list | None, tuple, str]:
    """Open a Zarr array or OME-Zarr image lazily: data, dims, voxel size, translation, format."""
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
    factors = [UNIT_TO_UM.get(str(u).lower(), 1.0) if u else 1.0 for u in units] or [1.0] * len(
        axes
    )
    by_name = {n: (s * f, o * f) for n, s, o, f in zip(axes, scale_all, trans_all, factors)}
    has_scale = any(
        tf.get("type") == "scale" for tf in dataset.get("coordinateTransformations", [])
    )
    scale = [by_name.get(n, (1.0, 0.0))[0] for n in SPATIAL] if has_scale else None
    spatial_units = [u for n, u in zip(axes, units) if n in SPATIAL]
    if scale is not None and not any(spatial_units) and all(v == 1.0 for v in scale):
        # Writers put 1 with no unit where they know no voxel size (ome-zarr's default):
        # read as µm it would size every nucleus in pixels.
        scale = None
    translation = tuple(by_name.get(n, (1.0, 0.0))[1] for n in SPATIAL)
    if not all(math.isfinite(v) for v in translation):
        raise InputError(
            f"The OME-Zarr metadata {where!r} gives a non-finite translation {translation}; "
            "repair or re-export the image."
        )
    return _from_zarr(array, path), tuple(axes), scale, translation, f"ome-zarr-{version}"


def _group_metadata_file(path: str) -> str:
    """Name the file that holds a Zarr group's attributes (``zarr.json`` or ``.zattrs``)."""
    if objstore.is_url(path):
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
            return read_by_chunks(self.array, key, self.chunks)
        except Exception as exc:  # codecs raise RuntimeError, ValueError, ...
            index = self._bad_chunk(key if isinstance(key, tuple) else (key,))
            raise InputError(
                f"Chunk {index} of the Zarr array {self.where!r} could not be read "
                f"({type(exc).__name__}: {exc}); the chunk file is corrupt: restore it "
                "from a copy or convert the image again."
            ) from exc

    def _bad_chunk(self, key: tuple) -> tuple[int, ...]:
        """Index of the first chunk in the region ``key`` that fails to read (or its first)."""
        ranges = []
        for k, c, n in zip(key, self.chunks, self.shape):
            start, stop = (
                (k.start or 0, n if k.stop is None else k.stop)
                if isinstance(k, slice)
                else (int(k), int(k) + 1)
            )
            ranges.append(range(start // c, max(-(-stop // c), start // c + 1)))
        first = tuple(r[0] for r in ranges)
        for index in itertools.product(*ranges):
            region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(index, self.chunks))
            try:
                self.array[region]
            except Exception:  # noqa: BLE001 - looking for the chunk that fails
                return index
        return first


def _from_zarr(array: Any, path: str) -> da.Array:
    from dask.base import tokenize

    check_shape(array.shape, array.chunks, np.dtype(array.dtype), f"Zarr array in {path!r}")

    if objstore.is_url(path):  # no local file to stat: name the data by URL and metadata
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
    source = _ZarrChunks(array, where)
    data = da.from_array(  # a sharded array's shards are its storage chunks; reads decode
        source,  # only the inner chunks they touch (read_by_chunks groups those)
        chunks=getattr(array, "shards", None) or array.chunks,
        name=f"zarr-{token}",
        asarray=False,
        lock=False,
        meta=np.empty((0,) * array.ndim, array.dtype),
    )
    return remember_read(data, source)
