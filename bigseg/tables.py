"""Column schemas of bigseg's tables, and their empty (correctly typed) forms."""

from __future__ import annotations

import pandas as pd

__all__ = ["DETECTION_COLUMNS", "empty_detections"]

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


def empty_detections() -> pd.DataFrame:
    """Return an empty detections table with the right columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=d) for c, d in DETECTION_COLUMNS.items()})
