"""Checks that belong to a run rather than to one stage: non-finite data, output errors."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np

from .._errors import InputError

#: errno values that mean "the output cannot be written here", not a bug.
OUTPUT_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


def nonfinite_count(stack: Any) -> da.Array | None:
    """Count NaN or infinite voxels of a float stack, as a lazy 0-d dask array.

    Returns None for integer stacks (they cannot hold NaN).  Meant to be
    computed in the same pass as the threshold, so the data is read once.
    """
    data = stack.data
    if np.dtype(data.dtype).kind != "f":
        return None
    return (~da.isfinite(data)).sum()


def check_finite(count: Any, source: str, dtype: Any) -> None:
    """Refuse a float stack with NaN or infinite voxels (``count`` from :func:`nonfinite_count`)."""
    if count is not None and int(count) > 0:
        raise InputError(
            f"Input {source!r} ({dtype}) has {int(count)} NaN or infinite voxels; replace them "
            "with a finite value (e.g. numpy.nan_to_num(image, nan=0, posinf=0)) and save it "
            "again."
        )


@contextlib.contextmanager
def output_errors(out: Path, source: str) -> Iterator[None]:
    """Turn "disk full", "read-only" and "permission denied" while writing into one sentence."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRNOS:
            raise
        where = exc.filename or str(out)
        raise InputError(
            f"Could not write the output {str(out)!r} ({exc.strerror} at {str(where)!r}); free "
            f"space or choose a writable location. The input {source!r} was not changed."
        ) from exc


def dask_setup(worker: Any) -> None:
    """Worker preload (``preload=["bigseg.pipeline.safety"]``): leave Ctrl-C to the client.

    A terminal's Ctrl-C reaches every process of the group; the ``bigseg``
    command handles it and closes the cluster, so worker processes ignore it
    instead of each printing a KeyboardInterrupt traceback.
    """
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)
