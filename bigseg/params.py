"""Segmentation parameters in physical units, and the named presets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

from ._errors import InputError

__all__ = ["PRESETS", "Params", "PixelParams", "TrackParams", "add_preset"]

#: Names of the presets, one per segmentation method (:mod:`bigseg.methods`).
PRESET_NAMES: list[str] = ["default", "seed"]


@dataclass(frozen=True)
class PixelParams:
    """Parameters converted to pixels of one stack (what the kernels take)."""

    smooth_radius: int
    min_distance: int
    min_radius: float
    max_radius: float


@dataclass(frozen=True)
class Params:
    """Segmentation parameters; sizes are in µm.

    Attributes
    ----------
    preset : str
        ``"seed"`` (the 2014 scikit-image recipe, exactly) or ``"default"``.
    smooth_radius : float
        Radius of the median and contrast-enhancement disks, µm.
    min_radius, max_radius : float
        Per-plane regions are kept when ``min_radius < sqrt(area/pi) <
        max_radius`` (µm).  Markers are at least ``2 * min_radius`` apart.
    link_distance : float
        Detections in nearby planes belong to one nucleus when their centres
        are closer than ``link_distance`` times the larger of their radii.
    max_gap : int
        Planes without a detection that a nucleus may skip.
    local_fraction : float
        ``default`` preset: a voxel is foreground when above the global floor
        and above this fraction of the way from the floor to the brightest
        smoothed value within ``local_radius``.
    local_radius : float or None
        ``default`` preset: radius (µm) of that neighbourhood; None means
        ``min_radius``.
    neck_ratio : float or None
        ``default`` preset: a linked nucleus is split in two at a plane whose
        intensity is below this fraction of the brightest planes on both
        sides (nuclei stacked in z), and where the area has a neck of
        ``bigseg.cluster.AREA_NECK_RATIO``; None (``seed``) never splits.
    """

    preset: str = "default"
    smooth_radius: float = 3.55
    min_radius: float = 2.84
    max_radius: float = 14.2
    link_distance: float = 0.5
    max_gap: int = 1
    local_fraction: float = 0.5
    local_radius: float | None = None
    neck_ratio: float | None = 0.7

    def __post_init__(self) -> None:
        if self.preset not in PRESET_NAMES:
            raise InputError(
                f"Unknown preset {self.preset!r}; choose one of {', '.join(PRESET_NAMES)}."
            )
        for name in ("smooth_radius", "min_radius", "max_radius", "link_distance"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(f"{name}= must be a positive number of µm, not {value!r}.")
        if self.min_radius >= self.max_radius:
            raise InputError(
                f"min_radius={self.min_radius} µm must be smaller than "
                f"max_radius={self.max_radius} µm."
            )
        for name in ("local_fraction", "neck_ratio"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and 0 <= value < 1):
                raise InputError(f"{name} must be a number from 0 to below 1, not {value!r}.")
        if self.local_radius is not None and not (
            isinstance(self.local_radius, int | float)
            and math.isfinite(self.local_radius)
            and self.local_radius > 0
        ):
            raise InputError(
                f"local_radius must be a positive number of µm or None, not {self.local_radius!r}."
            )
        if not (isinstance(self.max_gap, int) and self.max_gap >= 0):
            raise InputError(
                f"max_gap must be a whole number of planes >= 0, not {self.max_gap!r}."
            )

    @classmethod
    def from_preset(cls, preset: str = "default", **overrides: float | None) -> Params:
        """Return a preset's parameters with any non-None ``overrides`` applied.

        Parameters
        ----------
        preset : str
            ``"default"`` or ``"seed"``.
        **overrides : float or None
            Fields to change (e.g. ``min_radius=3.0``, in µm); ``None`` keeps
            the preset's value, so CLI options can be passed straight through.

        Returns
        -------
        Params
        """
        if preset not in PRESET_NAMES:
            raise InputError(f"Unknown preset {preset!r}; choose one of {', '.join(PRESET_NAMES)}.")
        given = {k: v for k, v in overrides.items() if v is not None}
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(given) - fields
        if unknown:
            raise TypeError(f"Unknown parameter(s) {sorted(unknown)}; known: {sorted(fields)}.")
        return dataclasses.replace(PRESETS[preset], **given)

    def in_pixels(self, scale: Sequence[float], *, scale_source: str | None = None) -> PixelParams:
        """Convert to pixels with the stack's ``(z, y, x)`` voxel size in µm.

        Per-plane sizes use the y/x pixel size (their mean when they differ).

        Parameters
        ----------
        scale : sequence of 3 floats
            Voxel size ``(z, y, x)`` in µm.
        scale_source : str, optional
            Where ``scale`` came from, a stack's ``attrs["scale_source"]``
            (``"option"``, ``"metadata:<where>"`` or ``"array"``), named in errors.

        Returns
        -------
        PixelParams
            Filter radius and marker distance in whole pixels, radii in pixels.

        Raises
        ------
        InputError
            When the smoothing radius is under one pixel; the message names
            the pixel size and where it came from, and the smoothing radius
            only when it is not the preset's.
        """
        pixel = (float(scale[1]) + float(scale[2])) / 2
        smooth = round(self.smooth_radius / pixel)
        min_r = self.min_radius / pixel
        if smooth < 1:
            where = f", from {_source_text(scale_source)}" if scale_source else ""
            sizes = " ".join(f"{float(v):g}" for v in scale)
            if self.smooth_radius == PRESETS[self.preset].smooth_radius:
                raise InputError(
                    f"The pixel size {pixel:g} µm (voxel size {sizes} µm, z y x{where}) is "
                    f"larger than the {self.preset} preset's smoothing radius "
                    f"({self.smooth_radius:g} µm): check that the voxel size is in µm "
                    f"(not nm) and in Z Y X order."
                )
            raise InputError(
                f"smooth_radius={self.smooth_radius:g} µm is under one pixel "
                f"({pixel:g} µm, from the voxel size {sizes} µm{where}); give at least "
                f"{pixel:g} µm, or check the voxel size."
            )
        return PixelParams(
            smooth_radius=int(smooth),
            min_distance=max(1, round(2 * min_r)),
            min_radius=round(min_r, 9),
            max_radius=round(self.max_radius / pixel, 9),
        )

    def to_dict(self) -> dict:
        """Plain dict for run records."""
        return dataclasses.asdict(self)


def _source_text(scale_source: str) -> str:
    """Name a stack's ``attrs["scale_source"]`` in words for messages."""
    if scale_source == "option":
        return "scale="
    if scale_source.startswith("metadata:"):
        return f"the file's metadata, {scale_source.removeprefix('metadata:')}"
    if scale_source == "array":
        return "scale="
    return scale_source


# Sizes in µm are the recipe's pixel sizes at its 0.71 µm pixels: 5, 4 and 20 px.
PRESETS: dict[str, Params] = {
    "default": Params(preset="default"),
    "seed": Params(preset="seed", neck_ratio=None),
}


def add_preset(name: str, **overrides: float | None) -> None:
    """Add the preset of a segmentation method: the defaults with ``overrides`` (once per name).

    Called by :func:`bigseg.methods.register`; the built-in presets are defined above.
    """
    if name not in PRESET_NAMES:
        PRESET_NAMES.append(name)
    if name not in PRESETS:
        PRESETS[name] = Params(preset=name, **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TrackParams:
    """Tracking parameters; distances in µm.

    Attributes
    ----------
    search_radius : float
        Farthest a nucleus may move between consecutive time points, µm, beyond its
        own radius: a daughter lies about her radius to one side of where her mother
        was, so candidates are sought within this plus the nucleus's radius (a gap over
        one missing time point may span twice the search radius).  A link's cost counts
        the whole distance, ``(d / search_radius)²``.
    gap_closing : bool
        Close gaps of one missing time point.
    divisions : bool
        Detect divisions (one mother, two daughters).
    volume_weight : float
        Weight of the squared log2 change of volume (area in 2D images) in a link's cost.
    intensity_weight : float
        Weight of the squared log2 change of mean intensity.
    gap_cost : float
        Extra cost of closing a gap.
    division_cost : float
        Extra cost of a division.
    """

    search_radius: float = 8.0
    gap_closing: bool = True
    divisions: bool = True
    volume_weight: float = 0.5
    intensity_weight: float = 0.25
    gap_cost: float = 0.5
    division_cost: float = 0.25

    def __post_init__(self) -> None:
        if not math.isfinite(self.search_radius) or self.search_radius <= 0:
            raise InputError(
                f"search_radius={self.search_radius} must be a positive distance in µm "
                "(how far a nucleus moves between time points)."
            )
        for name in ("volume_weight", "intensity_weight", "gap_cost", "division_cost"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise InputError(f"{name}={value} must be a finite number >= 0.")

    def to_dict(self) -> dict:
        """Plain dict, for ``run.json``."""
        return dataclasses.asdict(self)
