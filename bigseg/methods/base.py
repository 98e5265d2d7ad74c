"""What a segmentation method declares: its statistic, kernel, halo, pre-pass and linking."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask.array as da

from ..chunked.plan import PassMemory
from ..chunked.stitch import halo_of
from ..params import PixelParams

__all__ = [
    "PLANE_KERNEL",
    "STITCHED_KERNEL",
    "Method",
    "any_dtype",
    "no_prepass",
    "plane_kernel_memory",
    "same_pixels",
]

#: Memory of a plane kernel (measured with tracemalloc, ``tests/test_memory.py``): its
#: int32 labels for the whole block, and about 64 bytes per voxel of the plane it works on
#: (filtered plane, distance transform, markers, watershed), plus 2 MiB of tables.
PLANE_KERNEL = PassMemory("kernel", per_voxel=4.0, per_plane=64.0, fixed=2 << 20)
#: The same kernel on a block of a split plane, with the exactness check of its
#: components (:mod:`bigseg.chunked.exact`), which holds the plane's distances, peaks
#: and bounds too: about 104 bytes per voxel of the grown plane.
STITCHED_KERNEL = PassMemory(
    "stitched", per_voxel=4.0, per_plane=104.0, fixed=2 << 20, split_only=True
)


def any_dtype(dtype: Any) -> bool:
    """Return True: the statistic of a time point depends on its own data, whatever the dtype."""
    return True


def same_pixels(px: PixelParams) -> PixelParams:
    """Return ``px``: the kernel sees the parameters' own pixel sizes."""
    return px


def plane_kernel_memory(params: Any, scale: Any, halo: int) -> tuple[PassMemory, ...]:
    """Return the memory model of a method without a pre-pass: its plane kernel and halo."""
    reach = (0, int(halo), int(halo))
    return (
        dataclasses.replace(PLANE_KERNEL, reach=reach),
        dataclasses.replace(STITCHED_KERNEL, reach=reach),
    )


def no_prepass(
    data: da.Array, thresholds: da.Array, params: Any, scale: tuple[float, float, float]
) -> tuple[da.Array, None]:
    """No pre-pass: the kernel segments the stack itself and measures it."""
    return data, None


@dataclass(frozen=True)
class Method:
    """A segmentation method: everything :func:`bigseg.segment` and :func:`bigseg.run` need.

    Attributes
    ----------
    name : str
        The method's name, also the name of its parameter preset (``Params.preset``).
    statistic : callable
        ``statistic(stack, params) -> xarray.DataArray``: the global statistic (threshold,
        floor), lazy, one per time point (dims ``("t",)``, or 0-d for a 3D stack).
    kernel : callable
        ``kernel(block, thresholds, px) -> labels``: plane labels (int32, 1..n per
        plane) of a ``(t, z, y, x)`` NumPy block of whole planes, or of a block grown by
        :attr:`halo` pixels; ``thresholds`` has shape ``(t, 1, 1, 1)``.
    planar_kernel : callable, optional
        ``planar_kernel(params, scale) -> kernel``: the kernel to use instead of
        :attr:`kernel` on a 2D image (one plane per time point), same signature.
    pixels : callable
        ``pixels(px) -> PixelParams``: the sizes the kernel sees, from the parameters'
        (:meth:`bigseg.Params.in_pixels`).
    prepass : callable
        ``prepass(data, thresholds, params, scale) -> (source, image)``: what the kernel
        segments (lazy, chunked like ``data``), and the intensities to measure (None:
        ``source`` itself).  Any neighbourhood work here must be exact in every block.
    halo : callable
        ``halo(px) -> int``: pixels of context per side that make the kernel's result on
        y/x blocks that of whole planes (``px`` from :attr:`pixels`).
    foreground : callable, optional
        ``foreground(block, thresholds, px) -> bool block``: the mask that :attr:`kernel`
        splits plane by plane with :func:`bigseg.kernels.watershed.split_plane` and
        :func:`~bigseg.kernels.watershed.filter_sizes` (the kernel's labels, exactly).
        Given, blocks of split planes are segmented through it and every foreground
        component is checked for exactness (:mod:`bigseg.chunked.stitch`); None (an
        opaque kernel): a conservative proxy reports clusters near the halo's edge.
    components : callable, optional
        ``components(block, thresholds, px) -> bool block``: for a kernel that decides
        everything within one connected component of an exact mask (markers, flooding,
        sizes), that mask.  Given (and no :attr:`foreground`), every component of a
        split plane's block is checked with :func:`bigseg.chunked.exact.unproven_local`.
    memory : callable
        ``memory(params, scale, halo) -> tuple of PassMemory``: the memory model of every
        pass over work blocks (statistic, pre-pass, kernel), each with its reach; ``halo``
        is :attr:`halo` in pixels.  The work blocks are planned from it
        (:func:`bigseg.chunked.plan.work_chunks`).
    split_planes : bool
        Whether planes split into y/x chunks can be segmented block by block (with
        :attr:`halo`); otherwise they are segmented as whole planes.
    neck_splitting : bool
        Linking splits chains of nuclei stacked in z at intensity necks
        (``Params.neck_ratio``).
    drop_fragments : bool
        Linking drops nuclei smaller than a sphere of ``Params.min_radius``.
    preset : mapping
        The method's parameter preset: ``Params`` fields that differ from the defaults.
    statistic_by_t : callable
        ``statistic_by_t(dtype) -> bool``: whether, for data of this dtype, each time
        point's statistic depends on that time point's data alone (then a long series
        is computed in batches of time points, each from its own data).
    signal : callable, optional
        ``signal(data, params, scale) -> dask array``: what both the statistic and the
        pre-pass compute from the stack first (the default method's smoothed signal above
        the background), chunked like ``data``, every voxel the whole array's.  Given
        (with :attr:`statistic_of_signal` and :attr:`prepass_of_signal`), a run computes
        it once and keeps it in its scratch directory for both passes.
    statistic_of_signal : callable, optional
        ``statistic_of_signal(signal, data, params, scale) -> dask array``:
        :attr:`statistic`'s values (shape ``(t,)``) from :attr:`signal`'s and the data's
        (read in the blocks the signal was computed from, where it is computed with it).
    prepass_of_signal : callable, optional
        ``prepass_of_signal(signal, data, thresholds, params, scale) -> (source, image)``:
        :attr:`prepass`'s result from :attr:`signal`'s.
    peaks : bool
        :attr:`prepass`'s ``source`` is a signal above the background whose largest value
        in each region a run measures (:data:`bigseg.tables.PEAK`), for the fragment filter
        to weigh small pieces by it (:func:`bigseg.cluster.bright_pieces`).
    """

    name: str
    statistic: Callable[..., Any]
    kernel: Callable[..., Any]
    planar_kernel: Callable[..., Callable[..., Any]] | None = None
    pixels: Callable[[PixelParams], PixelParams] = same_pixels
    prepass: Callable[..., tuple[da.Array, da.Array | None]] = no_prepass
    halo: Callable[[PixelParams], int] = halo_of
    foreground: Callable[..., Any] | None = None
    components: Callable[..., Any] | None = None
    memory: Callable[..., tuple[PassMemory, ...]] = plane_kernel_memory
    split_planes: bool = True
    neck_splitting: bool = False
    drop_fragments: bool = False
    preset: Mapping[str, Any] = field(default_factory=dict)
    statistic_by_t: Callable[[Any], bool] = any_dtype
    signal: Callable[..., da.Array] | None = None
    statistic_of_signal: Callable[..., da.Array] | None = None
    prepass_of_signal: Callable[..., tuple[da.Array, da.Array | None]] | None = None
    peaks: bool = False

    def kernel_for(self, params: Any, scale: Sequence[float], planes: int) -> Callable[..., Any]:
        """Return the plane kernel for a stack of ``planes`` planes per time point (1: 2D)."""
        if planes == 1 and self.planar_kernel is not None:
            return self.planar_kernel(params, scale)
        return self.kernel

    def link_options(self, params: Any) -> dict[str, Any]:
        """Keyword arguments of :func:`bigseg.cluster.link_pairs` and neck splitting."""
        return {
            "link_distance": params.link_distance,
            "max_gap": params.max_gap,
            "neck_ratio": params.neck_ratio if self.neck_splitting else None,
        }
