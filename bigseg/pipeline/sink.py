"""The one place a run computes: each pass, on the client when there is one."""

from __future__ import annotations

import sys
from typing import Any

import dask


def compute(collection: Any, client: Any, progress: Any, label: str) -> Any:
    """Compute one pass, on the client when there is one, with optional progress."""
    items = collection if isinstance(collection, tuple) else (collection,)
    if progress and not callable(progress):
        print(f"{label} pass:", file=sys.stdout, flush=True)
    if client is not None:
        # Unoptimised: array-graph fusion would rename the segment tasks that the
        # delayed measure tasks share, and every plane would be segmented twice.
        futures = client.compute(list(items), optimize_graph=False)
        if progress:
            show = progress if callable(progress) else _distributed_progress
            show(futures)
        return tuple(client.gather(futures))
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return dask.compute(*items, optimize_graph=False)
    return dask.compute(*items, optimize_graph=False)


def _distributed_progress(futures: Any) -> None:
    from distributed import progress

    progress(futures, notebook=False)
    print(file=sys.stdout, flush=True)
