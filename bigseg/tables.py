"""Column schemas of bigseg's tables, and their empty (correctly typed) forms."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "empty_table",
    "NUCLEUS_COLUMNS",
    "DETECTION_COLUMNS",
    "PEAK",
    "SUM_DTYPES",
    "detections_from_sums",
    "detections_table",
    "empty_detections",
    "empty_sums",
    "sums_frame",
]

#: Columns of the detections table, in order, with their dtypes.
DETECTION_COLUMNS: dict[str, str] = {
    "t": "float64",
    "z": "float64",
    "y": "float64",
    "x": "float64",
    "z_um": "float64",
    "y_um": "float64",
    "x_um": "float64",
    "label": "int32",
    "area_px": "int64",
    "area_um2": "float64",
    "radius_um": "float64",
    "intensity_sum": "float64",
    "intensity_mean": "float64",
}


#: Private column of the detections a run links (never in the tables it writes): each
#: region's largest value of the method's signal above the background where foreground
#: (the default method's pre-pass, :func:`bigseg.methods.default.split_signal`), which the
#: fragment filter (:func:`bigseg.cluster.drop_small`) compares across a time point.
PEAK = "signal_peak"


#: Columns of the nuclei table, in order.
NUCLEUS_COLUMNS: dict[str, str] = {
    "nucleus": "int64",
    "t": "int64",
    "z": "float64",
    "y": "float64",
    "x": "float64",
    "z_um": "float64",
    "y_um": "float64",
    "x_um": "float64",
    "volume_um3": "float64",
    "radius_um": "float64",
    "intensity_sum": "float64",
    "intensity_mean": "float64",
    "n_planes": "int64",
    "z_first": "int64",
    "z_last": "int64",
}


def empty_table(dtypes: dict[str, str]) -> pd.DataFrame:
    """Return an empty table with the columns and dtypes of a schema."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in dtypes.items()})


def empty_detections() -> pd.DataFrame:
    """Return an empty detections table with the right columns and dtypes."""
    return empty_table(DETECTION_COLUMNS)


#: Columns of per-region partial sums (one row per label per plane per block), with dtypes:
#: ``t, z, label`` (stack indices) and the sums of :data:`bigseg.kernels.regions.SUM_COLUMNS`.
SUM_DTYPES: dict[str, str] = {
    "t": "int64",
    "z": "int64",
    "label": "int64",
    "area_px": "int64",
    "sum_i": "float64",
    "sum_y": "float64",
    "sum_x": "float64",
    "sum_yi": "float64",
    "sum_xi": "float64",
}


def empty_sums() -> pd.DataFrame:
    """Return an empty partial-sums table with the right dtypes."""
    return empty_table(SUM_DTYPES)


def sums_frame(sums: dict[str, np.ndarray]) -> pd.DataFrame:
    """Partial-sums table (:data:`SUM_DTYPES`) of :func:`bigseg.kernels.regions.block_sums`.

    With the blocks' peaks (``peak``), a :data:`PEAK` column too (the stitching takes their
    largest, where the sums are added).
    """
    empty = len(sums["label"]) == 0
    frame = empty_sums() if empty else pd.DataFrame({c: sums[c] for c in SUM_DTYPES})
    if "peak" in sums:
        frame[PEAK] = np.asarray(sums["peak"], np.float64)
    return frame


def detections_table(
    *,
    t: float | np.ndarray,
    z: float | np.ndarray,
    y: np.ndarray,
    x: np.ndarray,
    label: np.ndarray,
    area: np.ndarray,
    intensity_sum: np.ndarray,
    scale: tuple[float, float, float],
    translation: tuple[float, float, float],
) -> pd.DataFrame:
    """Build detections rows (:data:`DETECTION_COLUMNS`) from per-region values.

    Positions are in stack index units; µm positions, areas and radii follow
    from ``scale`` and ``translation`` (``(z, y, x)``, µm).
    """
    sz, sy, sx = scale
    area = np.asarray(area, np.int64)
    intensity_sum = np.asarray(intensity_sum, np.float64)
    z = np.broadcast_to(np.asarray(z, np.float64), area.shape)
    table = pd.DataFrame(
        {
            "t": np.broadcast_to(np.asarray(t, np.float64), area.shape),
            "z": z,
            "y": y,
            "x": x,
            "z_um": translation[0] + z * sz,
            "y_um": translation[1] + np.asarray(y) * sy,
            "x_um": translation[2] + np.asarray(x) * sx,
            "label": np.asarray(label, np.int32),
            "area_px": area,
            "area_um2": area * (sy * sx),
            "radius_um": np.sqrt(area / np.pi) * np.sqrt(sy * sx),
            "intensity_sum": intensity_sum,
            "intensity_mean": intensity_sum / area,
        }
    )
    return table.astype(DETECTION_COLUMNS)


def detections_from_sums(
    sums: pd.DataFrame,
    *,
    scale: tuple[float, float, float],
    translation: tuple[float, float, float],
) -> pd.DataFrame:
    """Turn summed partial sums (one row per region) into the detections table."""
    if len(sums) == 0:
        empty = empty_detections()
        return empty.assign(**{PEAK: pd.Series(dtype="float64")}) if PEAK in sums.columns else empty
    area = sums["area_px"].to_numpy(np.int64)
    s_i = sums["sum_i"].to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cy = np.where(s_i > 0, sums["sum_yi"] / s_i, sums["sum_y"] / area)
        cx = np.where(s_i > 0, sums["sum_xi"] / s_i, sums["sum_x"] / area)
    table = detections_table(
        t=sums["t"].to_numpy(np.float64),
        z=sums["z"].to_numpy(np.float64),
        y=cy,
        x=cx,
        label=sums["label"].to_numpy(),
        area=area,
        intensity_sum=s_i,
        scale=scale,
        translation=translation,
    )
    if PEAK in sums.columns:
        table[PEAK] = sums[PEAK].to_numpy(np.float64)
    return table
