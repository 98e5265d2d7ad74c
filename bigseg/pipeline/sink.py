"""The one place a run computes: each pass, on the client when there is one.

A pass is one computation (:func:`compute`), or, for very many blocks, a sequence of
batches (:meth:`Sink.batches`): each batch's graph is built only when it is about to be
submitted and dropped, with its futures, once its results are gathered, so neither the
client nor the scheduler ever holds more than :data:`IN_FLIGHT` batches.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

import dask
import numpy as np

__all__ = [
    "BLOCKS_PER_THREAD",
    "IN_FLIGHT",
    "LOCAL_CLUSTER_CONFIG",
    "Sink",
    "block_boxes",
    "box_region",
    "compute",
    "culled",
    "dashboard_text",
]

#: Batches submitted to a distributed client at once: the next one is queued while one
#: runs, so the workers never wait for the client between batches.
IN_FLIGHT = 2

#: A batch holds at least this many blocks per thread of the cluster, so that a large
#: cluster is kept busy by one batch.
BLOCKS_PER_THREAD = 8

#: dask settings of the local clusters bigseg starts (``dask.config.set`` around them; a
#: nanny hands them on to its worker process).  Workers never pause: bigseg's tasks fit
#: the planned budget and hold nothing to spill, so a worker paused by memory its
#: allocator keeps would wait forever (above 95 % of its limit the nanny restarts it).
#: No statistical profiler: it samples each worker's stack every 10 ms and keeps one
#: profile per second for the last 1 000 s (``distributed.admin.low-level-log-length``),
#: plus the source lines it names -- a worker's memory then grows with the run's
#: duration for a quarter of an hour (tracking 300 time points of 20 000 nuclei: +40 MiB
#: of Python objects per worker, ``bench/tracking.py``).
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.memory.pause": False,
    "distributed.worker.profile.enabled": False,
}


def dashboard_text(link: str) -> str:
    """Say where dask's dashboard is, or, without bokeh, what it needs.

    Without bokeh the scheduler still serves ``link``, but its page only asks for
    bokeh: a run names the package to install instead of a page with no dashboard.
    """
    if importlib.util.find_spec("bokeh") is None:
        return "dask's dashboard needs bokeh (pip install 'bokeh>=3.1')"
    return f"dashboard {link}"


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


class Sink:
    """Compute the passes of one run on ``client`` (None: the current dask scheduler).

    ``sink(items, label)`` computes one pass (a delayed object or a tuple of them, see
    :func:`compute`); :meth:`batches` computes one pass as a sequence of batches.
    """

    def __init__(self, client: Any = None, progress: Any = False):
        self.client = client
        self.progress = progress

    def __call__(self, items: Any, label: str) -> Any:
        """Compute one pass (:func:`compute`)."""
        return compute(items, self.client, self.progress, label)

    def batch_blocks(self, minimum: int) -> int:
        """Blocks per batch: ``minimum``, or :data:`BLOCKS_PER_THREAD` per thread of the cluster."""
        if self.client is None:
            return int(minimum)
        threads = sum(self.client.nthreads().values())
        return max(int(minimum), BLOCKS_PER_THREAD * int(threads))

    def batches(
        self, batches: Iterable[tuple], label: str, *, in_flight: int = IN_FLIGHT
    ) -> Iterator[tuple]:
        """Compute each batch (a tuple of delayed objects) in turn; yield their results in order.

        ``batches`` is consumed lazily: a generator builds each batch's graph only when
        it is submitted.  On a distributed client without a progress display,
        ``in_flight`` batches are submitted at once (1: each batch once the one before
        has finished, for batches that read what the one before wrote); each batch's
        futures are released as soon as its results are gathered.
        """
        if self.client is None or self.progress:
            for items in batches:
                yield compute(items, self.client, self.progress, label)
            return
        pending: deque = deque()
        for items in batches:
            pending.append(self.client.compute(list(items), optimize_graph=False))
            if len(pending) >= in_flight:
                yield tuple(self.client.gather(pending.popleft()))
        while pending:
            yield tuple(self.client.gather(pending.popleft()))


def _distributed_progress(futures: Any) -> None:
    from distributed import progress

    progress(futures, notebook=False)
    print(file=sys.stdout, flush=True)


def block_boxes(numblocks: tuple[int, ...], size: int) -> list[tuple[slice, ...]]:
    """Cut a grid of blocks into boxes of at most ``size`` blocks (at least one), in order.

    Trailing axes are kept whole as far as they fit; the first axis that does not fit
    whole is cut into runs of consecutive blocks; axes before it go one block at a
    time.  Returns the boxes as slices of block indices, in C order.
    """
    k = len(numblocks)
    inner = 1
    while k > 0 and inner * numblocks[k - 1] <= size:
        k -= 1
        inner *= numblocks[k]
    whole = tuple(slice(0, int(n)) for n in numblocks[k:])
    if k == 0:
        return [whole]
    step = max(1, size // inner)
    return [
        (*(slice(int(i), int(i) + 1) for i in lead), slice(a, min(a + step, numblocks[k - 1])))
        + whole
        for lead in np.ndindex(*numblocks[: k - 1])
        for a in range(0, int(numblocks[k - 1]), step)
    ]


def box_region(chunks: tuple[tuple[int, ...], ...], box: tuple[slice, ...]) -> tuple[slice, ...]:
    """Return the voxels of a box of blocks of ``chunks`` (:func:`block_boxes`)."""
    edges = [np.cumsum((0, *c)) for c in chunks]
    return tuple(slice(int(e[b.start]), int(e[b.stop])) for e, b in zip(edges, box))


def culled(data: Any) -> Any:
    """Return the dask array ``data`` with a graph of its own blocks' tasks only.

    A slice of an array keeps the graph of the whole array (every layer above it);
    computed as a batch, that graph would be sent whole and materialised by the
    scheduler for every batch.
    """
    import dask.array as da
    from dask.array.utils import meta_from_array
    from dask.core import flatten

    graph = dict(data.__dask_graph__().cull(set(flatten(data.__dask_keys__()))))
    return da.Array(graph, data.name, data.chunks, meta=meta_from_array(data))
