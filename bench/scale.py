"""Scale benchmarks for bigseg: size, workers, time series, linking.

Every number is printed next to a ratio against a reference measured in the
same run.  Parts (choose with --parts):

* ``size``: ``bigseg segment`` on synthetic stacks of the given sizes (GiB)
  with 2 workers and ``--memory-limit 512MiB``; throughput (voxels/s) and peak
  resident memory of the whole process tree (sampled with psutil), as ratios
  to the smallest size.
* ``workers``: the smallest size with 1 and 2 workers (parallel efficiency).
* ``timeseries``: 500 time points of 8 x 128 x 128: graph size per pass and
  scheduling overhead (wall time per time point on the cluster against the
  single-thread kernel time of one time point measured in this process).
* ``link``: :func:`bigseg.link` on synthetic detections, 1e4 .. 1e6 (1e7 with
  --link-max 1e7), each in a fresh process: seconds, peak RSS, and time per
  n log n relative to the smallest n.
* ``wholeplane``: the storage chunks microscopes write, work blocks planned by bigseg
  from the workers' memory limit (no ``--chunks``): 256 x 2048 x 2048 uint16 (2 GiB)
  in whole-plane chunks of 4 planes through 2 workers of 512 MiB, against a stack 16x
  smaller with the same chunks (peak RSS of the process tree and its ratio); and
  4 x 8192 x 8192 in whole-plane chunks through 2 workers of 768 MiB, against the same
  voxels stored in 1024 x 1024 chunks (peak RSS, nuclei identical).

Example (what the closing note of the scale issue reports)::

    python bench/scale.py --parts size workers --sizes 0.03125 0.125 0.5
    python bench/scale.py --parts timeseries link
    python bench/scale.py --parts wholeplane --stacks /tmp/bigseg-stacks
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from _rss import TreeRSS  # bench/ is the script's directory

SCALE = (1.5, 0.71, 0.71)


def bigseg_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "bigseg.cli", *args]


def shape_for(gib: float, plane: int = 2048) -> tuple[int, int, int]:
    """A (z, y, x) uint16 shape of about ``gib`` GiB: fixed square planes, z grows."""
    return (max(1, round(gib * 2**30 / 2 / plane**2)), plane, plane)


def make_stack(root: Path, gib: float) -> tuple[Path, int]:
    shape = shape_for(gib)
    path = root / f"s{gib:g}.ome.zarr"
    if not path.exists():
        # A quarter of the demo stack's density (10 per 24 x 256 x 256): truth placement is
        # quadratic in the number of nuclei.
        nuclei = max(5, int(10 * np.prod(shape) / (24 * 256 * 256)))
        subprocess.run(
            bigseg_cmd(
                "synth", str(path), "--shape", *map(str, shape), "--nuclei", str(nuclei),
                "--seed", "0",
            ),
            check=True,
            capture_output=True,
        )  # fmt: skip
    return path, int(np.prod(shape))


CHUNKS: list[str] = []  # extra --chunks for `bigseg segment`, set from the command line


def segment_run(
    path: Path, out: Path, workers: int, threads: int, extra=(), *, memory="512MiB", chunks=None
) -> dict:
    extra = (*(CHUNKS if chunks is None else chunks), *extra)
    cmd = bigseg_cmd(
        "segment", str(path), "-o", str(out), "--workers", str(workers),
        "--threads-per-worker", str(threads), "--memory-limit", memory, "--no-progress",
        "--overwrite", *extra,
    )  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeRSS(proc.pid) as sampler:
        stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"bigseg segment failed:\n{stdout}\n{stderr}")
    record = json.loads((out / "run.json").read_text())
    return {"wall_s": wall, "peak_rss_mib": sampler.peak / 2**20, "record": record}


def part_size(root: Path, sizes: list[float], threads: int) -> list[dict]:
    print(
        f"\n## size: bigseg segment {' '.join(CHUNKS)}, 2 workers x {threads} thread(s), "
        "--memory-limit 512MiB"
    )
    rows = []
    for gib in sizes:
        path, voxels = make_stack(root, gib)
        r = segment_run(path, root / "out", 2, threads)
        rows.append({"gib": gib, "voxels": voxels, **r})
        print(
            f"  {gib:8.4f} GiB  shape {shape_for(gib)}  wall {r['wall_s']:7.1f} s  "
            f"{voxels / r['wall_s'] / 1e6:6.2f} Mvoxel/s  peak RSS {r['peak_rss_mib']:7.0f} MiB  "
            f"nuclei {r['record']['counts']['nuclei']}",
            flush=True,
        )
    ref = rows[0]
    ref_rate = ref["voxels"] / ref["wall_s"]
    print("  ratios to the smallest size (throughput should stay ~1, peak memory ~1):")
    for r in rows:
        rate = r["voxels"] / r["wall_s"]
        print(
            f"    {r['gib']:8.4f} GiB ({r['voxels'] / ref['voxels']:6.1f}x voxels): "
            f"throughput x{rate / ref_rate:5.2f}  "
            f"peak RSS x{r['peak_rss_mib'] / ref['peak_rss_mib']:5.2f}"
        )
    return rows


def part_workers(root: Path, gib: float, threads: int) -> None:
    print(f"\n## workers: {gib:g} GiB, 1 vs 2 workers x {threads} thread(s)")
    path, voxels = make_stack(root, gib)
    one = segment_run(path, root / "out", 1, threads)
    two = segment_run(path, root / "out", 2, threads)
    speedup = one["wall_s"] / two["wall_s"]
    print(
        f"  1 worker {one['wall_s']:.1f} s, 2 workers {two['wall_s']:.1f} s: speed-up "
        f"x{speedup:.2f}, parallel efficiency {speedup / 2:.0%} "
        f"(machine has {os.cpu_count()} cores, shared)"
    )


def part_timeseries(root: Path, n_t: int, threads: int) -> None:
    import dask
    import dask.array as da
    import pandas as pd

    import bigseg
    from bigseg.measure import measure_delayed
    from bigseg.methods.seed import segment_planes
    from bigseg.pipeline import relabel
    from bigseg.stack import as_stack
    from bigseg.synth import make_truth, render

    print(f"\n## timeseries: {n_t} time points of 8 x 128 x 128")
    data = da.zeros((n_t, 8, 128, 128), np.uint16, chunks=(1, 8, 128, 128))
    stack = as_stack(data, scale=SCALE)
    t0 = time.perf_counter()
    passes = {
        "threshold": bigseg.global_threshold(stack, params=bigseg.Params(preset="seed")).data,
        "segment": bigseg.segment(stack, threshold=np.zeros(n_t)).data,
    }
    labels = bigseg.segment(stack, threshold=np.zeros(n_t))
    passes["segment+measure"] = dask.delayed(list)(measure_delayed(labels, stack))
    linked = pd.DataFrame({"t": [0.0], "z": [0.0], "label": [1], "nucleus": [1]})
    passes["relabel"] = relabel(labels.data, linked)
    build = time.perf_counter() - t0
    for name, c in passes.items():
        n = len(c.__dask_graph__())
        print(f"  {name:16s} {n:7d} tasks = {n / n_t:5.2f} per time point")
    print(f"  building all graphs: {build:.2f} s")

    path = root / f"ts{n_t}.ome.zarr"
    if not path.exists():
        subprocess.run(
            bigseg_cmd("synth", str(path), "--shape", "8", "128", "128", "--nuclei", "4",
                       "--t", str(n_t), "--seed", "0"),
            check=True, capture_output=True,
        )  # fmt: skip
    # References in this process: the kernel alone on one time point, and the whole
    # pipeline (threshold, segment, measure, zarr, link, relabel) on the first 50
    # time points with dask's synchronous scheduler (no scheduling, one thread).
    truth = make_truth((8, 128, 128), 4, scale=SCALE, seed=0)
    one = render(truth, (0, 0, 0, 0), (1, 8, 128, 128), scale=SCALE, noise_seed=0)
    px = bigseg.Params().in_pixels(SCALE)
    reps = 5
    t0 = time.perf_counter()
    for _ in range(reps):
        segment_planes(one, np.full((1, 1, 1, 1), 400.0), px)
    kernel = (time.perf_counter() - t0) / reps
    n_ref = min(50, n_t)
    with dask.config.set(scheduler="synchronous"):
        t0 = time.perf_counter()
        bigseg.run(path, root / "sync", t=slice(0, n_ref))
        sync = (time.perf_counter() - t0) / n_ref
    r = segment_run(path, root / "out", 2, threads)
    per_t = r["wall_s"] / n_t
    print(
        f"  per time point: kernel alone {kernel * 1e3:.1f} ms; whole pipeline in process, "
        f"synchronous, 1 thread {sync * 1e3:.1f} ms; bigseg segment on 2 workers x {threads} "
        f"thread(s) {per_t * 1e3:.1f} ms ({r['wall_s']:.1f} s wall, incl. cluster start)"
    )
    print(
        f"  ratio cluster / synchronous = x{per_t / sync:.2f} (x0.5 would be perfect on 2 "
        f"free cores; load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    print(f"  run.json timings: {r['record']['timings_s']}")


LINK_SCRIPT = textwrap.dedent(
    """
    import resource, sys, time
    import numpy as np, pandas as pd
    from bigseg import link
    n = int(float(sys.argv[1]))
    rng = np.random.default_rng(0)
    n_t, n_z, per = 10, 100, 5          # 10 time points, 100 planes, ~5 planes per nucleus
    nuclei = n // per
    t = rng.integers(0, n_t, nuclei)
    z0 = rng.integers(0, n_z - per, nuclei)
    side = np.sqrt(nuclei / n_t / (n_z / per)) * 30.0  # ~30 um between nucleus centres
    yx = rng.uniform(0, side, (nuclei, 2))
    r = rng.uniform(4, 7, nuclei)
    k = np.repeat(np.arange(nuclei), per)
    dz = np.tile(np.arange(per), nuclei)
    det = pd.DataFrame({
        "t": t[k].astype(float), "z": (z0[k] + dz).astype(float),
        "y_um": yx[k, 0] + rng.normal(0, 0.3, k.size),
        "x_um": yx[k, 1] + rng.normal(0, 0.3, k.size),
        "radius_um": r[k] * np.sqrt(1 - ((dz - 2) / 3.0) ** 2),
    })
    det["y"] = det["y_um"] / 0.71; det["x"] = det["x_um"] / 0.71
    t0 = time.perf_counter()
    out = link(det)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(len(det), dt, peak, out["nucleus"].nunique(), nuclei)
    """
)


def part_link(max_n: float) -> None:
    print("\n## link: bigseg.link on synthetic detections (1 core, fresh process per n)")
    ns = [n for n in (1e4, 1e5, 1e6, 1e7) if n <= max_n]
    rows = []
    for n in ns:
        proc = subprocess.run(
            [sys.executable, "-c", LINK_SCRIPT, str(n)], capture_output=True, text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
        )  # fmt: skip
        if proc.returncode != 0:
            print(f"  n={n:.0e}: failed ({proc.stderr.strip().splitlines()[-1:]})")
            continue
        count, seconds, peak, found, true = proc.stdout.split()
        rows.append((int(count), float(seconds), float(peak), int(found), int(true)))
    ref = rows[0]
    for count, seconds, peak, found, true in rows:
        nlogn = count * math.log(count) / (ref[0] * math.log(ref[0]))
        print(
            f"  {count:9d} detections: {seconds:7.2f} s  peak RSS {peak:7.0f} MiB  "
            f"nuclei {found} (true {true})  time / (n log n) x{seconds / ref[1] / nlogn:.2f} "
            "of the smallest"
        )


def _render(block: np.ndarray, truth, block_info=None) -> np.ndarray:
    from bigseg.synth import render

    start = [lo for lo, _ in block_info[0]["array-location"]]
    return render(truth, start, block.shape, scale=SCALE, noise_seed=0)


def make_chunked(path: Path, shape, chunks, nuclei: int, render_chunks=None) -> Path:
    """Write a synthetic ``(z, y, x)`` OME-Zarr stack with the given storage chunks, lazily.

    Rendered block by block (``render_chunks``, default ``chunks``), rechunked to the
    storage chunks on the way to the store: no task holds more than a few chunks.
    """
    import dask.array as da

    from bigseg.io.ngff import write_ngff_image
    from bigseg.synth import make_truth

    if path.exists():
        return path
    truth = make_truth(shape, nuclei, scale=SCALE, seed=0)
    template = da.empty((1, *shape), chunks=(1, *(render_chunks or chunks)), dtype=np.uint16)
    image = da.map_blocks(_render, template, truth, dtype=np.uint16)[0].rechunk(chunks)
    write_ngff_image(
        image, path, dims=("z", "y", "x"), scale=dict(zip("zyx", SCALE)), name="synthetic"
    )
    return path


def copy_chunked(source: Path, path: Path, chunks) -> Path:
    """The same voxels as ``source``, stored in other chunks."""
    import bigseg
    from bigseg.io.ngff import write_ngff_image

    if not path.exists():
        stack = bigseg.open_stack(source)
        write_ngff_image(
            stack.data.rechunk(chunks), path, dims=stack.dims,
            scale=dict(zip("zyx", SCALE)), name="synthetic",
        )  # fmt: skip
    return path


def _nuclei(out: Path):
    import pandas as pd

    table = pd.read_parquet(out / "nuclei.parquet")
    return table.sort_values(["t", "z", "y", "x"]).reset_index(drop=True)


def _line(name: str, r: dict) -> str:
    rec = r["record"]
    blocks = rec.get("work_blocks", {}).get("chunks")
    worst = max(rec["timings_s"].items(), key=lambda kv: kv[1] if kv[0] != "total" else 0)
    return (
        f"  {name:34s} wall {r['wall_s']:7.1f} s  peak RSS {r['peak_rss_mib']:6.0f} MiB  "
        f"nuclei {rec['counts']['nuclei']:6d}  work blocks "
        f"{[max(c) for c in blocks] if blocks else '?'}  slowest pass {worst[0]}"
    )


def part_wholeplane(stacks: Path, threads: int) -> dict:
    """Whole-plane storage chunks, work blocks from the memory budget (no --chunks)."""
    print("\n## wholeplane: storage chunks of whole planes, work blocks planned by bigseg")
    # The density of the size part (10 per 24 x 256 x 256, a quarter).
    density = 10 / (24 * 256 * 256) / 4
    out = {}
    print("  2 workers x 512 MiB (--memory-limit 512MiB), storage chunks 4 x 2048 x 2048:")
    rows = {}
    for nz in (16, 256):
        shape = (nz, 2048, 2048)
        path = make_chunked(
            stacks / f"wp{nz}x2048.ome.zarr", shape, (4, 2048, 2048),
            int(density * np.prod(shape)),
        )  # fmt: skip
        rows[nz] = segment_run(path, stacks / "out", 2, threads, chunks=())
        print(_line(f"{nz} x 2048 x 2048 ({nz * 8} MiB)", rows[nz]), flush=True)
    ratio = rows[256]["peak_rss_mib"] / rows[16]["peak_rss_mib"]
    print(
        f"  peak RSS 2 GiB: {rows[256]['peak_rss_mib'] / 1024:.2f} GiB (target <= 1.5), "
        f"x{ratio:.2f} the 16x smaller stack's (target <= 1.3)"
    )
    out["2gib"] = {"peak_mib": {k: v["peak_rss_mib"] for k, v in rows.items()}, "ratio": ratio}

    print("  2 workers x 768 MiB (--memory-limit 768MiB), 4 x 8192 x 8192:")
    shape = (4, 8192, 8192)
    whole = make_chunked(
        stacks / "wp4x8192.ome.zarr", shape, (1, 8192, 8192), int(density * np.prod(shape)),
        render_chunks=(1, 2048, 2048),
    )  # fmt: skip
    small = copy_chunked(whole, stacks / "wp4x8192-1024.ome.zarr", (1, 1024, 1024))
    runs = {}
    for name, path in (("whole-plane chunks 1 x 8192 x 8192", whole),
                       ("storage chunks 1 x 1024 x 1024", small)):  # fmt: skip
        dest = stacks / f"out-{path.name}"
        runs[name] = segment_run(path, dest, 2, threads, memory="768MiB", chunks=())
        runs[name]["nuclei"] = _nuclei(dest)
        print(_line(name, runs[name]), flush=True)
    a, b = (r["nuclei"] for r in runs.values())
    same = a.shape == b.shape and a.drop(columns="nucleus").equals(b.drop(columns="nucleus"))
    peak = runs["whole-plane chunks 1 x 8192 x 8192"]["peak_rss_mib"]
    print(
        f"  peak RSS whole-plane chunks: {peak / 1024:.2f} GiB (target <= 2.5); "
        f"x{peak / runs['storage chunks 1 x 1024 x 1024']['peak_rss_mib']:.2f} the small "
        f"chunks' run; nuclei identical: {same} ({len(a)} vs {len(b)})"
    )
    out["8192"] = {"peak_mib": peak, "identical": same}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts", nargs="+", default=["size", "workers", "timeseries", "link"],
        choices=["size", "workers", "timeseries", "link", "wholeplane"],
    )  # fmt: skip
    parser.add_argument("--sizes", nargs="+", type=float, default=[0.03125, 0.125, 0.5])
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--time-points", type=int, default=500)
    parser.add_argument("--link-max", type=float, default=1e6)
    parser.add_argument("--root", help="directory for stacks (default: a temporary one)")
    parser.add_argument("--stacks", help="keep the wholeplane part's stacks here (reused)")
    parser.add_argument(
        "--chunks", default="1,1024,1024", help="--chunks for bigseg segment ('' for storage)"
    )
    args = parser.parse_args()
    if args.chunks:
        CHUNKS[:] = ["--chunks", args.chunks]
    with tempfile.TemporaryDirectory(dir=args.root) as tmp:
        root = Path(tmp)
        print(f"bigseg scale bench; {os.cpu_count()} cores; stacks in {root}")
        if "size" in args.parts:
            part_size(root, sorted(args.sizes), args.threads)
        if "workers" in args.parts:
            part_workers(root, min(args.sizes), args.threads)
        if "timeseries" in args.parts:
            part_timeseries(root, args.time_points, args.threads)
        if "link" in args.parts:
            part_link(args.link_max)
        if "wholeplane" in args.parts:
            stacks = Path(args.stacks) if args.stacks else root
            stacks.mkdir(parents=True, exist_ok=True)
            part_wholeplane(stacks, args.threads)


if __name__ == "__main__":
    main()
