"""Speed of ``bigseg segment`` against the plain serial scikit-image recipe.

Generates a synthetic 12-bit stack on disk (``bigseg.synth.synth``), then, alternating and
repeated, runs

* the seed recipe as users run it today: plain scikit-image, serial, in memory (kept below as
  a plain function; timed inside its own process from reading the stack to the detections, so
  its interpreter start and imports are *not* counted: the comparison favours the recipe), and
* ``bigseg segment --preset seed`` (and ``--preset default``) as a subprocess, timed from
  process start to outputs written, dask cluster start-up and shutdown included.

It prints median seconds, Mvoxel/s per core, the ratio, peak memory (resident set of the
whole process tree, sampled every 20 ms), a per-stage breakdown on a few planes, and checks
that the per-plane detections of the recipe and of ``--preset seed`` are identical.

Usage::

    python bench/speed.py                      # 8 x 1024 x 1024, 3 repeats, + 32 planes
    python bench/speed.py --planes 4 --size 512 --repeats 3 --large-planes 0   # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _rss import TreeRSS  # bench/ is the script's directory

SCALE = (1.5, 0.71, 0.71)
NUCLEI_PER_MVOXEL = 36  # 300 nuclei in 8 x 1024 x 1024


# --------------------------------------------------------------------------- the recipe

# The plain serial recipe is the test suite's reference (tests/reference_recipe.py): the
# benchmark times the very function whose output the tests compare bigseg with.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.reference_recipe import recipe_detections  # noqa: E402


def _read_stack(path: Path) -> np.ndarray:
    import zarr

    return np.asarray(zarr.open_group(str(path), mode="r")["0"][...])


def _recipe_child(path: str, out: str) -> None:
    """Run the recipe in this process; print its seconds (imports excluded) as JSON."""
    import warnings

    warnings.filterwarnings("ignore", message="Bad rank filter performance")
    recipe_detections(np.zeros((1, 16, 16), np.uint16) + np.arange(16, dtype=np.uint16))  # warm
    started, cpu = time.perf_counter(), time.process_time()
    table = recipe_detections(_read_stack(Path(path)))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    table.to_parquet(out, index=False)
    print(json.dumps({"seconds": seconds, "cpu": cpu}))


# --------------------------------------------------------------------------- measuring


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(cmd: list[str]) -> tuple[float, float, int, str]:
    """Run a command; return (wall s, CPU s of its process tree, peak tree RSS, stdout)."""
    cpu0 = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreeRSS(proc.pid, interval=0.02) as sampler:
        stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    peak = sampler.peak
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return seconds, _children_cpu() - cpu0, peak, stdout


def run_recipe(stack_path: Path, out: Path) -> tuple[float, float, float, int]:
    """(recipe seconds, recipe CPU seconds, process wall seconds, peak RSS)."""
    cmd = [sys.executable, __file__, "--_recipe", str(stack_path), str(out)]
    wall, _, peak, stdout = run_timed(cmd)
    got = json.loads(stdout.strip().splitlines()[-1])
    return got["seconds"], got["cpu"], wall, peak


def run_bigseg(
    stack_path: Path, out: Path, preset: str, extra: list[str]
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS) of one ``bigseg segment`` process."""
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).with_name("bigseg")
    cmd = [str(exe), "segment", str(stack_path), "-o", str(out), "--preset", preset, "-q"]
    wall, cpu, peak, _ = run_timed(cmd + extra)
    return wall, cpu, peak


def same_detections(recipe: pd.DataFrame, found: pd.DataFrame) -> str:
    """'' when the per-plane detections are identical, else what differs."""
    cols = ["z", "y", "x"]
    a = recipe.sort_values(cols).reset_index(drop=True)
    b = found.sort_values(cols).reset_index(drop=True)
    if len(a) != len(b):
        return f"{len(a)} recipe detections, {len(b)} bigseg detections"
    try:
        np.testing.assert_array_equal(a["z"], b["z"])
        np.testing.assert_array_equal(a["area_px"], b["area_px"])
        np.testing.assert_allclose(a["y"], b["y"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(a["x"], b["x"], rtol=0, atol=1e-9)
        np.testing.assert_allclose(a["intensity_sum"], b["intensity_sum"], rtol=1e-12)
    except AssertionError as exc:
        return str(exc).strip().splitlines()[0]
    return ""


# --------------------------------------------------------------------------- per stage


def _clock(times: dict, name: str, fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    times[name] = times.get(name, 0.0) + time.perf_counter() - started
    return result


def stage_breakdown(stack: np.ndarray, planes: list[int]) -> tuple[dict, dict]:
    """Seconds per plane of each step, recipe and bigseg, on the given planes (one core)."""
    import warnings

    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.filters import rank, threshold_otsu
    from skimage.measure import regionprops
    from skimage.morphology import disk
    from skimage.segmentation import watershed

    from bigseg.kernels import filters
    from bigseg.kernels import watershed as kwatershed
    from bigseg.measure import measure_planes

    warnings.filterwarnings("ignore", message="Bad rank filter performance")
    thresh = threshold_otsu(stack.max(axis=0))
    rec: dict[str, float] = {}
    big: dict[str, float] = {}
    for z in planes:
        plane = stack[z]
        med = _clock(rec, "rank.median", rank.median, plane, disk(5))
        smoothed = _clock(rec, "rank.enhance_contrast", rank.enhance_contrast, med, disk(5))
        binary = smoothed > thresh
        dist = _clock(rec, "distance_transform_edt", ndimage.distance_transform_edt, binary)
        peaks = _clock(rec, "peak_local_max", peak_local_max, dist, min_distance=8, labels=binary)
        mm = np.zeros(binary.shape, bool)
        mm[tuple(peaks.T)] = True
        markers = ndimage.label(mm)[0]
        labels = _clock(rec, "watershed", watershed, -dist, markers, mask=binary)

        def props(labels=labels, plane=plane):
            return [r.centroid_weighted for r in regionprops(labels, intensity_image=plane)]

        _clock(rec, "regionprops", props)

        fast = _clock(big, "smoothed_above", filters.smoothed_above, plane, thresh, 5)
        assert np.array_equal(fast, binary), f"smoothed_above differs on plane {z}"
        dist2 = _clock(big, "distance_to_background", kwatershed.distance_to_background, fast)
        pk = _clock(big, "peak_local_max", peak_local_max, dist2, min_distance=8, labels=fast)
        mm = np.zeros(fast.shape, bool)
        mm[tuple(pk.T)] = True
        mk = ndimage.label(mm)[0]
        lab = _clock(big, "watershed", watershed, -dist2, mk, mask=fast)
        lab = _clock(
            big,
            "filter_sizes",
            kwatershed.filter_sizes,
            lab.astype(np.int32),
            min_radius=4,
            max_radius=20,
        )
        _clock(big, "measure_planes", measure_planes, lab[None, None], plane[None, None])
    n = len(planes)
    return {k: v / n for k, v in rec.items()}, {k: v / n for k, v in big.items()}


# --------------------------------------------------------------------------- main


def bench_stack(args, work: Path, n_planes: int, presets: list[str], repeats: int) -> dict:
    from bigseg.synth import synth

    shape = (n_planes, args.size, args.size)
    voxels = int(np.prod(shape))
    nuclei = max(1, round(NUCLEI_PER_MVOXEL * voxels / 1e6))
    stack_path = work / f"stack{n_planes}.ome.zarr"
    synth(
        stack_path,
        shape=shape,
        nuclei=nuclei,
        scale=SCALE,
        seed=args.seed,
        overwrite=True,
        brightness=tuple(args.brightness),
    )
    print(
        f"\n## {n_planes} x {args.size} x {args.size} uint16 ({nuclei} nuclei of brightness "
        f"{args.brightness[0]:g}-{args.brightness[1]:g}, {voxels / 1e6:.1f} "
        f"Mvoxel), {repeats} repeats, alternating",
        flush=True,
    )
    extra = shlex.split(args.bigseg_args)
    times: dict[str, list[float]] = {"recipe": [], "recipe process": []}
    cpus: dict[str, list[float]] = {"recipe": []}
    peaks: dict[str, int] = {"recipe": 0}
    for p in presets:
        times[p], cpus[p], peaks[p] = [], [], 0
    mismatch = None
    for rep in range(repeats):
        secs, cpu, wall, peak = run_recipe(stack_path, work / "recipe.parquet")
        times["recipe"].append(secs)
        cpus["recipe"].append(cpu)
        times["recipe process"].append(wall)
        peaks["recipe"] = max(peaks["recipe"], peak)
        line = [f"recipe {secs:.2f} s (CPU {cpu:.2f} s)"]
        for p in presets:
            wall, cpu, peak = run_bigseg(stack_path, work / f"out-{p}", p, extra)
            times[p].append(wall)
            cpus[p].append(cpu)
            peaks[p] = max(peaks[p], peak)
            line.append(f"{p} {wall:.2f} s (CPU {cpu:.2f} s)")
            if p == "seed" and rep == 0:
                found = pd.read_parquet(work / "out-seed" / "detections.parquet")
                mismatch = same_detections(pd.read_parquet(work / "recipe.parquet"), found)
                n_det = len(found)
        print(f"  run {rep + 1}: " + ", ".join(line), flush=True)
    cores = len(os.sched_getaffinity(0))
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
    print(
        "\n| run | median s | Mvoxel/s | Mvoxel/s per core | vs recipe | CPU s | CPU vs recipe "
        "| peak memory |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in ["recipe", *presets]:
        used = 1 if name == "recipe" else cores
        label = "recipe (serial, in memory)" if name == "recipe" else f"bigseg --preset {name}"
        rate = voxels / med[name] / 1e6
        print(
            f"| {label} | {med[name]:.2f} | {rate:.2f} | {rate / used:.2f} | "
            f"{med['recipe'] / med[name]:.1f}x | {cpu_med[name]:.2f} | "
            f"{cpu_med['recipe'] / cpu_med[name]:.1f}x | {peaks[name] / 2**20:.0f} MiB |"
        )
    print(
        f"(recipe process incl. interpreter start and imports: {med['recipe process']:.2f} s; "
        f"{cores} cores; all runs: "
        + json.dumps({k: [round(x, 2) for x in v] for k, v in times.items()})
        + ")"
    )
    if "seed" in presets:
        print(
            "per-plane detections recipe vs --preset seed: "
            + ("identical" + f" ({n_det} detections)" if not mismatch else f"DIFFER: {mismatch}")
        )
    if "default" in presets and "seed" in presets:
        print(f"default / seed time: {med['default'] / med['seed']:.2f}")
    return {"median": med, "mismatch": mismatch}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--planes", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024, help="Y = X size of each plane")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large-planes", type=int, default=32, help="0 skips the large stack")
    parser.add_argument("--large-repeats", type=int, default=3)
    parser.add_argument("--stage-planes", type=int, default=3, help="planes for the breakdown")
    parser.add_argument(
        "--bigseg-args",
        default="",
        help="extra options for bigseg segment, e.g. '--workers 2 --threads-per-worker 1'",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--brightness",
        nargs=2,
        type=float,
        default=(1200.0, 2600.0),
        metavar=("LO", "HI"),
        help="nucleus brightness range (synth's default; 2500 4000 fills the 12-bit range)",
    )
    parser.add_argument("--workdir", help="keep the stacks and outputs here")
    parser.add_argument("--_recipe", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._recipe:
        _recipe_child(*args._recipe)
        return 0

    import platform

    print(
        f"# bench/speed.py on {platform.node()}: {len(os.sched_getaffinity(0))} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    with tempfile.TemporaryDirectory(prefix="bigseg-speed-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        small = bench_stack(args, work, args.planes, ["seed", "default"], args.repeats)
        if args.stage_planes:
            stack = _read_stack(work / f"stack{args.planes}.ome.zarr")
            n = min(args.stage_planes, stack.shape[0])
            picks = sorted({int(i) for i in np.linspace(0, stack.shape[0] - 1, n + 2)[1:-1]})
            rec, big = stage_breakdown(stack, picks)
            print(
                f"\n### per stage, seconds per {args.size}x{args.size} plane (one core, "
                f"planes {picks})"
            )
            print("| recipe step | s | bigseg step | s |\n|---|---:|---:|---:|")
            for (a, ta), (b, tb) in zip(
                list(rec.items()) + [("", None)] * (len(big) - len(rec)),
                list(big.items()) + [("", None)] * (len(rec) - len(big)),
            ):
                fa = f"{ta:.3f}" if ta is not None else ""
                fb = f"{tb:.3f}" if tb is not None else ""
                print(f"| {a} | {fa} | {b} | {fb} |")
            print(f"| **total** | {sum(rec.values()):.3f} | **total** | {sum(big.values()):.3f} |")
        if args.large_planes:
            bench_stack(args, work, args.large_planes, ["seed"], args.large_repeats)
        print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0 if not small["mismatch"] else 1


if __name__ == "__main__":
    sys.exit(main())
