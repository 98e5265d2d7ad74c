"""Reading bigseg's tables back (Parquet datasets or CSV)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._errors import InputError


def read_table(path: str | os.PathLike) -> Any:
    """Read a bigseg table (Parquet or CSV, or a run's output directory: its nuclei) into pandas."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise InputError(f"Table {os.fspath(path)!r} does not exist; check the path.")
    if p.is_dir() and (p / "run.json").exists() and (p / "nuclei.parquet").exists():
        p = p / "nuclei.parquet"  # a run's output directory: its nuclei
    if p.suffix == ".parquet" or p.is_dir():
        try:
            return pd.read_parquet(p)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(
                f"Could not read {os.fspath(path)!r} as a Parquet table ({exc}); give a "
                ".parquet or .csv table, or a bigseg output directory."
            ) from exc
    if p.suffix in (".csv", ".txt"):
        return pd.read_csv(p)
    raise InputError(f"Table {os.fspath(path)!r} must be .parquet or .csv.")
