"""Writers of the Cell Tracking Challenge's format: a lineage text file and one mask per frame.

A CTC result folder holds ``mask000.tif``, ``mask001.tif`` ... (one label image per
frame, 2D or 3D, labelled by track) and ``res_track.txt`` (one line ``L B E P`` per
track: label, first frame, last frame, parent label or 0).  Ground truth keeps the same
in ``TRA/man_track.txt`` and ``TRA/man_track000.tif`` ...
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .._errors import InputError

__all__ = ["ctc_dtype", "frame_name", "write_lineage", "write_mask"]


def frame_name(prefix: str, frame: int, n_frames: int) -> str:
    """File name of one frame's mask: ``mask000.tif`` (4 digits past 1 000 frames)."""
    digits = max(3, len(str(max(int(n_frames) - 1, 0))))
    return f"{prefix}{int(frame):0{digits}d}.tif"


def ctc_dtype(max_label: int) -> np.dtype:
    """uint16 (what the CTC asks for) up to 65 535 labels, else uint32."""
    return np.dtype(np.uint16 if int(max_label) <= np.iinfo(np.uint16).max else np.uint32)


def write_lineage(rows: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write ``res_track.txt`` / ``man_track.txt``: one ``L B E P`` line per track."""
    table = rows[["L", "B", "E", "P"]].to_numpy(np.int64)
    Path(path).write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in table))


def write_mask(labels: np.ndarray, path: str | os.PathLike, dtype: np.dtype) -> None:
    """Write one frame's label image as a (2D or 3D) TIFF of ``dtype``."""
    import tifffile

    labels = np.asarray(labels)
    if labels.size and labels.max() > np.iinfo(dtype).max:
        raise InputError(
            f"Label {int(labels.max())} does not fit a {dtype} CTC mask; this is a bug: "
            "the dtype comes from the largest track label."
        )
    if labels.ndim == 3 and labels.shape[0] == 1:
        labels = labels[0]  # a 2D image
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    tifffile.imwrite(tmp, labels.astype(dtype), compression="zlib")
    os.replace(tmp, path)
