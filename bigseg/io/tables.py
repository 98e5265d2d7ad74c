"""Reading bigseg's tables back (Parquet datasets or CSV)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._errors import InputError


def read_table(path: str | os.PathLike) -> Any:
    """Read a bigseg table (Parquet or CSV) into pandas."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise InputError(f"Table {os.fspath(path)!r} does not exist; check the path.")
    if p.suffix == ".parquet" or p.is_dir():
        return pd.read_parquet(p)
    if p.suffix in (".csv", ".txt"):
        return pd.read_csv(p)
    raise InputError(f"Table {os.fspath(path)!r} must be .parquet or .csv.")
