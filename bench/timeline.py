"""Where a run's threads wait: the task stream of one ``run()`` on a local cluster (issue 15).

Run from the repository root::

    .venv/bin/python bench/timeline.py STACK [--threads 2] [--preset seed]

One worker in this process with ``--threads`` threads (as ``bigseg segment`` starts it),
``run()`` on ``STACK`` into a temporary directory, and dask's task stream of it.  Prints
``run.json``'s stage timings, the threads' busy seconds against the seconds they had, one
digit per 100 ms for how busy they were (0: idle, 9: all busy; a task waiting on Zarr's
reads or writes counts as busy), and each kind of task (its key's name): how many, their
seconds, the longest, and when the first began and the last ended (s from ``run()``'s
call).  The interpreter's start and imports come before it and are not in the stream.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BIN = 0.1  # seconds per digit of the busy line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="an input bigseg opens (e.g. W/stack48.ome.zarr)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--preset", default="default")
    args = parser.parse_args()

    import dask
    from distributed import Client, LocalCluster, get_task_stream

    import bigseg
    from bigseg.pipeline.runner import run
    from bigseg.pipeline.sink import LOCAL_CLUSTER_CONFIG

    with (
        dask.config.set(LOCAL_CLUSTER_CONFIG),
        LocalCluster(
            n_workers=1, threads_per_worker=args.threads, processes=False, host="127.0.0.1",
            protocol="tcp://", dashboard_address="127.0.0.1:0",
        ) as cluster,
        Client(cluster) as client,
        tempfile.TemporaryDirectory() as tmp,
    ):  # fmt: skip
        out = Path(tmp) / "out"
        start = time.time()
        with get_task_stream(client) as stream:
            run(args.stack, out, client=client, params=bigseg.Params(preset=args.preset))
        wall = time.time() - start
        timings = json.loads((out / "run.json").read_text())["timings_s"]
    spans = [
        (s["start"] - start, s["stop"] - start, _name(task["key"]))
        for task in stream.data
        for s in task["startstops"]
        if s["action"] == "compute"
    ]
    print("run.json timings_s:", timings)
    busy = sum(b - a for a, b, _ in spans)
    print(f"busy {busy:.2f} thread-s of {wall * args.threads:.2f} ({wall:.2f} s x {args.threads})")
    bins = [0.0] * (int(wall / BIN) + 1)
    for a, b, _ in spans:
        for i in range(int(a / BIN), min(int(b / BIN), len(bins) - 1) + 1):
            bins[i] += max(min(b, (i + 1) * BIN) - max(a, i * BIN), 0.0)
    print("busy per 100 ms:", "".join(str(min(9, int(9 * v / (BIN * args.threads)))) for v in bins))
    kinds: dict[str, list] = collections.defaultdict(lambda: [0, 0.0, 0.0, float("inf"), 0.0])
    for a, b, name in spans:
        k = kinds[name]
        k[0], k[1], k[2] = k[0] + 1, k[1] + b - a, max(k[2], b - a)
        k[3], k[4] = min(k[3], a), max(k[4], b)
    print(f"{'task':40s} {'n':>4s} {'s':>7s} {'longest':>8s} {'from':>6s} {'to':>6s}")
    for name, (n, total, longest, first, last) in sorted(kinds.items(), key=lambda kv: kv[1][3]):
        print(f"{name:40s} {n:4d} {total:7.3f} {longest:8.3f} {first:6.2f} {last:6.2f}")


def _name(key) -> str:
    """A task key's name without its token (dask's ``key_split``)."""
    from dask.utils import key_split

    return key_split(key)[:40]


if __name__ == "__main__":
    main()
