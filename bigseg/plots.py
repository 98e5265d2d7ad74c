"""Figures of stacks, labels and results.

matplotlib is imported inside each function and nothing calls ``show()``.
Every function takes a lazy stack (or a table), computes only what it draws
(a projection, a few planes, one histogram) in a single dask computation, and
returns the matplotlib figure.  Each accepts ``fig=`` (or ``ax=`` for single
axes) to draw into an existing figure.

Nucleus ``n`` has the colour ``PALETTE[n % len(PALETTE)]`` everywhere: in the
centres drawn here, in label outlines, and in the NGFF label colours written
with ``labels.zarr`` (so napari shows the same colours).
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ._errors import InputError
from .colours import PALETTE, label_rgba
from .io import objstore as _objstore
from .segment import global_threshold
from .stack import as_4d, scale_of

__all__ = [
    "MIN_SIDE_FRACTION",
    "PALETTE",
    "intensity_histogram",
    "label_rgba",
    "lineage",
    "napari_layers",
    "orthogonal_projections",
    "plane_montage",
    "time_summary",
    "time_table",
    "track_paths",
]

#: Smallest height of the side (z) projections, as a fraction of the xy panel's
#: shorter side: z is stretched up to it in stacks thin beside their width.
MIN_SIDE_FRACTION = 0.2


def _float_rgba(ids: Any) -> np.ndarray:
    return label_rgba(ids) / 255.0


def _extent(n: int, step: float, origin: float) -> tuple[float, float]:
    """Edges (µm) of ``n`` voxels whose centres are ``origin + i * step``."""
    return origin - step / 2, origin + (n - 0.5) * step


def _origin(stack: xr.DataArray) -> tuple[float, float, float]:
    tr = stack.attrs.get("translation") or {}
    return (float(tr.get("z", 0.0)), float(tr.get("y", 0.0)), float(tr.get("x", 0.0)))


def _check_t(four: xr.DataArray, t: int) -> int:
    n_t = four.sizes["t"]
    if not -n_t <= t < n_t:
        raise InputError(f"t = {t} is out of range: the stack has time points 0 to {n_t - 1}.")
    return t % n_t


def _t_value(four: xr.DataArray, t: int) -> int:
    """Return the time index (as in the tables) of position ``t`` of a stack."""
    return int(four["t"].values[t])


def _contrast(values: np.ndarray) -> tuple[float, float]:
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99.8])
    return float(lo), float(max(hi, lo + 1e-9))


# --------------------------------------------------------------------------- projections


def orthogonal_projections(
    stack: xr.DataArray,
    nuclei: pd.DataFrame | None = None,
    *,
    t: int = 0,
    fig: Any = None,
    cmap: str = "gray",
) -> Any:
    """Max projections along z, y and x, with nucleus centres.

    The xy projection is drawn top left, the zy projection (z horizontal) to
    its right and the xz projection below it, all in µm.  The xy projection
    is at physical aspect; z is stretched in the side projections when the
    stack is thin beside its width, so that they are at least
    :data:`MIN_SIDE_FRACTION` of the xy panel's shorter side (the z axis
    labels say by how much).  A stack of one plane (2D data) is drawn as its
    plane alone.  The projections are computed in one pass over the time
    point; nothing else is read.

    Parameters
    ----------
    stack : xarray.DataArray
        The image (lazy is fine).
    nuclei : pandas.DataFrame, optional
        Nuclei table; centres (``x_um, y_um, z_um``) of time point ``t`` are
        drawn as crosses coloured by ``nucleus`` id (see :data:`PALETTE`).
    t : int
        Position of the time point to show in ``stack`` (centres are matched
        by the stack's ``t`` coordinate, the time index of the tables).
    fig : matplotlib.figure.Figure, optional
        Figure to draw into; a new one by default.
    cmap : str
        Colour map of the image.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    four = as_4d(stack)
    t = _check_t(four, t)
    t_index = _t_value(four, t)
    one = four.data[t]
    sz, sy, sx = scale_of(stack)
    z0, y0, x0 = _origin(stack)
    nz, ny, nx = one.shape
    flat = nz == 1
    if flat:  # 2D data: the plane is its own max projection, no side views
        xy = np.asarray(one[0].compute())
        xz = zy = None
    else:
        xy, xz, zy = dask.compute(one.max(axis=0), one.max(axis=1), one.max(axis=2))
    zlim, ylim, xlim = _extent(nz, sz, z0), _extent(ny, sy, y0), _extent(nx, sx, x0)
    y_ext, x_ext = ny * sy, nx * sx
    # Side projections of a stack thin beside its width would be slivers: stretch z.
    # A whole factor, at least 2, so that the axis label reads plainly ("z (µm, x24)").
    wanted = 1.0 if flat else MIN_SIDE_FRACTION * min(x_ext, y_ext) / (nz * sz)
    stretch = float(np.floor(wanted)) if wanted >= 2 else 1.0
    z_ext = 0.0 if flat else nz * sz * stretch
    if fig is None:
        # Panels fill their grid cells (aspect "auto"): the figure's own aspect gives every
        # panel its physical one; very long or tall stacks are drawn in at most 16 inches.
        ratio = (y_ext + z_ext) / (x_ext + z_ext)
        width, height = 8.0, 8.0 * ratio
        if height < 2.5:
            width, height = min(2.5 / ratio, 16.0), 2.5
        elif height > 12.0:
            width, height = max(12.0 / ratio, 2.5), 12.0
        fig = plt.figure(figsize=(width, height), layout="constrained")
    style = {"cmap": cmap, "interpolation": "nearest", "aspect": "auto"}
    lo, hi = _contrast(np.asarray(xy))
    style.update(vmin=lo, vmax=hi)
    if flat:
        ax_xy = fig.add_subplot(1, 1, 1)
        ax_zy = ax_xz = None
    else:
        grid = fig.add_gridspec(
            2,
            2,
            width_ratios=[x_ext, z_ext],
            height_ratios=[y_ext, z_ext],
        )
        ax_xy = fig.add_subplot(grid[0, 0])
        ax_zy = fig.add_subplot(grid[0, 1], sharey=ax_xy)
        ax_xz = fig.add_subplot(grid[1, 0], sharex=ax_xy)
    ax_xy.imshow(xy, extent=(*xlim, ylim[1], ylim[0]), **style)
    if not flat:
        ax_zy.imshow(zy.T, extent=(*zlim, ylim[1], ylim[0]), **style)
        ax_xz.imshow(xz, extent=(*xlim, zlim[1], zlim[0]), **style)
    n_shown = 0
    if nuclei is not None and len(nuclei):
        sel = nuclei[nuclei["t"] == t_index] if "t" in nuclei else nuclei
        ids = sel["nucleus"].to_numpy() if "nucleus" in sel else np.arange(1, len(sel) + 1)
        marker = {"c": _float_rgba(ids), "s": 30, "marker": "+", "linewidths": 1.2}
        ax_xy.scatter(sel["x_um"], sel["y_um"], **marker)
        if not flat:
            ax_zy.scatter(sel["z_um"], sel["y_um"], **marker)
            ax_xz.scatter(sel["x_um"], sel["z_um"], **marker)
        n_shown = len(sel)
    ax_xy.set_ylabel("y (µm)")
    what = f"{n_shown} nuclei" if nuclei is not None else "no table"
    ax_xy.set_title(f"Max projections, t = {t_index}: {what}", loc="left", fontsize=10)
    if flat:
        ax_xy.set_xlabel("x (µm)")
        ax_xy.set_title(f"Plane, t = {t_index}: {what}", loc="left", fontsize=10)
        return fig
    z_label = "z (µm)" if stretch == 1.0 else f"z (µm, ×{stretch:.0f})"
    ax_xz.set_xlabel("x (µm)")
    ax_xz.set_ylabel(z_label)
    ax_zy.set_xlabel(z_label)
    ax_xy.tick_params(labelbottom=False)
    ax_zy.tick_params(labelleft=False)
    # Few ticks on the narrow z axes, so that their labels never overlap.
    ax_zy.xaxis.set_major_locator(MaxNLocator(3 if z_ext > 0.1 * x_ext else 1))
    ax_xz.yaxis.set_major_locator(MaxNLocator(3 if z_ext > 0.1 * y_ext else 1))
    for ax, (h, v) in ((ax_xy, (xlim, ylim)), (ax_zy, (zlim, ylim)), (ax_xz, (xlim, zlim))):
        ax.set_xlim(*h)  # centres drawn must not widen the panels
        ax.set_ylim(v[1], v[0])
    return fig


# --------------------------------------------------------------------------- montage


#: Width of a montage of one to three panels, inches (each panel 3 inches wide otherwise).
MONTAGE_WIDTH = 9.0


def plane_montage(
    stack: xr.DataArray,
    labels: xr.DataArray | None = None,
    *,
    t: int = 0,
    z: Sequence[int] | None = None,
    n: int = 6,
    ncols: int = 3,
    fig: Any = None,
    cmap: str = "gray",
) -> Any:
    """Draw a grid of planes of one time point, with label outlines coloured by id.

    Only the chunks holding the chosen planes (of the image and the labels)
    are read, in one computation.

    Parameters
    ----------
    stack : xarray.DataArray
        The image (lazy is fine).
    labels : xarray.DataArray, optional
        Labels of the same shape (plane labels or nucleus ids, 0 = background);
        their outlines are drawn over the image.
    t : int
        Time point.
    z : sequence of int, optional
        Plane indexes to show; by default ``n`` planes evenly spaced in z.
    n : int
        Number of planes when ``z`` is not given.
    ncols : int
        Panels per row.
    fig : matplotlib.figure.Figure, optional
        Figure to draw into; a new one by default.
    cmap : str
        Colour map of the image.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from skimage.segmentation import find_boundaries

    four = as_4d(stack)
    t = _check_t(four, t)
    nz, ny, nx = four.shape[1:]
    if z is None:
        planes = np.unique(np.linspace(0, nz - 1, max(1, min(n, nz))).round().astype(int))
    else:
        planes = np.asarray(list(z), int)
        if planes.size == 0 or planes.min() < -nz or planes.max() >= nz:
            raise InputError(f"z = {list(z)} must name planes between 0 and {nz - 1}.")
        planes = planes % nz
    image = four.data[t][planes]
    parts = [image]
    if labels is not None:
        lab4 = as_4d(labels)
        if lab4.shape != four.shape:
            raise InputError(
                f"labels (shape {lab4.shape}) must have the same shape as the stack "
                f"(shape {four.shape})."
            )
        parts.append(lab4.data[t][planes])
    computed = dask.compute(*parts)
    image = np.asarray(computed[0])
    sz, sy, sx = scale_of(stack)
    z0, y0, x0 = _origin(stack)
    ylim, xlim = _extent(ny, sy, y0), _extent(nx, sx, x0)
    ncols = max(1, min(ncols, len(planes)))
    nrows = -(-len(planes) // ncols)
    if fig is None:
        aspect = (ny * sy) / (nx * sx)
        # A few panels (one, of a 2D image) share the width of three: outlines stay readable.
        panel = max(3.0, MONTAGE_WIDTH / ncols)
        # Each image as wide as its share of the width less the y axis's labels, as tall as
        # its aspect makes it, and a title above it; the x axis's labels and the figure's
        # title once: no band of white between the rows.
        shown = (panel * ncols - 0.65) / ncols
        height = nrows * (shown * aspect + 0.3) + 0.8
        fig = plt.figure(figsize=(panel * ncols, min(max(height, 2.0), 20.0)), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    lo, hi = _contrast(image)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(planes):
            ax.set_axis_off()
            continue
        ax.imshow(
            image[k],
            extent=(*xlim, ylim[1], ylim[0]),
            cmap=cmap,
            vmin=lo,
            vmax=hi,
            interpolation="nearest",
        )
        if labels is not None:
            lab = np.asarray(computed[1][k])
            edges = find_boundaries(lab, mode="thick")
            overlay = np.zeros((*lab.shape, 4), np.float32)
            overlay[edges] = _float_rgba(lab[edges])
            ax.imshow(overlay, extent=(*xlim, ylim[1], ylim[0]), interpolation="nearest")
        title = (
            ("nuclei outlined" if labels is not None else "")
            if nz == 1
            else f"z = {planes[k]} ({z0 + planes[k] * sz:.1f} µm)"
        )
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(4))  # tick labels never overlap
        ax.yaxis.set_major_locator(MaxNLocator(4))
    for ax in axes[-1]:
        ax.set_xlabel("x (µm)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("y (µm)", fontsize=8)
    fig.suptitle(
        f"{'Plane' if nz == 1 else 'Planes'} of time point {_t_value(four, t)}", fontsize=10
    )
    return fig


# --------------------------------------------------------------------------- histogram


def _block_bincount(block: np.ndarray, nbins: int) -> np.ndarray:
    counts = np.bincount(block.ravel(), minlength=nbins)
    return counts.reshape((1,) * block.ndim + (nbins,))


def _lazy_histogram(data: da.Array) -> tuple[da.Array, Any]:
    """Count every grey level of 8/16-bit data (lazy); other data get 512 bins.

    Returns the lazy counts and the bin edges (an array for integer data, a
    lazy ``(lo, hi)`` pair to build them from for other data).
    """
    if data.dtype in (np.uint8, np.uint16):
        nbins = int(np.iinfo(data.dtype).max) + 1
        per_block = da.map_blocks(
            _block_bincount,
            data,
            nbins,
            chunks=tuple((1,) * nb for nb in data.numblocks) + ((nbins,),),
            new_axis=[data.ndim],
            dtype=np.int64,
            meta=np.empty((0,) * (data.ndim + 1), np.int64),
        )
        counts = per_block.sum(axis=tuple(range(data.ndim)))
        return counts, np.arange(nbins + 1) - 0.5
    return None, (data.min(), data.max())


def intensity_histogram(
    stack: xr.DataArray,
    threshold: float | Sequence[float] | xr.DataArray | bool | str | os.PathLike | None = None,
    *,
    t: int | None = None,
    params: Any = None,
    ax: Any = None,
) -> Any:
    """Histogram of every grey level, log counts, with the threshold(s) marked.

    For 8- and 16-bit data every grey level is its own bin (the full bit
    depth, no binning); the x axis spans the data's effective bit depth
    (e.g. 0 to 4095 for 12-bit data in 16-bit pixels).  Other data get 512
    bins between their minimum and maximum.  Counts are summed from one
    histogram per chunk: the stack is read once and never held in memory.

    A method whose statistic is taken on its signal above the background (the
    ``default`` preset's floor: :attr:`bigseg.methods.Method.signal`) has its
    threshold drawn over the histogram of that signal (512 bins, even on a log
    scale for integer data), computed lazily in the same pass, not over grey
    levels where it would mean nothing: with ``threshold=None``, a run's or
    :func:`bigseg.global_threshold`'s.

    Parameters
    ----------
    stack : xarray.DataArray
        The image (lazy is fine).
    threshold : float, sequence, xarray.DataArray, bool, path, Result or None
        Threshold(s) to mark: values (one per time point), the result of
        :func:`bigseg.global_threshold` (computed or lazy: drawn as that
        preset draws it), a run's output
        directory or its :class:`bigseg.pipeline.Result` (the thresholds
        that run used, from ``run.json``, matched to the stack's ``t``
        coordinate); ``None`` (default) computes
        :func:`bigseg.global_threshold` with ``params`` in the same pass as
        the histogram; ``False`` marks none.
    t : int, optional
        Only this time point (its position in ``stack``) and its threshold;
        by default all.
    params : Params, optional
        Whose statistic ``threshold=None`` computes; by default the default
        preset's, as :func:`bigseg.run` uses (``Params(preset="seed")`` gives
        the recipe's Otsu threshold).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; new ones by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    from . import methods
    from .params import Params

    four = as_4d(stack)
    data = four.data
    if t is not None:
        t = _check_t(four, t)
        data = data[t : t + 1]
    record = _run_record(threshold)
    if record is not None:
        threshold = _run_thresholds(record, four)
        params = _record_params(record)
    # global_threshold's values say whose statistic they are: a floor is drawn over its signal.
    tagged = isinstance(threshold, xr.DataArray) and "params" in threshold.attrs
    if tagged and params is None:
        params = _record_params({"parameters": threshold.attrs["params"]})
    params = params or Params()
    lazy: list[Any] = []
    if threshold is None:
        part = four if t is None else four.isel(t=slice(t, t + 1))
        lazy.append(global_threshold(part, params=params).data)
    elif isinstance(threshold, xr.DataArray) and isinstance(threshold.data, da.Array):
        lazy.append(threshold.data)  # computed in the histogram's pass
    # A threshold the method takes on its signal above the background (the default
    # preset's floor) is drawn over the histogram of that signal, not of grey levels.
    method = methods.get(params.preset)
    on_signal = method.signal is not None and (threshold is None or record is not None or tagged)
    if on_signal and data.dtype.kind == "u":
        # Never negative nor above the stack's range: bins spaced evenly on a log scale, as
        # the floor is taken, known before the data are read (one pass).
        top = float(np.iinfo(data.dtype).max) + 1.0
        edges = np.concatenate([[0.0], np.geomspace(0.5, top, 512)])
        signal = method.signal(data, params, scale_of(stack))
        counts, edges = da.histogram(signal, bins=edges)[0], edges
    elif on_signal:
        data = method.signal(data, params, scale_of(stack))
        counts, edges = _lazy_histogram(data)
    else:
        counts, edges = _lazy_histogram(data)
    if counts is None:  # float or wide integer data: range first, then 512 bins
        lo, hi = (float(v) for v in dask.compute(*edges))
        edges = np.linspace(lo, hi if hi > lo else lo + 1, 513)
        counts, _ = da.histogram(data, bins=edges)
    values = dask.compute(counts, *lazy)
    counts = np.asarray(values[0])
    if threshold is None:
        thresholds = np.atleast_1d(np.asarray(values[1], float))
    elif threshold is False:
        thresholds = np.empty(0)
    else:
        if lazy:  # a lazy DataArray, computed with the histogram
            raw = values[1]
        else:
            raw = threshold.values if isinstance(threshold, xr.DataArray) else threshold
        thresholds = np.atleast_1d(np.asarray(raw, float))
        if t is not None and thresholds.size == four.sizes["t"] > 1:
            thresholds = thresholds[t : t + 1]
    if ax is None:
        fig, ax = plt.subplots(figsize=(7.0, 3.5), layout="constrained")
    else:
        fig = ax.figure
    ax.stairs(counts, edges, fill=True, color="0.35")
    ax.set_yscale("log")
    total = int(counts.sum())
    nonzero = np.flatnonzero(counts)
    top = float(edges[nonzero[-1] + 1]) if nonzero.size else float(edges[-1])
    bottom = float(edges[nonzero[0]]) if nonzero.size else 0.0
    if on_signal:
        # The floor is drawn where it is, above every voxel too (a frame without nuclei).
        highest = float(np.max(thresholds, initial=-np.inf))
        if data.dtype.kind == "u":
            ax.set_xscale("log")
            ax.set_xlim(0.5, max(top, highest, 1.0) * 1.5)
        else:
            ax.set_xlim(edges[0], max(float(edges[-1]), highest + 0.05 * (highest - edges[0])))
        ax.set_xlabel(
            f"smoothed signal above the background (512 bins), as the {params.preset} "
            "preset sees it"
        )
    elif data.dtype in (np.uint8, np.uint16):
        bits = max(8, int(np.ceil(np.log2(max(top, 2.0)))))
        if bottom > 2**bits / 4 and top - bottom < 2**bits / 4:
            # A camera offset: every voxel sits in a narrow band high in the range.
            pad = max(8.0, (top - bottom) * 0.05)
            ax.set_xlim(bottom - pad, top + pad)
            ax.set_xlabel(
                f"intensity (grey levels {bottom + 0.5:g} to {top - 0.5:g} of the {bits}-bit "
                "range, "
                "one bin per grey level)"
            )
        else:
            ax.set_xlim(-0.5, 2**bits - 0.5)
            ax.set_xlabel(f"intensity ({bits}-bit range, one bin per grey level)")
    else:
        ax.set_xlim(edges[0], edges[-1])
        ax.set_xlabel("intensity (512 bins)")
    ax.set_ylabel("voxels (log)")
    if len(thresholds) == 1:
        centres = (edges[:-1] + edges[1:]) / 2
        above = counts[centres > thresholds[0]].sum() / total if total else 0.0
        name = "floor" if on_signal else "threshold"
        label = f"{name} {thresholds[0]:g} ({above:.1%} of voxels above)"
    else:
        label = (
            f"thresholds of {len(thresholds)} time points: "
            f"{thresholds.min(initial=np.inf):g} to {thresholds.max(initial=-np.inf):g}"
        )
    for k, value in enumerate(thresholds):
        ax.axvline(value, color="tab:red", lw=1, alpha=0.8, label=label if k == 0 else None)
    if on_signal and params.preset == "default" and four.sizes["z"] == 1:
        # In a 2D image the default method sees a nucleus whose peak is above part of the
        # floor (methods.default.PLANAR_PEAK): drawn too, so that the figure tells the truth.
        fraction = methods.default.PLANAR_PEAK
        for k, value in enumerate(thresholds):
            seen = f"2D nuclei seen with peaks above {fraction * value:g} ({fraction:g} floor)"
            ax.axvline(
                fraction * value, color="tab:red", lw=1, ls="--", alpha=0.6,
                label=seen if k == 0 and len(thresholds) == 1 else None,
            )  # fmt: skip
    if len(thresholds):
        ax.legend(loc="upper right", fontsize=8, frameon=False)
    when = "all time points" if t is None else f"time point {_t_value(four, t)}"
    what = "Signal above the background" if on_signal else "Intensity histogram"
    ax.set_title(f"{what}, {when}: {total:,} voxels", loc="left", fontsize=10)
    return fig


def _run_record(threshold: Any) -> dict | None:
    """Return the ``run.json`` record of a run's output directory or Result; None for values."""
    if isinstance(threshold, (str, os.PathLike)):
        return _read_record(Path(threshold))
    if hasattr(threshold, "record") and hasattr(threshold, "thresholds"):
        return threshold.record
    return None


def _record_params(record: dict) -> Any:
    """Return the :class:`bigseg.Params` a run recorded (``run.json``'s ``parameters``)."""
    from .params import Params

    fields = {f for f in Params.__dataclass_fields__}
    return Params(**{k: v for k, v in record.get("parameters", {}).items() if k in fields})


def _run_thresholds(record: dict, four: xr.DataArray) -> list[float]:
    """Return the thresholds a run used (``run.json``) for each time point of ``four``."""
    values = [float(v) for v in record["thresholds"]]
    times = record["input"].get("t_selected") or list(range(len(values)))
    by_t = dict(zip(times, values))
    wanted = [int(v) for v in four["t"].values]
    missing = [v for v in wanted if v not in by_t]
    if missing:
        raise InputError(
            f"The run did not segment time point(s) {missing} of this stack (it segmented "
            f"{times}); select those time points first (stack.isel(t=...))."
        )
    return [by_t[v] for v in wanted]


def _read_record(out: Path) -> dict:
    record_path = out / "run.json"
    if not record_path.exists():
        raise InputError(f"{str(out)!r} is not a finished bigseg output (no run.json).")
    return json.loads(record_path.read_text())


# --------------------------------------------------------------------------- time series


def time_table(
    nuclei: pd.DataFrame, *, time_points: int | Sequence[int] | None = None
) -> pd.DataFrame:
    """Per-time-point statistics of a nuclei table (pandas, no image access).

    Parameters
    ----------
    nuclei : pandas.DataFrame
        Nuclei table with ``t``, ``volume_um3`` and ``intensity_mean``.
    time_points : int or sequence of int, optional
        Number of time points of the stack, or the time indices a run
        segmented (``run.json``'s ``t_selected``), so that time points
        without nuclei appear with a count of 0; by default those seen in
        the table.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``t``: ``nuclei`` (count), ``mean_volume_um3``,
        ``sd_volume_um3``, ``mean_radius_um``, ``sd_radius_um``,
        ``mean_intensity``, ``sd_intensity`` (means over the nuclei of each
        time point; NaN where there are none, and volumes NaN for 2D stacks).
    """
    missing = {"t", "volume_um3", "intensity_mean"} - set(nuclei.columns)
    if missing:
        raise InputError(
            f"The nuclei table lacks the column(s) {sorted(missing)}; pass a table from "
            "bigseg.run or nuclei.parquet."
        )
    g = nuclei.groupby(nuclei["t"].astype(int))
    out = pd.DataFrame(
        {
            "nuclei": g.size(),
            "mean_volume_um3": g["volume_um3"].mean(),
            "sd_volume_um3": g["volume_um3"].std(ddof=0),
            "mean_radius_um": g["radius_um"].mean() if "radius_um" in nuclei else np.nan,
            "sd_radius_um": g["radius_um"].std(ddof=0) if "radius_um" in nuclei else np.nan,
            "mean_intensity": g["intensity_mean"].mean(),
            "sd_intensity": g["intensity_mean"].std(ddof=0),
        }
    )
    if time_points is None or isinstance(time_points, (int, np.integer)):
        n = (
            time_points
            if time_points is not None
            else (int(out.index.max()) + 1 if len(out) else 0)
        )
        index = pd.RangeIndex(int(n), name="t")
    else:
        index = pd.Index([int(v) for v in time_points], name="t")
    out = out.reindex(index)
    out["nuclei"] = out["nuclei"].fillna(0).astype(np.int64)
    return out


def time_summary(
    nuclei: pd.DataFrame,
    *,
    time_points: int | Sequence[int] | None = None,
    fig: Any = None,
    frame_interval_s: float | None = None,
) -> Any:
    """Nucleus count, mean volume and mean intensity against time point.

    Drawn from the nuclei table alone (see :func:`time_table`); bands show
    one standard deviation over the nuclei of each time point.  For 2D
    time-lapses (no volumes: one plane per time point) the mean radius is
    drawn instead of the mean volume.

    Parameters
    ----------
    nuclei : pandas.DataFrame
        Nuclei table (``bigseg.run(...).nuclei`` or ``nuclei.parquet``).
    time_points : int or sequence of int, optional
        Number of time points of the stack, or the time indices segmented
        (time points without nuclei are drawn as 0); by default those seen
        in the table.
    fig : matplotlib.figure.Figure, optional
        Figure to draw into; a new one by default.
    frame_interval_s : float, optional
        Seconds between time points (``run.json``'s ``input.frame_interval_s``): the
        x axis is then the time in minutes (hours beyond five), from time point 0.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if frame_interval_s is not None and not float(frame_interval_s) > 0:
        raise InputError(
            f"frame_interval_s={frame_interval_s!r} must be a positive number of seconds "
            "between time points (or None: the axis in time points)."
        )
    table = time_table(nuclei, time_points=time_points)
    if fig is None:
        fig = plt.figure(figsize=(6.0, 6.0))
    axes = fig.subplots(3, 1, sharex=True)
    points = table.index.to_numpy()
    t, xlabel = points, "time point"
    if frame_interval_s is not None:
        minutes = points * float(frame_interval_s) / 60.0
        if len(points) and minutes.max() > 300:
            t, xlabel = minutes / 60.0, "time (h)"
        else:
            t, xlabel = minutes, "time (min)"
    axes[0].plot(t, table["nuclei"], "o-", color="k", ms=4)
    axes[0].set_ylabel("nuclei")
    # From 0, with room above the largest count (its points would sit on the frame).
    axes[0].set_ylim(0, max(float(table["nuclei"].to_numpy().max(initial=0)), 1.0) * 1.12)
    size = (
        ("volume_um3", "mean volume (µm³)")
        if table["mean_volume_um3"].notna().any() or not table["mean_radius_um"].notna().any()
        else ("radius_um", "mean radius (µm)")  # 2D: nuclei have an area, not a volume
    )
    for ax, column, label in (
        (axes[1], *size),
        (axes[2], "intensity", "mean intensity"),
    ):
        mean = table[f"mean_{column}"].to_numpy(float)
        sd = table[f"sd_{column}"].to_numpy(float)
        ax.plot(t, mean, "o-", color="tab:blue", ms=4)
        ax.fill_between(t, mean - sd, mean + sd, color="tab:blue", alpha=0.2, lw=0)
        ax.set_ylabel(label)
    axes[-1].set_xlabel(xlabel)
    if len(t) and len(t) <= 20 and frame_interval_s is None:
        axes[-1].set_xticks(t)
    axes[0].set_title(
        f"{int(table['nuclei'].sum())} nuclei in {len(t)} time points"
        + (f", {_duration(frame_interval_s)} apart" if frame_interval_s is not None else ""),
        loc="left",
        fontsize=10,
    )
    fig.align_ylabels(axes)
    return fig


def _duration(seconds: float) -> str:
    """``90`` -> ``'1.5 min'``, ``20`` -> ``'20 s'``, ``7200`` -> ``'2 h'``."""
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    return f"{seconds / 3600:g} h"


# --------------------------------------------------------------------------- tracks


def _check_tracked(table: pd.DataFrame, what: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise InputError(
            f"The {what} table has no {', '.join(missing)} column(s); pass a tracked run's "
            f"{what} (bigseg.run(...).{what} of a series, or {what}.parquet)."
        )


def track_paths(
    nuclei: pd.DataFrame,
    *,
    min_length: int = 1,
    ax: Any = None,
) -> Any:
    """Draw the path of every track seen from above: y against x in µm, in its colour.

    Each track is a line through its nuclei's centres in time order, starting at a dot;
    a daughter's line starts at her mother's last centre (the division), so a lineage
    draws as one branching path.  Drawn from the nuclei table alone.

    Parameters
    ----------
    nuclei : pandas.DataFrame
        Tracked nuclei (``t, y_um, x_um, track_id, parent_track_id``): a run's
        ``Result.nuclei`` or ``nuclei.parquet``.
    min_length : int
        Draw only tracks of at least this many nuclei (daughters always join their
        mother's end).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; new ones by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    _check_tracked(nuclei, "nuclei", ["t", "y_um", "x_um", "track_id", "parent_track_id"])
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, 6.0))
    table = nuclei.sort_values(["track_id", "t"], kind="stable")
    ends = table.groupby("track_id")[["y_um", "x_um"]].last()
    drawn = 0
    for track_id, rows in table.groupby("track_id", sort=True):
        if len(rows) < min_length:
            continue
        y, x = rows["y_um"].to_numpy(float), rows["x_um"].to_numpy(float)
        parent = int(rows["parent_track_id"].iloc[0])
        if parent in ends.index:  # start at the division
            y = np.concatenate([[ends.loc[parent, "y_um"]], y])
            x = np.concatenate([[ends.loc[parent, "x_um"]], x])
        colour = _float_rgba([int(track_id)])[0]
        ax.plot(x, y, "-", color=colour, lw=1.2)
        ax.plot(x[-len(rows)], y[-len(rows)], "o", color=colour, ms=3)
        drawn += 1
    ax.set_aspect("equal")
    ax.invert_yaxis()  # rows down, as images are shown
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_title(f"{drawn} tracks", loc="left", fontsize=10)
    return ax.figure


def lineage(
    tracks: pd.DataFrame,
    *,
    roots: Sequence[int] | None = None,
    ax: Any = None,
) -> Any:
    """Draw the lineage trees of a run: each track a line along time, daughters side by side.

    Time runs down; each track is a vertical line from its first to its last time
    point (a dot at its first), in the track's colour, joined to its daughters by a
    horizontal line at the division.  Trees are laid out side by side, each daughter's
    subtree next to her sister's, the mother centred above them.  Drawn from the tracks
    table alone.

    Parameters
    ----------
    tracks : pandas.DataFrame
        ``track_id, parent_track_id, t_first, t_last`` per track: a run's
        ``Result.tracks`` or ``tracks.parquet``.
    roots : sequence of int, optional
        Draw the trees of these tracks only (by default every tree: every track
        without a parent, or whose parent is not in the table).
    ax : matplotlib.axes.Axes, optional
        Axes to draw into; new ones by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    _check_tracked(tracks, "tracks", ["track_id", "parent_track_id", "t_first", "t_last"])
    table = tracks.set_index("track_id").sort_index()
    children: dict[int, list[int]] = {}
    for track_id, parent in table["parent_track_id"].items():
        if parent in table.index:
            children.setdefault(int(parent), []).append(int(track_id))
    if roots is None:
        tops = [int(i) for i, p in table["parent_track_id"].items() if p not in table.index]
    else:
        tops = [int(r) for r in roots]
        unknown = [r for r in tops if r not in table.index]
        if unknown:
            raise InputError(f"roots={unknown[:3]} are not tracks of the table; choose others.")
    x: dict[int, float] = {}
    leaf = [0.0]

    def place(track_id: int) -> float:  # depth-first, without recursion limits
        stack = [(track_id, False)]
        while stack:
            node, seen = stack.pop()
            kids = children.get(node, [])
            if not kids:
                x[node] = leaf[0]
                leaf[0] += 1.0
            elif seen:
                x[node] = float(np.mean([x[k] for k in kids]))
            else:
                stack.append((node, True))
                stack.extend((k, False) for k in reversed(kids))
        return x[track_id]

    for top in tops:
        place(top)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, min(16.0, 0.12 * leaf[0] + 2)), 5.0))
    for track_id, pos in x.items():
        row = table.loc[track_id]
        colour = _float_rgba([track_id])[0]
        ax.plot([pos, pos], [row["t_first"], row["t_last"]], "-", color=colour, lw=1.5)
        ax.plot([pos], [row["t_first"]], "o", color=colour, ms=3)  # one time point shows too
        kids = children.get(track_id, [])
        if kids:
            t_end = row["t_last"]
            ax.plot([min(x[k] for k in kids), max(x[k] for k in kids)], [t_end, t_end], "-",
                    color="0.4", lw=0.8)  # fmt: skip
            for k in kids:  # down to each daughter's first time point
                ax.plot([x[k], x[k]], [t_end, table.loc[k, "t_first"]], "-", color="0.4", lw=0.8)
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("time point")
    divisions = sum(1 for k in x if k in children)
    ax.set_title(f"{len(tops)} trees, {len(x)} tracks, {divisions} divisions", loc="left",
                 fontsize=10)  # fmt: skip
    return ax.figure


# --------------------------------------------------------------------------- napari


def napari_layers(
    result: str | Any,
    *,
    source: str | None = None,
    channel: int | None = None,
    point_size_um: float = 2.0,
) -> list[tuple[Any, dict, str]]:
    """Layers of a finished run for napari: image, nuclei labels and centres, in µm.

    napari is not imported (nor needed to call this); pass each ``(data,
    kwargs, kind)`` to ``viewer.add_<kind>(data, **kwargs)``::

        viewer = napari.Viewer()
        for data, kwargs, kind in bigseg.plots.napari_layers("out/"):
            getattr(viewer, f"add_{kind}")(data, **kwargs)

    The image and the labels stay lazy (napari reads the planes it shows; the
    labels as their pyramid, a list of levels, when they have one),
    with the voxel size and origin as the layers' ``scale`` and
    ``translate``, in ``units`` of ``micrometer`` (napari 0.5 or later); so are
    the centres, drawn in the plane nearest to each.  Labels and centres share
    the colours of the other figures (up to :data:`bigseg.io.MAX_LISTED_LABELS`
    nuclei; napari's own beyond), and carry the nuclei table as ``features``.
    Works for every input format.

    Parameters
    ----------
    result : path-like
        Output directory of ``bigseg segment`` / :func:`bigseg.run`.
    source : path-like, optional
        The run's input, when it has moved since the run (by default the
        absolute path recorded in ``run.json``).
    channel : int, optional
        The channel to show; by default the one the run segmented.
    point_size_um : float
        Diameter of the centre markers in µm.

    Returns
    -------
    list of (data, dict, str)
        ``image``, ``labels`` and ``points`` layer data, in that order, and a
        ``tracks`` layer (rows ``track_id, t, z, y, x``, the lineage as its ``graph``:
        each daughter track to its mother) when the run tracked its nuclei.
    """
    from .io import MAX_LISTED_LABELS, open_levels, read_table

    out = Path(result)
    record = _read_record(out)
    stack = _run_input(record, source=source, channel=channel, option="source=")
    levels = open_levels(out / "labels.zarr")
    nuclei = read_table(out / "nuclei.parquet")
    lead = [1.0] * (stack.ndim - 3)
    t_origin = [0.0] * len(lead)
    if lead:  # time points selected by the run: the t slider shows the original indices
        times = stack["t"].to_numpy()
        lead = [float(times[1] - times[0]) if len(times) > 1 else 1.0]
        t_origin = [float(times[0])]
    place = {
        "scale": lead + list(scale_of(stack)),
        "translate": t_origin + list(_origin(stack)),
        # napari >= 0.5: the scale bar says µm, and bigseg's widget knows the voxel size
        "units": ["pixel"] * len(lead) + ["micrometer"] * 3,
    }
    name = Path(str(stack.attrs["source"]).rstrip("/")).name
    features = nuclei.rename(columns={"nucleus": "index"})
    ids = nuclei["nucleus"].to_numpy(np.int64)
    label_kwargs: dict[str, Any] = {"name": "nuclei", "features": features, **place}
    if len(levels) > 1:  # the label pyramid: napari shows the level that fits the view
        label_kwargs["multiscale"] = True
    if 0 < len(ids) <= MAX_LISTED_LABELS:
        colours = _float_rgba(ids)
        label_kwargs["colormap"] = {
            None: (0.0, 0.0, 0.0, 0.0),
            **{int(i): tuple(c) for i, c in zip(ids, colours)},
        }
    # Centres in voxel index units with the image's scale and translate: each shows in the
    # plane nearest to it, at the world position (µm) of the table.
    position = ["t", "z", "y", "x"] if stack.ndim == 4 else ["z", "y", "x"]
    centres = nuclei[position].to_numpy(np.float64)
    if lead:  # original time index -> position in the selected stack
        centres[:, 0] = (centres[:, 0] - t_origin[0]) / lead[0]
    _, sy, sx = scale_of(stack)
    points_kwargs = {
        "name": "centres",
        "size": point_size_um / ((sy + sx) / 2),
        "face_color": _float_rgba(ids) if len(ids) else "white",
        "features": nuclei,
        **place,
    }
    layers = [
        (stack.data, {"name": name, **place}, "image"),
        (levels if len(levels) > 1 else levels[0], label_kwargs, "labels"),
        (centres, points_kwargs, "points"),
    ]
    if "track_id" in nuclei and lead:
        layers.append(_tracks_layer(nuclei, centres, place))
    return layers


def _tracks_layer(nuclei: pd.DataFrame, centres: np.ndarray, place: dict) -> tuple:
    """Return napari's tracks layer: ``(track_id, t, z, y, x)`` rows, the lineage as graph."""
    track = nuclei["track_id"].to_numpy(np.int64)
    order = np.lexsort((centres[:, 0], track))
    data = np.column_stack([track[order].astype(np.float64), centres[order]])
    parents = nuclei.groupby("track_id")["parent_track_id"].first()
    graph = {int(k): [int(v)] for k, v in parents.items() if v > 0}
    kwargs = {
        "name": "tracks",
        "graph": graph,
        "features": nuclei.iloc[order].reset_index(drop=True),
        "tail_length": 10,
        **place,
    }
    return data, kwargs, "tracks"


def _run_input(
    record: dict, *, source: Any = None, channel: int | None = None, option: str = "source="
) -> xr.DataArray:
    """Open a run's input as the run saw it: its channel, voxel size and time points.

    Parameters
    ----------
    record : dict
        The run record (``run.json``).
    source : path-like, optional
        Where the input is now, when it has moved; by default the recorded
        absolute path (or URL).
    channel : int, optional
        Another channel of the input to show; by default the segmented one.
    option : str
        How the caller names ``source`` in errors (``--input PATH`` on the
        command line).

    Returns
    -------
    xarray.DataArray
        The lazy stack, with the shape of the run's labels.
    """
    from .io import open_stack

    inp = record["input"]
    path = os.fspath(source) if source is not None else inp["source"]
    if not (_objstore.is_url(path) or os.path.exists(path) or glob.glob(path)):
        raise InputError(
            f"The input of this run, {path!r}, is not there any more; give its new "
            f"location with {option}."
        )
    sc = inp["scale_um"]
    if channel is None:
        channel = inp.get("channel")
    stack = open_stack(
        path,
        scale=(sc["z"], sc["y"], sc["x"]),
        channel=channel,
        files_axis=inp.get("files_axis"),  # a folder or pattern of files, reopened the same way
    )
    times = inp.get("t_selected")
    if times is not None and "t" in stack.dims and stack.sizes["t"] != len(times):
        if max(times) >= stack.sizes["t"]:
            raise InputError(
                f"{path!r} has {stack.sizes['t']} time points but this run segmented time "
                f"points up to {max(times)}; give the run's input with {option}."
            )
        stack = stack.isel(t=times)
    if list(stack.shape) != list(inp["shape"]):
        raise InputError(
            f"{path!r} has shape {list(stack.shape)} but this run's input had "
            f"{inp['shape']}; give the run's input with {option}."
        )
    return stack
