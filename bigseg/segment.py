"""segment() and global_threshold(): look up the method, hand the blocks to :mod:`bigseg.chunked`.

Nothing here computes: each function returns lazy xarray/dask objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from . import methods
from ._errors import InputError
from .chunked.plan import (
    RELABEL,
    PassMemory,
    fit_to_halo,
    memory_budget,
    per_t,
    planes_split,
    whole_planes,
    work_chunks,
)
from .chunked.stitch import segment_blocks, segment_stitched
from .kernels import LABEL_DTYPE
from .params import Params, PixelParams
from .reads import in_work_chunks
from .stack import as_4d, scale_of

__all__ = [
    "global_threshold",
    "memory_model",
    "plan_blocks",
    "segment",
    "segment_whole_planes",
    "stitched_blocks",
    "work_blocks",
]


def global_threshold(stack: xr.DataArray, *, params: Params | None = None) -> xr.DataArray:
    """Return the method's global statistic, one per time point (lazy), as :func:`bigseg.run`.

    ``seed``: the Otsu threshold of the raw maximum projection (for 8- and 16-bit
    data exactly ``skimage.filters.threshold_otsu(stack.max("z"))``, from per-block
    histograms).  ``default``: the floor, Otsu's threshold of the log histogram of the
    smoothed stack above its background, or 15 times the noise of that signal where the
    threshold is not 5 times above it (a time point of noise alone)
    (:mod:`bigseg.methods.default`).

    Parameters
    ----------
    stack : xarray.DataArray
        From :func:`bigseg.open_stack`; dims ``(z, y, x)`` or ``(t, z, y, x)``.
    params : Params, optional
        Which method's statistic to compute (``params.preset``); default ``Params()``,
        the ``default`` method, as :func:`segment` and :func:`bigseg.run`.

    Returns
    -------
    xarray.DataArray
        Dims ``("t",)`` for a 4D stack, a 0-d array for a 3D stack; ``attrs["params"]``
        says whose statistic it is (:meth:`Params.to_dict`), so that
        :func:`bigseg.plots.intensity_histogram` draws a floor over the signal it was
        taken on.
    """
    params = params or Params()
    out = methods.get(params.preset).statistic(stack, params)
    out.attrs["params"] = params.to_dict()
    return out


def memory_model(params: Params, scale, *, kept: bool = False) -> tuple[PassMemory, ...]:
    """Return the memory model of every pass of ``params.preset``, relabelling included.

    ``kept``: the passes of a run that keeps the method's signal (computed once, in
    blocks of its own, and read back by the work blocks: no ``floor`` pass over them,
    and a pre-pass that reads the kept signal), rather than of one that computes it in
    every work block.
    """
    m = methods.get(params.preset)
    px = params.in_pixels(scale)
    passes = m.memory(params, scale, halo_px(px, params.preset))
    return (*(p for p in passes if p.kept is None or p.kept == bool(kept)), RELABEL)


def work_blocks(
    stack: xr.DataArray,
    params: Params,
    *,
    budget: int | None = None,
    stitch: bool | None = None,
    merge: bool = False,
    kept: bool = False,
) -> xr.DataArray:
    """Return ``stack`` rechunked into work blocks whose every task fits ``budget`` (lazy).

    The storage chunks are kept where the method's memory model
    (:func:`memory_model`) fits the budget, else split into t, z and y/x blocks
    (at least the method's halo wide, stitched exactly as chunks that split
    planes are); with ``merge``, tiny storage chunks are merged along y/x, z and t
    (:func:`bigseg.chunked.plan.work_chunks`).  ``budget`` defaults to
    :func:`bigseg.chunked.plan.memory_budget` (the current client's workers'
    limit per thread, or dask's ``array.chunk-size``).  ``stitch=False``, or a
    method that cannot segment split planes, keeps planes whole.  ``kept``: planned
    for a run that keeps the method's signal (``memory_model(kept=True)``).
    """
    m = methods.get(params.preset)
    scale = scale_of(stack)
    four = as_4d(stack)
    px = params.in_pixels(scale, scale_source=stack.attrs.get("scale_source", "array"))
    chunks = work_chunks(
        four.shape,
        four.data.chunks,
        memory_model(params, scale, kept=kept),
        memory_budget() if budget is None else int(budget),
        itemsize=four.dtype.itemsize,
        min_side=halo_px(px, params.preset),
        split_planes=m.split_planes and stitch is not False,
        merge=merge,
    )
    if chunks == four.data.chunks:
        return stack
    by_dim = dict(zip(four.dims, chunks))
    return stack.copy(data=in_work_chunks(stack.data, tuple(by_dim[d] for d in stack.dims)))


def plan_blocks(data: da.Array, px: PixelParams, stitch: bool | None, method: str) -> Any:
    """Return the ``(t, z, y, x)`` data rechunked for stitching, or None for whole planes.

    ``stitch=None`` stitches when the planes are split and the chunks allow
    the method's halo; ``True`` requires it (:class:`bigseg.InputError` naming the
    minimum chunk size otherwise); ``False`` never stitches.  Methods that cannot
    segment split planes use whole planes.  ``px`` are the parameters' pixel sizes
    (:meth:`bigseg.Params.in_pixels`).
    """
    if stitch is False or not planes_split(data):
        return None
    m = methods.get(method)
    if not m.split_planes:
        if stitch:
            raise InputError(
                f"The {method!r} preset cannot segment planes split into y/x chunks yet; "
                "use chunks=(z, -1, -1) (whole planes)."
            )
        return None
    return fit_to_halo(data, halo_px(px, method), strict=bool(stitch))


def halo_px(px: PixelParams, method: str) -> int:
    """Halo in pixels (per side, along y and x) that makes stitching exact for ``method``."""
    m = methods.get(method)
    return int(m.halo(m.pixels(px)))


def stitched_blocks(
    data: da.Array,
    thresholds: da.Array,
    params: Params,
    px: PixelParams,
    scale,
    *,
    keep: Callable[[da.Array], da.Array] | None = None,
    signal: da.Array | None = None,
) -> da.Array:
    """One :class:`bigseg.chunked.stitch.Block` per y/x block of ``data`` (lazy object array).

    ``data`` as :func:`plan_blocks` returns it; the method's pre-pass, kernel and halo.
    ``keep(source)``, when given, stores the pre-pass's output and returns it read
    back (a run's scratch store): the blocks then read their halo from there.
    ``signal``, when given, is the method's signal (:attr:`bigseg.methods.Method.signal`)
    of ``data``, in its chunks, computed before (a run keeps it): the pre-pass reads it
    (:attr:`~bigseg.methods.Method.prepass_of_signal`) instead of computing it again.
    """
    m = methods.get(params.preset)
    if signal is not None:
        source, image = m.prepass_of_signal(signal, data, thresholds, params, scale)
    else:
        source, image = m.prepass(data, thresholds, params, scale)
    if keep is not None and source is not data:
        source = keep(source)
    halo = halo_px(px, params.preset)
    return segment_blocks(
        source,
        thresholds,
        m.pixels(px),
        m.kernel_for(params, scale, data.shape[1]),
        halo=halo,
        image=image,
        foreground=m.foreground,
        components=m.components,
        peaks=m.peaks,
    )


def segment(
    stack: xr.DataArray,
    *,
    params: Params | None = None,
    threshold: float | xr.DataArray | np.ndarray | None = None,
    stitch: bool | None = None,
    budget: int | None = None,
) -> xr.DataArray:
    """Segment every plane of a stack into nucleus cross-sections (lazy).

    Parameters
    ----------
    stack : xarray.DataArray
        From :func:`bigseg.open_stack`; dims ``(z, y, x)`` or ``(t, z, y, x)``.
    params : Params, optional
        Sizes in µm and the method (``params.preset``); default ``Params()``.
    threshold : float or array of one value per time point, optional
        Foreground threshold (the floor, for the ``default`` method); by
        default :func:`global_threshold` for ``params``, computed lazily as
        its own step of the same graph.
    stitch : bool, optional
        Planes split into y/x chunks are segmented block by block with a halo
        and their labels stitched (see :mod:`bigseg.chunked.stitch`): ``None``
        (default) when the chunks are at least the halo, else whole planes;
        ``True`` always (an error names the minimum chunk size); ``False``
        never.
    budget : int, optional
        Bytes one task may use: chunks whose tasks would need more are split into
        work blocks (:func:`work_blocks`; planes into y/x blocks, stitched unless
        ``stitch=False``).  Default: the current client's workers' memory limit per
        thread (half of it), or dask's ``array.chunk-size``.

    Returns
    -------
    xarray.DataArray
        Plane-local labels (int32, 1..n per plane, 0 = background) with the
        stack's dims and coordinates; chunks hold whole planes, or the
        stack's y/x chunks when stitched.
    """
    params = params or Params()
    m = methods.get(params.preset)
    stack = work_blocks(stack, params, budget=budget, stitch=stitch)
    scale = scale_of(stack)
    px = params.in_pixels(scale, scale_source=stack.attrs.get("scale_source", "array"))
    four = as_4d(stack)
    thresholds = _threshold_array(four, stack, threshold, params)
    split = plan_blocks(four.data, px, stitch, params.preset)
    if split is not None:
        source, image = m.prepass(split, thresholds, params, scale)
        labels = segment_stitched(
            source,
            thresholds,
            m.pixels(px),
            m.kernel_for(params, scale, four.sizes["z"]),
            halo=halo_px(px, params.preset),
            image=image,
            foreground=m.foreground,
            components=m.components,
        )
    else:
        source, _ = m.prepass(whole_planes(four.data), thresholds, params, scale)
        kernel = m.kernel_for(params, scale, four.sizes["z"])
        labels = _plane_labels(source, thresholds, m.pixels(px), kernel)
    out = _labels_like(labels, four, stack, params)
    return out if "t" in stack.dims else out.isel(t=0)


def segment_whole_planes(
    stack: xr.DataArray,
    *,
    params: Params,
    threshold: np.ndarray,
    signal: da.Array | None = None,
) -> tuple[xr.DataArray, da.Array | None]:
    """:func:`segment` of whole planes (``stitch=False``) as 4D labels, and what to take peaks of.

    With ``signal`` (:attr:`bigseg.methods.Method.signal` of ``stack`` as 4D, chunked like
    it: a run keeps it from its threshold pass), the method's pre-pass reads it
    (:attr:`~bigseg.methods.Method.prepass_of_signal`) instead of computing it again: the
    same labels.  ``threshold``: one per time point.  The second value is the method's
    pre-pass output the labels are cut from (chunked like them), where the method measures
    each region's peak of it (:attr:`bigseg.methods.Method.peaks`); None otherwise.  One
    graph: the pre-pass is computed once for both.
    """
    m = methods.get(params.preset)
    if signal is None:
        stack = work_blocks(stack, params, stitch=False)
    scale = scale_of(stack)
    px = params.in_pixels(scale, scale_source=stack.attrs.get("scale_source", "array"))
    four = as_4d(stack)
    thresholds = _threshold_array(four, stack, threshold, params)
    if signal is None:
        source, _ = m.prepass(whole_planes(four.data), thresholds, params, scale)
    else:
        source, _ = m.prepass_of_signal(signal, four.data, thresholds, params, scale)
    kernel = m.kernel_for(params, scale, four.sizes["z"])
    labels = _plane_labels(source, thresholds, m.pixels(px), kernel)
    return _labels_like(labels, four, stack, params), source if m.peaks else None


def _plane_labels(source: da.Array, thresholds: da.Array, px: PixelParams, kernel) -> da.Array:
    """Return the kernel's plane labels of every block of whole planes of ``source`` (lazy)."""
    return da.map_blocks(
        kernel,
        source,
        per_t(thresholds, source.chunks[0]),
        px,
        dtype=LABEL_DTYPE,
        meta=np.empty((0, 0, 0, 0), LABEL_DTYPE),
    )


def _labels_like(labels: da.Array, four: xr.DataArray, stack: xr.DataArray, params: Params):
    out = xr.DataArray(
        labels, dims=four.dims, coords=four.coords, attrs=dict(stack.attrs), name="labels"
    )
    out.attrs["params"] = params.to_dict()
    return out


def _threshold_array(
    four: xr.DataArray, stack: xr.DataArray, value, params: Params | None = None
) -> da.Array:
    n_t = four.sizes["t"]
    if value is None:
        value = global_threshold(stack, params=params)
    if isinstance(value, xr.DataArray):
        value = value.data
    arr = value if isinstance(value, da.Array) else da.from_array(np.asarray(value, np.float64))
    arr = arr.astype(np.float64).reshape(-1) if arr.ndim else arr.astype(np.float64)[None]
    if arr.shape[0] == 1 and n_t > 1:
        arr = da.broadcast_to(arr, (n_t,))
    if arr.shape[0] != n_t:
        raise InputError(
            f"threshold has {arr.shape[0]} values but the stack has {n_t} time points; "
            "give one value, or one per time point."
        )
    return arr
