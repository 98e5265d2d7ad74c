"""Writers of OME-Zarr 0.5 images and label images (NGFF ``image-label``)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._errors import InputError
from ..colours import label_rgba
from ..stack import SPATIAL
from .zarr import ZARR_METADATA


def _ngff_multiscales(
    dims: Sequence[str],
    scale: Mapping[str, float],
    translation: Mapping[str, float],
    name: str,
    frame_interval_s: float | None = None,
) -> dict:
    axes: list[dict] = []
    for d in dims:
        if d == "t":
            axes.append({"name": "t", "type": "time"})
            if frame_interval_s is not None:
                axes[-1]["unit"] = "second"
        else:
            axes.append({"name": d, "type": "space", "unit": "micrometer"})
    t_step = 1.0 if frame_interval_s is None else float(frame_interval_s)
    s = [t_step if d == "t" else float(scale[d]) for d in dims]
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
    overwrite: bool = False,
    frame_interval_s: float | None = None,
) -> Any:
    """Write a dask array as a single-level OME-Zarr 0.5 image (Zarr v3).

    Dask chunks become Zarr chunks, so every task writes whole chunks and
    parallel writes are safe.  With ``compute=False`` the delayed store is
    returned for the caller to compute together with other work.
    ``compressors`` are Zarr v3 codecs (default: Blosc-zstd with shuffle).
    An existing ``path`` is refused, or with ``overwrite=True`` replaced, but
    only when it is a Zarr store (anything else is never deleted).
    ``frame_interval_s`` is written as the scale of the ``t`` axis, in seconds.
    """
    import zarr

    _check_target(path, overwrite)
    translation = translation or dict.fromkeys(SPATIAL, 0.0)
    data = regular_chunks(data)
    group = zarr.open_group(os.fspath(path), mode="w", zarr_format=3)
    ome: dict[str, Any] = {
        "version": "0.5",
        "multiscales": [_ngff_multiscales(dims, scale, translation, name, frame_interval_s)],
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


def regular_chunks(data: da.Array) -> da.Array:
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
    overwrite: bool = False,
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
        Where to create the Zarr v3 group: a new path, or with
        ``overwrite=True`` an existing Zarr store, which is replaced (anything
        else that exists there is refused and left untouched).
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
        overwrite=overwrite,
    )


def _check_target(path: str | os.PathLike, overwrite: bool) -> None:
    """Refuse to write over an existing local path, unless it is a Zarr store and ``overwrite``."""
    target = os.fspath(path)
    if "://" in target or not os.path.lexists(target):
        return  # new, or on an object store (bigseg writes those under fresh prefixes)
    if os.path.isdir(target) and not os.path.islink(target) and not os.listdir(target):
        return  # an empty folder
    if not overwrite:
        raise InputError(
            f"{target!r} already exists; choose another path, or pass overwrite=True to "
            "replace a Zarr store there."
        )
    is_store = os.path.isdir(target) and not os.path.islink(target)
    if not (is_store and any(os.path.isfile(os.path.join(target, m)) for m in ZARR_METADATA)):
        raise InputError(
            f"{target!r} exists and is not a Zarr store; it was left untouched. Choose another "
            "path."
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
