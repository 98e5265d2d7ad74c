"""Measured constants for the paper estimate of a very large run (docs/scale.md).

    python bench/paper.py

1. Tasks per block of each data pass, counted in bigseg's own graphs (nothing computed), for
   whole planes and for planes split into y/x blocks.
2. The scheduler's memory per task and its time per task: a ``LocalCluster`` (one worker
   process, one thread; the scheduler runs in this process, with the client) is sent ``N``
   small tasks that wait on one sleeping task (this process's RSS is read while they wait:
   scheduler state and the client's futures), then runs ``N`` trivial tasks; each for two
   sizes, so that the fixed costs cancel (the slope between the two is printed).
"""

from __future__ import annotations

import argparse
import time

import dask
import dask.array as da
import numpy as np


def _tasks(*collections) -> int:
    keys: set = set()
    for c in collections:
        keys |= set(c.__dask_graph__().keys())
    return len(keys)


def tasks_per_block(n_t: int = 20) -> None:
    """Print the tasks per block of the threshold and segment + measure graphs."""
    from bigseg import Params, as_stack, global_threshold, segment
    from bigseg.measure import measure

    cases = {
        "whole planes (4 x 2048 x 2048 blocks)": ((n_t, 16, 2048, 2048), (1, 4, 2048, 2048)),
        "split planes (4 x 1024 x 1024 blocks)": ((n_t, 16, 2048, 2048), (1, 4, 1024, 1024)),
    }
    for preset in ("default", "seed"):
        params = Params.from_preset(preset)
        for name, (shape, chunks) in cases.items():
            stack = as_stack(da.zeros(shape, np.uint16, chunks=chunks), scale=(1.5, 0.71, 0.71))
            blocks = stack.data.npartitions
            thr = global_threshold(stack, params=params)
            labels = segment(stack, params=params, threshold=np.ones(n_t))
            tables = measure(labels, stack)
            print(
                f"{preset}, {name}: threshold {_tasks(thr.data) / blocks:.1f} tasks/block, "
                f"segment + measure {_tasks(labels.data, tables) / blocks:.1f} tasks/block",
                flush=True,
            )


def _wait(seconds: float) -> int:
    time.sleep(seconds)
    return 0


def _one(gate: int, i: int) -> int:
    return i


def scheduler_costs(sizes: tuple[int, ...]) -> None:
    """Print the scheduler's RSS per pending task and its seconds per trivial task."""
    import gc

    import psutil
    from distributed import Client, LocalCluster

    def rss() -> int:
        return psutil.Process().memory_info().rss

    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        rows = []
        for n in sizes:
            gc.collect()
            before = rss()
            gate = dask.delayed(_wait, pure=False)(30.0)
            tasks = [dask.delayed(_one, pure=False)(gate, i) for i in range(n)]
            futures = client.compute(tasks, optimize_graph=False)
            deadline = time.time() + 25
            while time.time() < deadline:  # every task has reached the scheduler
                if client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) > n:
                    break
                time.sleep(0.2)
            held = rss() - before
            client.cancel(futures)
            del futures, tasks, gate
            time.sleep(1)
            start = time.perf_counter()
            done = client.gather(
                client.compute([dask.delayed(int, pure=False)(i) for i in range(n)])
            )
            seconds = time.perf_counter() - start
            assert len(done) == n
            rows.append((n, held, seconds))
            print(
                f"{n} tasks: scheduler + client +{held / 2**20:.1f} MiB while pending "
                f"({held / n:.0f} B/task), {seconds:.1f} s to run "
                f"({seconds / n * 1e6:.0f} us/task)",
                flush=True,
            )
        (n0, m0, s0), (n1, m1, s1) = rows[0], rows[-1]
        print(
            f"slope {n0} -> {n1} tasks: {(m1 - m0) / (n1 - n0):.0f} B/task (scheduler + client), "
            f"{(s1 - s0) / (n1 - n0) * 1e6:.0f} us/task (one worker thread, trivial tasks)"
        )


def main() -> None:
    """Print both measurements."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, nargs=2, default=[10_000, 50_000])
    args = parser.parse_args()
    tasks_per_block()
    scheduler_costs(tuple(args.tasks))


if __name__ == "__main__":
    main()
