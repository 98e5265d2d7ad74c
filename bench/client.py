"""The client's own peak RSS for a small time series of many time points.

Each size runs in a fresh process: a ``(t, 3, 64, 64)`` Zarr stack (one nucleus field
repeated over t, written first) through ``run()`` on a two-worker ``LocalCluster``
started in a process of its own, so that the client process holds the client alone;
the client's RSS and the scheduler process's are sampled every 20 ms during ``run()``
(the workers are not counted).  ``--in-process`` starts the cluster in the client's
process, as a notebook user does, so that the scheduler counts too.  Prints the peaks
and the ratio to the smallest size.

Example::

    python bench/client.py --time-points 200 2000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap

CLUSTER = textwrap.dedent(
    """
    import sys
    from distributed import LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="1GiB",
                           host="127.0.0.1", dashboard_address=None)
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()  # until the client closes our stdin
    cluster.close()
    """
)

CHILD = textwrap.dedent(
    """
    import json, os, subprocess, sys, tempfile, threading, time
    from pathlib import Path
    import dask.array as da
    import numpy as np
    import psutil
    from distributed import Client, LocalCluster
    from bigseg import Params, as_stack, run
    from bigseg.synth import make_truth, render

    n_t, in_process, shape = int(sys.argv[1]), sys.argv[2] == "1", (3, 64, 64)
    scale = (1.5, 0.71, 0.71)
    truth = make_truth(shape, 6, scale=scale, t=1, seed=3, radius_um=(3.0, 5.0))
    one = render(truth, (0, 0, 0, 0), (1, *shape), scale=scale, noise_seed=3)
    tmp = Path(tempfile.mkdtemp())
    da.broadcast_to(one, (n_t, *shape), chunks=(1, *shape)).to_zarr(str(tmp / "in.zarr"))
    stack = as_stack(da.from_zarr(str(tmp / "in.zarr")), scale=scale)
    me = psutil.Process()
    if in_process:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, memory_limit="1GiB",
                               host="127.0.0.1", dashboard_address=None)
        address, scheduler = cluster.scheduler_address, me
    else:
        proc = subprocess.Popen([sys.executable, "-c", sys.argv[3]], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        address, scheduler = proc.stdout.readline().strip(), psutil.Process(proc.pid)
    with Client(address) as client:
        base, scheduler_base = me.memory_info().rss, scheduler.memory_info().rss
        peak, scheduler_peak = [base], [scheduler_base]
        stop = threading.Event()
        def sample():
            while not stop.is_set():
                peak[0] = max(peak[0], me.memory_info().rss)
                scheduler_peak[0] = max(scheduler_peak[0], scheduler.memory_info().rss)
                stop.wait(0.02)
        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        t0 = time.perf_counter()
        result = run(stack, tmp / "out", params=Params(min_radius=2.84, max_radius=9.0,
                     smooth_radius=1.42), client=client)
        seconds = time.perf_counter() - t0
        stop.set()
        thread.join()
    if in_process:
        cluster.close()
    else:
        proc.stdin.close()
        proc.wait()
    print(json.dumps({"t": n_t, "peak_mib": (peak[0] - base) / 2**20,
                      "rss_mib": peak[0] / 2**20, "seconds": seconds,
                      "scheduler_mib": scheduler_peak[0] / 2**20,
                      "nuclei": result.record["counts"]["nuclei"]}))
    """
)


def main() -> None:
    """Run each size in a fresh process and print the client's peaks and their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-points", type=int, nargs="+", default=[200, 2000])
    parser.add_argument(
        "--in-process", action="store_true", help="the cluster in the client's process"
    )
    args = parser.parse_args()
    rows = []
    for n_t in args.time_points:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(n_t), str(int(args.in_process)), CLUSTER],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    for row in rows:
        print(
            f"{row['t']:>6} time points: client peak {row['rss_mib']:.0f} MiB "
            f"(+{row['peak_mib']:.0f} MiB during run), scheduler process "
            f"{row['scheduler_mib']:.0f} MiB, {row['seconds']:.1f} s, "
            f"{row['nuclei']} nuclei, x{row['rss_mib'] / rows[0]['rss_mib']:.2f} of the first"
        )


if __name__ == "__main__":
    main()
