"""Writers of OME-Zarr 0.5 images and label images (NGFF ``image-label``), with pyramids.

A pyramid's coarser levels are planned from the shape, the voxel size and the
chunks (:func:`pyramid_plan`): y and x are halved at each level, z only when that
makes the voxel less anisotropic (``scale_z < scale_y / sqrt(2)`` after y/x are
halved), t never, until a level's planes fit one chunk of at most
:data:`PYRAMID_TILE` px.  Every level is declared in the metadata when the group is
created; level ``k`` is then built from the *stored* level ``k - 1``
(:func:`pyramid_levels`), chunk by chunk on the workers, so a task holds a few
chunks whatever the size of the image.  Labels are downsampled by nearest
neighbour (ids stay ids), images by the mean; a label image's levels can also be
taken from level 0's lazy values in the graph that stores it
(:func:`nearest_levels`), the same values without reading level 0 back.  Each
level's ``translation`` is the centre of its voxel 0 (:func:`level_origins`): a
nearest-neighbour level starts where level 0 does, a mean level half a voxel of the
level before further on.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .._errors import InputError
from ..colours import label_rgba
from ..stack import SPATIAL
from .zarr import ZARR_METADATA

#: The largest y/x side of a chunk of a pyramid's coarser levels: the pyramid stops at
#: the first level whose planes fit one such chunk.
PYRAMID_TILE = 512

#: How each kind of pyramid downsamples: nearest neighbour (labels) or the mean (images).
DOWNSAMPLING = ("nearest", "mean")


#: Zarr's settings of bigseg's array writes: every chunk is written as it comes.  Zarr
#: otherwise compares each chunk with the fill value first, to leave empty ones out: on
#: chunks of 4 label planes of 1024² that comparison was two thirds of a write (3.6 against
#: 1.1 ms per plane, docs/speed.md); an empty chunk of labels compresses to a few bytes.
WRITE_CONFIG = {"write_empty_chunks": True}


def writable(path: str | os.PathLike) -> Any:
    """Open the Zarr array at ``path`` (a local path or a URL) to write (:data:`WRITE_CONFIG`)."""
    import zarr

    return zarr.open_array(os.fspath(path), mode="r+").with_config(WRITE_CONFIG)


def pyramid_plan(
    shape: Sequence[int],
    dims: Sequence[str],
    scale: Mapping[str, float],
    chunks: Sequence[int],
    *,
    tile: int | None = None,
) -> list[dict[str, Any]]:
    """Plan the levels of a pyramid: shape, factors to the level before, scale, chunks.

    Parameters
    ----------
    shape, chunks : sequence of int
        Level 0's shape and chunk shape, in the order of ``dims``.
    dims : sequence of str
        ``("z", "y", "x")`` or ``("t", "z", "y", "x")``.
    scale : mapping
        Level 0's voxel size in µm (``z``, ``y``, ``x``).
    tile : int, optional
        The largest y/x chunk side of levels 1 and above (default
        :data:`PYRAMID_TILE`).

    Returns
    -------
    list of dict
        One entry per level, level 0 first, with ``shape``, ``factors`` (to the
        level before; all 1 for level 0), ``scale`` (µm per voxel, by dim) and
        ``chunks``.
    """
    tile = PYRAMID_TILE if tile is None else int(tile)
    size = dict(zip(dims, (int(n) for n in shape)))
    level_scale = {d: float(scale[d]) for d in dims if d != "t"}
    levels = [
        {
            "shape": tuple(int(n) for n in shape),
            "factors": (1,) * len(dims),
            "scale": dict(level_scale),
            "chunks": tuple(int(c) for c in chunks),
        }
    ]
    first = dict(zip(dims, (int(c) for c in chunks)))
    while max(size["y"], size["x"]) > tile:
        factors = dict.fromkeys(dims, 1)
        for d in ("y", "x"):
            if size[d] > 1:
                factors[d] = 2
        coarse_y = level_scale["y"] * factors["y"]
        if "z" in size and size["z"] > 1 and level_scale["z"] < coarse_y / math.sqrt(2):
            factors["z"] = 2
        size = {d: -(-size[d] // factors[d]) for d in dims}
        level_scale = {d: level_scale[d] * factors[d] for d in level_scale}
        level_chunks = {d: min(first[d], size[d]) for d in dims}
        level_chunks.update({d: min(tile, size[d]) for d in ("y", "x")})
        levels.append(
            {
                "shape": tuple(size[d] for d in dims),
                "factors": tuple(factors[d] for d in dims),
                "scale": dict(level_scale),
                "chunks": tuple(max(1, level_chunks[d]) for d in dims),
            }
        )
    return levels


def downsample(data: da.Array, factors: Sequence[int], how: str) -> da.Array:
    """Downsample a dask array by integer ``factors`` per axis (lazy, chunk by chunk).

    ``how="nearest"`` keeps every ``factor``-th voxel (labels stay labels);
    ``"mean"`` averages each block of voxels (the last one padded by repeating
    the edge), rounded back to integers for integer data.  An axis of ``n``
    voxels becomes ``ceil(n / factor)`` either way.
    """
    if how not in DOWNSAMPLING:
        raise InputError(f"Downsampling {how!r} is unknown; choose one of {DOWNSAMPLING}.")
    steps = tuple(slice(None, None, int(f)) for f in factors)
    if how == "nearest" or all(f == 1 for f in factors):
        return data[steps]
    pad = [(0, (-n) % int(f)) for n, f in zip(data.shape, factors)]
    padded = da.pad(data, pad, mode="edge") if any(p for _, p in pad) else data
    offsets = np.ndindex(*(int(f) for f in factors))
    total = None
    for offset in offsets:
        part = padded[tuple(slice(o, None, int(f)) for o, f in zip(offset, factors))]
        part = part.astype(np.float32)
        total = part if total is None else total + part
    mean = total / float(np.prod(factors))
    if np.dtype(data.dtype).kind in "iu":
        mean = da.round(mean)
    return mean.astype(data.dtype)


def _ngff_multiscales(
    dims: Sequence[str],
    scale: Mapping[str, float],
    translation: Mapping[str, float],
    name: str,
    levels: Sequence[Mapping[str, Any]] | None = None,
    frame_interval_s: float | None = None,
    how: str | None = None,
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
    levels = levels or [{"scale": scale, "factors": (1,) * len(dims)}]
    scales = [[t_step if d == "t" else float(lv["scale"][d]) for d in dims] for lv in levels]
    origins = level_origins(
        [0.0 if d == "t" else float(translation[d]) for d in dims],
        scales,
        [lv["factors"] for lv in levels],
        how,
    )
    written = any(v for o in origins for v in o)  # no translation where every origin is 0
    datasets = []
    for i, (s, o) in enumerate(zip(scales, origins)):
        transforms: list[dict] = [{"type": "scale", "scale": s}]
        if written:
            transforms.append({"type": "translation", "translation": o})
        datasets.append({"path": str(i), "coordinateTransformations": transforms})
    return {"name": name, "axes": axes, "datasets": datasets}


def level_origins(
    origin: Sequence[float],
    scales: Sequence[Sequence[float]],
    factors: Sequence[Sequence[int]],
    how: str | None,
) -> list[list[float]]:
    """Return each level's translation: the position of its voxel 0's centre (NGFF).

    NGFF places voxel ``i`` of a level at ``translation + i * scale``, a voxel's
    centre.  Nearest neighbour keeps every ``f``-th voxel from voxel 0, so each
    level starts where the one before does.  The mean of ``f`` voxels lies at
    their middle, ``(f - 1) / 2`` voxels of the level before on.

    Parameters
    ----------
    origin : sequence of float
        Level 0's translation, in the order of the axes.
    scales : sequence of sequence of float
        Each level's scale.
    factors : sequence of sequence of int
        Each level's factors to the level before (level 0's all 1).
    how : {"nearest", "mean"} or None
        The downsampling (None: level 0 only, or nearest).
    """
    origins = [[float(v) for v in origin]]
    for k in range(1, len(scales)):
        shift = [
            (int(f) - 1) / 2 * float(s) if how == "mean" else 0.0
            for f, s in zip(factors[k], scales[k - 1])
        ]
        origins.append([o + d for o, d in zip(origins[-1], shift)])
    return origins


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


def _set_group_attributes(group: Any, path: str | os.PathLike, attributes: dict) -> None:
    """Add ``attributes`` to a new group's metadata; a local group's ``zarr.json`` is streamed.

    Zarr writes a group's metadata from a deep copy of it, encoded at once with an
    indent (pure-Python JSON): 4 MB of label listing cost the client ~50 MiB.  On a
    local path the same document (the same bytes) is streamed to the file instead.
    """
    import zarr

    target = os.fspath(path)
    meta = os.path.join(target, "zarr.json")
    if "://" in target or not os.path.isfile(meta):
        group.attrs.update(attributes)
        return
    with open(meta, encoding="utf-8") as f:
        document = json.load(f)
    if document.get("node_type") != "group" or document.get("zarr_format") != 3:
        group.attrs.update(attributes)
        return
    document["attributes"] = {**document.get("attributes", {}), **attributes}
    tmp = f"{meta}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=zarr.config.get("json_indent"), allow_nan=True)
    os.replace(tmp, meta)


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
    pyramid: str | None = None,
    frame_interval_s: float | None = None,
    create_only: bool = False,
    inner_chunks: Sequence[int] | None = None,
) -> Any:
    """Write a dask array as an OME-Zarr 0.5 image (Zarr v3), with an optional pyramid.

    Dask chunks become Zarr chunks, so every task writes whole chunks and
    parallel writes are safe.  With ``compute=False`` the delayed store of
    level 0 is returned for the caller to compute together with other work
    (and the coarser levels, if any, with :func:`nearest_levels` in the same
    graph, or after it with :func:`pyramid_levels`).  ``compressors`` are Zarr v3 codecs (default:
    Blosc-zstd with shuffle).  ``pyramid`` is ``None`` (level 0 only),
    ``"nearest"`` or ``"mean"`` (see :func:`pyramid_plan` for the levels).
    An existing ``path`` is refused, or with ``overwrite=True`` replaced, but
    only when it is a Zarr store (anything else is never deleted).
    ``frame_interval_s`` is written as the scale of the ``t`` axis, in seconds.
    With ``create_only``, the group and its empty arrays are created from ``data``'s
    shape, chunks and dtype, and nothing else (no graph is built: the caller writes
    level 0, e.g. in batches, then builds the levels with :func:`pyramid_levels`).
    With ``inner_chunks``, every level's chunks are Zarr shards of inner chunks
    (:func:`shard_chunks`): each task still writes whole shards, one file each, and a
    reader decodes only the inner chunks it needs.
    """
    import zarr

    _check_target(path, overwrite)
    translation = translation or dict.fromkeys(SPATIAL, 0.0)
    data = regular_chunks(data)
    chunks = tuple(c[0] for c in data.chunks)
    if pyramid is None:
        levels = pyramid_plan(data.shape, dims, scale, chunks, tile=max(data.shape))
    elif pyramid in DOWNSAMPLING:
        levels = pyramid_plan(data.shape, dims, scale, chunks)
    else:
        raise InputError(f"pyramid={pyramid!r} is unknown; choose None or one of {DOWNSAMPLING}.")
    group = zarr.open_group(os.fspath(path), mode="w", zarr_format=3)
    multiscales = _ngff_multiscales(
        dims, scale, translation, name, levels, frame_interval_s, how=pyramid
    )
    if pyramid is not None:
        multiscales["type"] = pyramid
    ome: dict[str, Any] = {"version": "0.5", "multiscales": [multiscales]}
    if extra_attrs:
        ome.update(extra_attrs)
    codecs = compressors if compressors is not None else _compressor()
    arrays = []
    for i, level in enumerate(levels):
        inner = shard_chunks(level["chunks"], inner_chunks) if inner_chunks else None
        layout = {"chunks": level["chunks"]}
        if inner is not None:  # the level's chunks become shards of inner chunks
            layout = {"chunks": inner, "shards": level["chunks"]}
        arrays.append(
            group.create_array(
                str(i),
                shape=level["shape"],
                dtype=data.dtype,
                compressors=codecs,
                fill_value=0,
                dimension_names=tuple(dims),
                config=WRITE_CONFIG,
                **layout,
            )
        )
    # The group's metadata is written once, after its arrays (a label listing of 10^4
    # nuclei is a 4 MB zarr.json: each array created under it would read it again).
    _set_group_attributes(group, path, {"ome": ome, **(dict(group_attrs) if group_attrs else {})})
    if create_only:
        return None
    store = da.store(data, arrays[0], lock=False, compute=False)
    if not compute:
        return store
    if pyramid == "nearest":  # every level from the same blocks, in one graph
        dask.compute(store, *nearest_levels(data, path))
        return None
    store.compute()
    for level in pyramid_levels(path):
        level.compute()
    return None


def shard_chunks(shard: Sequence[int], inner: Sequence[int]) -> tuple[int, ...] | None:
    """Return the inner chunks of a Zarr shard of shape ``shard``, or None (no sharding).

    Along each axis, the largest divisor of the shard's side that is at most the
    ``inner`` side (Zarr's shards hold a whole number of chunks), unless that is under
    half of it (a prime side, say): then the shard's own side.  None when that leaves
    one chunk per shard.
    """
    sides = []
    for n, want in zip((int(v) for v in shard), (int(v) for v in inner)):
        best = max(d for d in range(1, min(n, want) + 1) if n % d == 0)
        sides.append(best if n <= want or 2 * best >= want else n)
    return None if tuple(sides) == tuple(int(v) for v in shard) else tuple(sides)


def pyramid_levels(path: str | os.PathLike, *, start: int = 1) -> Iterator[Any]:
    """Delayed stores that build a written image's coarser levels, one per level, in order.

    Each level is read from the level before it *as stored*, so each store must
    be computed before the next is taken from the iterator (the iterator builds
    a level's graph only when asked for it).  Levels are declared by the
    group's ``multiscales`` (as :func:`write_ngff_image` wrote them), and
    downsampled as its ``type`` says (``"nearest"`` or ``"mean"``).

    Parameters
    ----------
    path : path-like
        The OME-Zarr group.
    start : int
        The first level to build (levels before it are taken as written).

    Yields
    ------
    dask.delayed.Delayed
        The store of one level.
    """
    multiscales, arrays = _levels(path)
    how = multiscales.get("type", "nearest")
    for k in range(max(1, start), len(arrays)):
        source, target = arrays[k - 1], arrays[k]
        factors = [2 if n > m else 1 for n, m in zip(source.shape, target.shape)]
        # Tasks read and write whole shards where the levels are sharded: a shard written
        # by two tasks at once would lose one's chunks.
        read = da.from_zarr(source, chunks=source.shards or source.chunks)
        data = downsample(read, factors, how).rechunk(target.shards or target.chunks)
        yield da.store(data, target, lock=False, compute=False)


def nearest_levels(data: da.Array, path: str | os.PathLike) -> list[Any]:
    """Delayed stores of a created label image's coarser levels, taken from ``data`` (lazy).

    ``data`` holds the values of level 0 (computed in the same graph as level 0's store):
    level ``k`` keeps every ``f``-th voxel of it from voxel 0, ``f`` the product of the
    factors of levels 1 to ``k``, which is what :func:`pyramid_levels` builds from the
    stored level before, by nearest neighbour.  Computed with level 0's store, each block
    of ``data`` is computed once for every level, and nothing is read back.  Only for
    nearest-neighbour pyramids (labels): each mean of an image's level is of the level
    before, padded at its edge.
    """
    multiscales, arrays = _levels(path)
    if multiscales.get("type", "nearest") != "nearest":
        raise ValueError(f"{os.fspath(path)} is no nearest-neighbour pyramid; see pyramid_levels.")
    data = regular_chunks(data)
    stores = []
    shape, step = data.shape, [1] * data.ndim
    for target in arrays[1:]:
        step = [s * (2 if n > m else 1) for s, n, m in zip(step, shape, target.shape)]
        shape = target.shape
        steps = tuple(slice(None, None, s) for s in step)
        # Whole shards per task where the levels are sharded (see pyramid_levels).
        level = data[steps].rechunk(target.shards or target.chunks)
        stores.append(da.store(level, target, lock=False, compute=False))
    return stores


def _group_attributes(path: str | os.PathLike) -> dict:
    """Return a Zarr group's attributes, a local Zarr v3 group's read from its ``zarr.json``.

    Not parsed into a group: Zarr does that through its event loop, and a label image's
    listing of 10^4 nuclei is a 4 MB document.
    """
    target = os.fspath(path)
    meta = os.path.join(target, "zarr.json")
    if "://" not in target and os.path.isfile(meta):
        with open(meta, encoding="utf-8") as f:
            return dict(json.load(f).get("attributes", {}))
    import zarr

    return dict(zarr.open_group(target, mode="r").attrs)


def _levels(path: str | os.PathLike) -> tuple[dict, list[Any]]:
    """Return the first ``multiscales`` entry of an OME-Zarr image and its levels (writable)."""
    multiscales = _group_attributes(path)["ome"]["multiscales"][0]
    arrays = [writable(_join_path(os.fspath(path), d["path"])) for d in multiscales["datasets"]]
    return multiscales, arrays


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
    pyramid: bool = True,
    create_only: bool = False,
) -> Any:
    """Write a label volume as an OME-Zarr 0.5 label image (NGFF ``image-label``).

    The group holds the full-resolution array ``0`` (Zarr v3, chunks as the
    dask chunks), with ``pyramid`` the coarser levels ``1``, ``2``, ...
    (nearest neighbour, see :func:`pyramid_plan`), and, in
    ``attributes["ome"]``, the ``multiscales`` metadata
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
        Write now (default) or return the delayed store of level 0; the
        coarser levels are then built with it by :func:`nearest_levels`, or after
        it by computing :func:`pyramid_levels` one after the other.
    pyramid : bool
        Declare (and with ``compute`` build) the coarser levels.
    create_only : bool
        Create the group and its empty arrays only (from ``labels``' shape, chunks and
        dtype); the caller writes them.

    Returns
    -------
    None or dask.delayed.Delayed
        The delayed store of level 0 when ``compute=False``.
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
        pyramid="nearest" if pyramid else None,
        create_only=create_only,
    )


def create_labels_like(
    like: str | os.PathLike, path: str | os.PathLike, *, dtype: Any, overwrite: bool = False
) -> None:
    """Create an empty label image with the levels, chunks and metadata of another one.

    The new group declares the same ``multiscales`` (axes, levels, scale and
    translation) and ``image-label`` source as ``like``, without its label listing
    (colours and properties describe ``like``'s labels); its arrays have the shapes,
    chunks and dimension names of ``like``'s levels and the dtype ``dtype``.  The caller
    writes level 0, then builds the coarser levels with :func:`pyramid_levels`.

    Parameters
    ----------
    like : path-like
        An OME-Zarr 0.5 label image (:func:`write_labels`).
    path : path-like
        Where to create it (see :func:`write_labels` for ``overwrite``).
    dtype : numpy dtype
        An integer dtype.
    """
    import zarr

    if np.dtype(dtype).kind not in "iu":
        raise InputError(f"Labels must have an integer dtype (NGFF label images do), not {dtype}.")
    _check_target(path, overwrite)
    source = os.fspath(like)
    attributes = _group_attributes(source)
    ome = attributes["ome"]
    listing = {"colors", "properties"}
    image_label = {k: v for k, v in ome.get("image-label", {}).items() if k not in listing}
    group = zarr.open_group(os.fspath(path), mode="w", zarr_format=3)
    for dataset in ome["multiscales"][0]["datasets"]:
        level = zarr.open_array(_join_path(source, dataset["path"]), mode="r")
        group.create_array(
            dataset["path"],
            shape=level.shape,
            chunks=level.chunks,
            dtype=np.dtype(dtype),
            compressors=_compressor(labels=True),
            fill_value=0,
            dimension_names=level.metadata.dimension_names,
        )
    extra = {k: v for k, v in attributes.items() if k != "ome"}  # bigseg's source
    new_ome = {**ome, "image-label": {**image_label, "version": ome.get("version", "0.5")}}
    _set_group_attributes(group, path, {"ome": new_ome, **extra})


def _join_path(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}" if "://" in base else os.path.join(base, name)


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
    try:
        attrs = _group_attributes(source)
    except Exception:  # not a Zarr group (e.g. a bare array): nothing to point at
        return None
    if "multiscales" not in attrs.get("ome", attrs):
        return None
    rel = os.path.relpath(os.path.abspath(source), os.path.abspath(os.fspath(labels_path)))
    return rel.replace(os.sep, "/")
