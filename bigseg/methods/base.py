"""What a segmentation method declares: its statistic, kernel, halo, pre-pass and linking."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import dask.array as da

from ..chunked.stitch import halo_of
from ..params import PixelParams

__all__ = ["Method", "any_dtype", "no_prepass", "same_pixels"]


def any_dtype(dtype: Any) -> bool:
    """Return True: the statistic of a time point depends on its own data, whatever the dtype."""
    return True


def same_pixels(px: PixelParams) -> PixelParams:
    """Return ``px``: the kernel sees the parameters' own pixel sizes."""
    return px


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
    """

    name: str
    statistic: Callable[..., Any]
    kernel: Callable[..., Any]
    pixels: Callable[[PixelParams], PixelParams] = same_pixels
    prepass: Callable[..., tuple[da.Array, da.Array | None]] = no_prepass
    halo: Callable[[PixelParams], int] = halo_of
    split_planes: bool = True
    neck_splitting: bool = False
    drop_fragments: bool = False
    preset: Mapping[str, Any] = field(default_factory=dict)
    statistic_by_t: Callable[[Any], bool] = any_dtype

    def link_options(self, params: Any) -> dict[str, Any]:
        """Keyword arguments of :func:`bigseg.cluster.link_pairs` and neck splitting."""
        return {
            "link_distance": params.link_distance,
            "max_gap": params.max_gap,
            "neck_ratio": params.neck_ratio if self.neck_splitting else None,
        }
