"""Tracking: link and division F1 on synthetic series, and memory over many time points.

Accuracy (``--part accuracy``): ``bigseg.synth.make_truth(motion_um=...)`` series of
nuclei moving about 1 µm per time point, each its own way (paths cross), dividing
with a chance per nucleus and time point, rendered and run end to end through
``bigseg.run`` (segmentation, linking in z, tracking); scored with
``bigseg.score.track_scores`` (link and division precision / recall / F1 between the
true nuclei that were found) and the Cell Tracking Challenge's measures through
py-ctcmetrics (``bigseg export-ctc`` against the truth's ``TRA`` folder).

Search radius (``--part radius``): the matrix of motions the default search radius must
serve.  Series of the named kinds (``hela2d`` frames of 350 x 550 px, the 3D ``series``
stacks, the sparse 3D stacks above, and those three times as dense with a quarter
touching), each with nuclei moving ``--motions`` µm per time
point and dividing (``bigseg.synth.make_truth(motion_um=..., divisions=...)``), segmented
once by ``bigseg.run`` (default parameters; the stacks of :data:`ACCURACY` with the
accuracy part's ``min_radius=3``, ``max_radius=9``), then tracked in memory (``bigseg.track.track``)
with each of ``--search-radii``; prints link and division F1 per kind, motion and radius
(means over ``--seeds``), so a default is chosen by the numbers over the whole matrix.

Scale (``--part scale``): the tracking passes alone (``pipeline.tracking.track_parts``)
over nuclei tables written part by part (one part per time point, ``--nuclei`` nuclei
each, random walks of 1 µm per time point with one nucleus per 12 µm cube), on a
``LocalCluster`` of 2 workers x 1 thread bound to 127.0.0.1 with the settings of bigseg's
local clusters (``--dask-defaults``: dask's own, whose statistical profiler grows each
worker's memory with the run's duration), for each ``--time-points``:
the client's peak RSS above its RSS before tracking, each worker's peak RSS (sampled
every 50 ms from this process), seconds and the workers' CPU seconds per time point;
ratios against the first (smallest) size, measured in the same run.

Examples::

    python bench/tracking.py --part accuracy
    python bench/tracking.py --part radius --motions 1 2 3 5 --search-radii 8 12 16
    python bench/tracking.py --part scale --nuclei 20000 --time-points 50 500
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ACCURACY = {
    "shape": (16, 160, 160),
    "scale": (1.5, 0.5, 0.5),
    "nuclei": 20,
    "t": 30,
    "radius_um": (4.5, 6.5),
    "motion_um": 1.0,
    "divisions": 0.05,
}


def accuracy(seeds: list[int]) -> list[dict]:
    from bigseg import Params, as_stack, run
    from bigseg.pipeline.export import export_ctc
    from bigseg.score import ctc_scores, score, track_scores
    from bigseg.synth import make_truth, render, write_ctc_truth

    spec = ACCURACY
    rows = []
    for seed in seeds:
        tmp = Path(tempfile.mkdtemp())
        truth = make_truth(
            spec["shape"], spec["nuclei"], scale=spec["scale"], t=spec["t"], seed=seed,
            radius_um=spec["radius_um"], motion_um=spec["motion_um"], divisions=spec["divisions"],
        )  # fmt: skip
        data = render(truth, (0, 0, 0, 0), (spec["t"], *spec["shape"]), scale=spec["scale"],
                      noise_seed=seed)  # fmt: skip
        stack = as_stack(data, scale=spec["scale"]).chunk({"t": 1})
        t0 = time.perf_counter()
        result = run(stack, tmp / "out", params=Params(min_radius=3.0, max_radius=9.0))
        seconds = time.perf_counter() - t0
        nuclei = result.nuclei
        det = score(nuclei, truth)
        trk = track_scores(nuclei, truth)
        write_ctc_truth(truth, spec["shape"], spec["scale"], tmp / "gt", t=spec["t"])
        export_ctc(tmp / "out", tmp / "res")
        ctc = ctc_scores(str(tmp / "res"), str(tmp / "gt"))
        step = truth.sort_values("t").groupby("track_id")[["z_um", "y_um", "x_um"]].diff()
        rows.append(
            {
                "seed": seed,
                "nuclei": len(truth),
                "true_tracks": int(truth["track_id"].nunique()),
                "motion_um_per_t": round(float(np.linalg.norm(step.dropna(), axis=1).mean()), 3),
                "detection_f1": round(det.f1, 4),
                "links_true": trk.links_true,
                "link_precision": round(trk.link_precision, 4),
                "link_recall": round(trk.link_recall, 4),
                "link_f1": round(trk.link_f1, 4),
                "divisions_true": trk.divisions_true,
                "divisions_found": trk.divisions_found,
                "division_f1": round(trk.division_f1, 4),
                "ctc_DET": round(ctc["DET"], 4),
                "ctc_LNK": round(ctc["LNK"], 4),
                "ctc_TRA": round(ctc["TRA"], 4),
                "ctc_BC1": round(ctc["BC(1)"], 4),
                "tracking_s": round(result.record["timings_s"]["tracks"], 2),
                "run_s": round(seconds, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(tmp)
    pooled = {
        k: round(float(np.mean([r[k] for r in rows])), 4)
        for k in ("link_f1", "division_f1", "ctc_TRA", "ctc_LNK", "detection_f1")
    }
    print(json.dumps({"mean_over_seeds": pooled}))
    return rows


#: ``--part radius``'s series: a kind of :data:`bigseg.synth.KINDS` (or ``None``: the
#: 3D stacks of :data:`ACCURACY`) and what is drawn otherwise (shape, nuclei, time points,
#: the fraction touching).
RADIUS_CASES = {
    "hela2d": ("hela2d", {"shape": (1, 350, 550), "nuclei": 40, "t": 10}),
    "series3d": ("series", {"t": 10}),
    "sparse3d": (None, {"t": 10}),
    "dense3d": (None, {"t": 10, "nuclei": 60, "touching": 0.25}),
}


def radius_matrix(
    seeds: list[int], motions: list[float], radii: list[float], divisions: float = 0.05
) -> pd.DataFrame:
    """Link and division F1 of every case, motion and search radius (one row each)."""
    from bigseg import Params, as_stack, run
    from bigseg.params import TrackParams
    from bigseg.score import track_scores
    from bigseg.synth import kind_options, make_truth, render
    from bigseg.track import track

    rows = []
    for case, (kind, changes) in RADIUS_CASES.items():
        for motion in motions:
            for seed in seeds:
                if kind is None:
                    truth_options = {
                        "radius_um": ACCURACY["radius_um"],
                        "touching": changes.get("touching", 0.0),
                    }
                    spec = {**ACCURACY, **changes, "truth": truth_options, "render": {}}
                    params = Params(min_radius=3.0, max_radius=9.0)
                else:
                    spec = {**kind_options(kind, seed), **changes}
                    params = Params()
                shape, t = tuple(spec["shape"]), int(spec["t"])
                truth = make_truth(shape, int(spec["nuclei"]), scale=spec["scale"], t=t,
                                   seed=seed, motion_um=motion, divisions=divisions,
                                   **spec["truth"])  # fmt: skip
                data = render(truth, (0, 0, 0, 0), (t, *shape), scale=spec["scale"],
                              noise_seed=seed, **spec["render"])  # fmt: skip
                tmp = Path(tempfile.mkdtemp())
                try:
                    stack = as_stack(data, scale=spec["scale"]).chunk({"t": 1})
                    nuclei = run(stack, tmp / "out", params=params, track=False).nuclei
                finally:
                    shutil.rmtree(tmp)
                for radius in radii:
                    tracked, _ = track(nuclei, params=TrackParams(search_radius=radius))
                    trk = track_scores(tracked, truth)
                    rows.append({"case": case, "motion_um": motion, "seed": seed,
                                 "search_radius": radius, "link_f1": trk.link_f1,
                                 "division_f1": trk.division_f1,
                                 "divisions_true": trk.divisions_true})  # fmt: skip
                print(f"{case} motion {motion} seed {seed}: " + ", ".join(
                    f"R {r['search_radius']:g}: {r['link_f1']:.3f} / {r['division_f1']:.3f}"
                    for r in rows[-len(radii):]), flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    means = table.groupby(["case", "motion_um", "search_radius"])[["link_f1", "division_f1"]]
    wide = means.mean().unstack("search_radius").round(3)
    print("\nlink F1 / division F1, means over seeds, by search radius (µm):")
    with pd.option_context("display.width", 200, "display.max_columns", 40):
        print(wide)
        print("\nover the whole matrix (mean; worst case):")
        cell = means.mean().groupby("search_radius")
        print(pd.concat({"mean": cell.mean(), "worst": cell.min()}, axis=1).round(3))
    return table


def _write_series(folder: Path, n: int, n_t: int, seed: int = 0) -> list[list[int]]:
    """Nuclei tables of random walks, one part file per time point (never all in memory)."""
    from bigseg.pipeline.partitions import part_name
    from bigseg.tables import NUCLEUS_COLUMNS

    rng = np.random.default_rng(seed)
    side = (n * 12.0**3) ** (1 / 3)
    pos = rng.uniform(0, side, (n, 3))
    (folder / "nuclei.parquet").mkdir(parents=True)
    for t in range(n_t):
        step = rng.normal(size=(n, 3))
        pos = pos + step / np.linalg.norm(step, axis=1, keepdims=True)
        table = pd.DataFrame(
            {
                "nucleus": np.arange(n) + t * n + 1,
                "t": t,
                "z": pos[:, 0] / 1.5, "y": pos[:, 1] / 0.5, "x": pos[:, 2] / 0.5,
                "z_um": pos[:, 0], "y_um": pos[:, 1], "x_um": pos[:, 2],
                "volume_um3": 520.0 * rng.uniform(0.9, 1.1, n), "radius_um": 5.0,
                "intensity_sum": 5e5, "intensity_mean": 1000.0 * rng.uniform(0.9, 1.1, n),
                "n_planes": 7, "z_first": pos[:, 0] / 1.5 - 3, "z_last": pos[:, 0] / 1.5 + 3,
            }
        )  # fmt: skip
        table = table.astype({c: d for c, d in NUCLEUS_COLUMNS.items() if c != "t"})
        table.to_parquet(folder / "nuclei.parquet" / part_name(t), index=False)
    return [[t] for t in range(n_t)]


class Peaks:
    """Sample the RSS of some processes every 50 ms in a thread: ``start`` and ``peak`` by pid."""

    def __init__(self, *pids):
        import psutil

        flat = [int(p) for group in pids for p in (group if isinstance(group, list) else [group])]
        self.procs = [psutil.Process(p) for p in flat]
        self.start = {p.pid: p.memory_info().rss for p in self.procs}
        self.cpu_start = {p.pid: _cpu(p) for p in self.procs}
        self.cpu = {}
        self.peak = dict(self.start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            for p in self.procs:
                try:
                    self.peak[p.pid] = max(self.peak[p.pid], p.memory_info().rss)
                except psutil.Error:
                    pass
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.cpu = {p.pid: _cpu(p) - self.cpu_start[p.pid] for p in self.procs}


def _cpu(proc) -> float:
    """CPU seconds (user + system) of a process and its threads so far."""
    times = proc.cpu_times()
    return float(times.user + times.system)


def scale(n: int, sizes: list[int], local_config: bool = True) -> list[dict]:
    import dask
    import psutil
    from distributed import Client, LocalCluster

    from bigseg.pipeline.sink import LOCAL_CLUSTER_CONFIG, Sink
    from bigseg.pipeline.tracking import track_parts

    rows = []
    me = psutil.Process()
    for n_t in sizes:
        tmp = Path(tempfile.mkdtemp())
        times = _write_series(tmp, n, n_t)
        with dask.config.set(LOCAL_CLUSTER_CONFIG if local_config else {}):
            cluster = LocalCluster(
                n_workers=2, threads_per_worker=1, memory_limit="2GiB", host="127.0.0.1",
                dashboard_address=None,
            )  # fmt: skip
        with cluster, Client(cluster) as client:
            pids = client.run(lambda: __import__("os").getpid()).values()
            with Peaks(me.pid, list(pids)) as peaks:
                t0 = time.perf_counter()
                counts = track_parts(tmp / "nuclei.parquet", tmp / "tracks.parquet", tmp,
                                     times, Sink(client))  # fmt: skip
                seconds = time.perf_counter() - t0
        base = peaks.start[me.pid]
        rows.append(
            {
                "time_points": n_t,
                "nuclei_per_t": n,
                "client_peak_above_start_mib": round((peaks.peak[me.pid] - base) / 2**20, 1),
                "client_rss_mib": round(peaks.peak[me.pid] / 2**20, 1),
                "worker_peak_rss_mib": round(
                    max(v for k, v in peaks.peak.items() if k != me.pid) / 2**20, 1
                ),
                "seconds": round(seconds, 1),
                "ms_per_time_point": round(1000 * seconds / n_t, 1),
                "worker_cpu_ms_per_time_point": round(
                    1000 * sum(v for k, v in peaks.cpu.items() if k != me.pid) / n_t, 1
                ),
                "client_cpu_ms_per_time_point": round(1000 * peaks.cpu[me.pid] / n_t, 1),
                "tracks": counts["tracks"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(tmp)
    ref = rows[0]
    for r in rows[1:]:
        print(
            json.dumps(
                {
                    "time_points": f"{r['time_points']} vs {ref['time_points']}",
                    "client_rss_ratio": round(r["client_rss_mib"] / ref["client_rss_mib"], 3),
                    "worker_peak_ratio": round(
                        r["worker_peak_rss_mib"] / ref["worker_peak_rss_mib"], 3
                    ),
                    "time_per_t_ratio": round(r["ms_per_time_point"] / ref["ms_per_time_point"], 3),
                    "worker_cpu_per_t_ratio": round(
                        r["worker_cpu_ms_per_time_point"] / ref["worker_cpu_ms_per_time_point"], 3
                    ),
                }
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("accuracy", "radius", "scale"), default="accuracy")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--nuclei", type=int, default=2000)
    parser.add_argument("--motions", type=float, nargs="+", default=[1.0, 2.0, 3.0, 5.0],
                        help="--part radius: µm per time point")  # fmt: skip
    parser.add_argument("--search-radii", type=float, nargs="+", default=[6, 8, 10, 12, 16, 20],
                        help="--part radius: search radii to compare, µm")  # fmt: skip
    parser.add_argument("--time-points", type=int, nargs="+", default=[50, 500])
    parser.add_argument(
        "--dask-defaults",
        action="store_true",
        help="run the cluster with dask's default settings, not those of bigseg's local "
        "clusters (LOCAL_CLUSTER_CONFIG: no pause, no statistical profiler)",
    )
    args = parser.parse_args(argv)
    if args.part == "accuracy":
        accuracy(args.seeds)
    elif args.part == "radius":
        radius_matrix(args.seeds, args.motions, args.search_radii)
    else:
        scale(args.nuclei, args.time_points, local_config=not args.dask_defaults)
    return 0


if __name__ == "__main__":
    sys.exit(main())
