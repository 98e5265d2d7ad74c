"""Speed of ``bigseg segment`` against the plain serial scikit-image recipe.

Generates a synthetic 12-bit stack on disk (``bigseg.synth.synth``), then, alternating and
repeated, runs

* the seed recipe as users run it today: plain scikit-image, serial, in memory (kept below as
  a plain function; timed inside its own process from reading the stack to the detections, so
  its interpreter start and imports are *not* counted: the comparison favours the recipe),
* the same recipe as a dask user parallelises it first: ``map_blocks`` over planes on the
  threaded scheduler, all cores (timed the same way; its detections must be the serial
  recipe's; ``--no-dask-recipe`` skips it),
* with ``--vol``, Voronoi-Otsu-Labeling as its users run it (the real package, in the peers'
  environment of ``make bench-env``; serial, on the whole stack in memory, its sigmas
  ``--vol-sigmas``, by default its own 2, 2; the call alone timed, as for the recipe), and
* ``bigseg segment --preset seed`` (and ``--preset default``) as a subprocess, timed from
  process start to outputs written, dask cluster start-up and shutdown included.

Each bigseg version runs once untimed first (numba compiles its loops into that version's
cache on its first run). It prints median seconds, Mvoxel/s per core, the ratio, peak
memory (resident set of the whole process tree, sampled every 20 ms), a per-stage breakdown
on a few planes, and checks that the per-plane detections of the recipe and of ``--preset
seed`` are identical.

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


def _dask_recipe_detections(path: Path, threads: int) -> pd.DataFrame:
    """The recipe as a dask user parallelises it first: one task per plane, all threads.

    The stack is read with dask in chunks of one plane, its maximum projection's Otsu
    threshold computed first (as the recipe does), then every plane segmented by the
    recipe's own code (``recipe_detections`` of one plane with that threshold) as one
    task of ``map_blocks``, on the threaded scheduler: the same detections as the serial
    recipe.
    """
    import dask
    import dask.array as da
    import zarr
    from skimage.filters import threshold_otsu

    array = zarr.open_group(str(path), mode="r")["0"]
    stack = da.from_zarr(array)
    stack = stack.reshape(stack.shape[-3:]).rechunk((1, -1, -1))
    with dask.config.set(scheduler="threads", num_workers=threads):
        thresh = threshold_otsu(stack.max(axis=0).compute())
        tables = da.map_blocks(
            _recipe_block, stack, thresh, dtype=object, chunks=((1,) * stack.shape[0], (1,), (1,))
        ).compute()
    frames = [t for t in tables.ravel() if len(t)] or [tables.ravel()[0]]
    return pd.concat(frames, ignore_index=True)


def _recipe_block(plane: np.ndarray, thresh: float, block_info=None) -> np.ndarray:
    z = block_info[0]["array-location"][0][0]
    table = recipe_detections(plane, threshold=thresh)
    table["z"] = float(z)
    out = np.empty((1, 1, 1), object)
    out[0, 0, 0] = table
    return out


def _recipe_dask_child(path: str, out: str) -> None:
    """Run the dask port of the recipe in this process; print its seconds (imports excluded)."""
    import warnings

    warnings.filterwarnings("ignore", message="Bad rank filter performance")
    recipe_detections(np.zeros((1, 16, 16), np.uint16) + np.arange(16, dtype=np.uint16))  # warm
    threads = len(os.sched_getaffinity(0))
    started, cpu = time.perf_counter(), time.process_time()
    table = _dask_recipe_detections(Path(path), threads)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    table.to_parquet(out, index=False)
    print(json.dumps({"seconds": seconds, "cpu": cpu}))


# --------------------------------------------------------------------------- measuring


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_timed(cmd: list[str], env: dict | None = None) -> tuple[float, float, int, str]:
    """Run a command; return (wall s, CPU s of its process tree, peak tree RSS, stdout)."""
    cpu0 = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with TreeRSS(proc.pid, interval=0.02) as sampler:
        stdout, stderr = proc.communicate()
    seconds = time.perf_counter() - started
    peak = sampler.peak
    if proc.returncode:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}):\n{stderr[-3000:]}")
    return seconds, _children_cpu() - cpu0, peak, stdout


def run_recipe(
    stack_path: Path, out: Path, *, port: bool = False
) -> tuple[float, float, float, int]:
    """(recipe seconds, recipe CPU seconds, process wall seconds, peak RSS).

    ``port``: the dask port of the recipe (:func:`_dask_recipe_detections`).
    """
    flag = "--_recipe-dask" if port else "--_recipe"
    cmd = [sys.executable, __file__, flag, str(stack_path), str(out)]
    wall, _, peak, stdout = run_timed(cmd)
    got = json.loads(stdout.strip().splitlines()[-1])
    return got["seconds"], got["cpu"], wall, peak


def run_vol(stack_path: Path, folder: Path, sigmas: tuple[float, float]) -> tuple:
    """(VOL seconds, VOL CPU seconds, process wall seconds, peak RSS, nuclei) of one VOL run.

    Voronoi-Otsu-Labeling as its users run it: the real package, in the peers' environment
    (``make bench-env``), on the whole stack in memory, serial, by ``bench/_vol_worker.py``.
    Its seconds are the ``voronoi_otsu_labeling`` call alone (imports, reading the ``.npy``
    and writing the labels excluded, as for the recipe); the stack is saved as ``.npy`` once,
    untimed, since that environment does not read bigseg's Zarr.
    """
    from peers import PEERS_PYTHON, WORKER

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "image.npy", _read_stack(stack_path)[None])
    (folder / "pairs.json").write_text(json.dumps([list(sigmas)]))
    wall, _, peak, _ = run_timed([str(PEERS_PYTHON), str(WORKER), str(folder)])
    seconds = json.loads((folder / "seconds.json").read_text())[0]
    cpu = json.loads((folder / "cpu.json").read_text())[0]
    labels = np.load(folder / "labels_0.npy", mmap_mode="r")
    nuclei = len(np.unique(labels)) - 1
    (folder / "labels_0.npy").unlink()
    return seconds, cpu, wall, peak, nuclei


def run_bigseg(
    stack_path: Path, out: Path, preset: str, extra: list[str], source: str | None = None
) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, peak RSS) of one ``bigseg segment`` process.

    ``source``: a directory holding another ``bigseg`` package to run instead (a reference
    version, e.g. an exported commit), put first on ``PYTHONPATH``.
    """
    shutil.rmtree(out, ignore_errors=True)
    exe = Path(sys.executable).with_name("bigseg")
    cmd = [str(exe), "segment", str(stack_path), "-o", str(out), "--preset", preset, "-q"]
    env = None
    if source:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")]),
        }
    wall, cpu, peak, _ = run_timed(cmd + extra, env)
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


def _same_outputs(out: Path, ref: Path) -> bool | None:
    """Whether two runs wrote the same detections and labels (None without the reference)."""
    if not ref.exists():
        return None
    import zarr

    cols = ["t", "z", "label"]
    a = pd.read_parquet(out / "detections.parquet").sort_values(cols).reset_index(drop=True)
    b = pd.read_parquet(ref / "detections.parquet").sort_values(cols).reset_index(drop=True)
    la = zarr.open_group(str(out / "labels.zarr"), mode="r")["0"][...]
    lb = zarr.open_group(str(ref / "labels.zarr"), mode="r")["0"][...]
    return a.equals(b) and np.array_equal(la, lb)


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


# --------------------------------------------------------------------------- default, per kernel

#: Published per-core speeds of classic pipeline steps (other machines; docs/speed.md).
PEERS = {
    "smoothing": "3D Gaussian ~26",
    "markers": "connected components ~110",
    "watershed": "3D watershed ~1.1",
    "total": "whole pipelines ~1-7",
}


def gil_hold(fn, *args, **kwargs):
    """Run ``fn``; return (its result, the longest time in s a Python thread could not run).

    A second thread spins on the clock while ``fn`` runs, with a 0.5 ms switch interval:
    its longest gap is the longest stretch for which ``fn`` held the GIL.
    """
    import threading

    worst = [0.0]
    stop = threading.Event()

    def tick():
        last = time.perf_counter()
        while not stop.is_set():
            now = time.perf_counter()
            worst[0] = max(worst[0], now - last)
            last = now

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)
    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    time.sleep(0.005)
    try:
        result = fn(*args, **kwargs)
    finally:
        stop.set()
        ticker.join()
        sys.setswitchinterval(interval)
    return result, worst[0]


class Stages:
    """CPU seconds (and the longest GIL hold) per named stage, summed over calls."""

    def __init__(self, gil: bool):
        self.cpu: dict[str, float] = {}
        self.gil: dict[str, float] = {}
        self.measure_gil = gil

    def __call__(self, name: str, fn, *args, **kwargs):
        # Timed alone (the spinning thread would count in the process's CPU time), then run
        # twice more beside it: the shorter of the two longest gaps, since the machine's
        # other load deschedules the spinning thread at random, while a kernel holds the
        # GIL the same way every time.
        started = time.process_time()
        result = fn(*args, **kwargs)
        self.cpu[name] = self.cpu.get(name, 0.0) + time.process_time() - started
        if self.measure_gil:
            held = min(gil_hold(fn, *args, **kwargs)[1] for _ in range(2))
            self.gil[name] = max(self.gil.get(name, 0.0), held)
        return result


def _without_compiled(fn, *args, **kwargs):
    """``fn`` with the compiled kernels turned off (SciPy's filters: the same values)."""
    from bigseg.kernels import filters

    before = os.environ.get(filters.COMPILED_VARIABLE)
    os.environ[filters.COMPILED_VARIABLE] = "0"
    try:
        return fn(*args, **kwargs)
    finally:
        if before is None:
            del os.environ[filters.COMPILED_VARIABLE]
        else:
            os.environ[filters.COMPILED_VARIABLE] = before


def _smooth_scipy(volume, sigma, margin):
    from scipy import ndimage as ndi

    from bigseg.kernels import filters

    smoothed = ndi.gaussian_filter(
        volume.astype(np.float32), sigma, mode="nearest", truncate=filters.TRUNCATE
    )
    return smoothed[tuple(slice(b, n - a) for n, (b, a) in zip(smoothed.shape, margin))]


def _opening_scipy(smoothed, size):
    from scipy import ndimage as ndi

    low = ndi.minimum_filter(smoothed, size=size, mode="nearest")
    out = smoothed - ndi.maximum_filter(low, size=size, mode="nearest")
    np.maximum(out, 0.0, out=out)
    return out


def _split_apart(filled, apart, clock):
    """``kernels.watershed.split_plane_apart``, step by step (the bench checks it is the same).

    The compiled distance and flood against SciPy's per-box transform and scikit-image's
    watershed ("before"), which must give the same values.
    """
    from skimage.segmentation import watershed

    from bigseg.kernels import watershed as kw

    distance = clock("distance", kw.distance_to_background, filled)
    before = clock(
        "distance, SciPy per box (before)", _without_compiled, kw.distance_to_background, filled
    )
    assert np.array_equal(distance, before), "the compiled distance differs"

    def markers():
        chosen = kw.markers_apart(distance, kw.label_plane(filled)[0], apart=apart)
        mask = np.zeros(filled.shape, bool)
        mask[tuple(chosen.T)] = True
        return kw.label_plane(mask)[0], chosen

    marks, chosen = clock("markers", markers)
    # flood_levels consumes its distance, and the clock runs a stage three times: a copy
    # each time (about 0.5 ms of the row).
    levels = clock("flooding levels", lambda d, c: kw.flood_levels(d.copy(), c), distance, chosen)
    labels = clock("watershed", kw.flood, levels, marks, filled)
    before = clock("watershed, scikit-image (before)", watershed, levels, marks, mask=filled)
    assert np.array_equal(labels, before), "the compiled flood differs"
    return labels


def _blocks(nz: int, block: int, reach: int) -> list[tuple[int, int]]:
    """z ranges of chunks of ``block`` planes merged up to ``reach``, as the pipeline's halo map."""
    import dask.array as da

    chunks = (block,) * (nz // block) + ((nz % block,) if nz % block else ())
    if len(chunks) > 1 and min(chunks) < reach:
        chunks = da.overlap.ensure_minimum_chunksize(min(reach, nz), chunks)
    edges = np.cumsum((0, *chunks))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _signal_blocks(shape, block: int, threads: int):
    """``(z0, z1, y0, y1)`` of the blocks a run computes the kept signal in, and their chunks.

    As ``pipeline.passes.signal_blocks`` plans them (``chunked.plan.stored_pass_chunks``,
    the default method's ``floor`` pass) for ``threads`` threads and a budget they fit.
    """
    from bigseg.chunked.plan import stored_pass_chunks
    from bigseg.methods import default as dm
    from bigseg.params import Params

    (floor,) = [p for p in dm.memory(Params(), SCALE, 0) if p.name == "floor"]
    nz, ny, nx = shape
    z_chunks = (block,) * (nz // block) + ((nz % block,) if nz % block else ())
    chunks = ((1,), z_chunks, (ny,), (nx,))
    planned = stored_pass_chunks((1, *shape), chunks, floor, 2**34, itemsize=2, threads=threads)
    zs, ys = (np.cumsum((0, *c)) for c in planned[1:3])
    blocks = [
        (int(z0), int(z1), int(y0), int(y1))
        for z0, z1 in zip(zs[:-1], zs[1:])
        for y0, y1 in zip(ys[:-1], ys[1:])
    ]
    return blocks, planned


def _warm_compiled(stack: np.ndarray, lp) -> None:
    """Load every compiled kernel from numba's cache once, untimed, on a corner of ``stack``.

    A run pays each load once per process (0.1-0.3 s, in its first task of each pass);
    the table gives the steady cost per plane, which the first plane would otherwise carry.
    """
    from bigseg.kernels import filters, threshold
    from bigseg.kernels import watershed as kw
    from bigseg.methods import default as dm

    corner = stack[:8, :128, :128]
    signal = dm.signal_volume(corner, lp, ((0, 0),) * 3)[0]
    threshold.linear_histogram(signal, low=0.0, width=1.0, nbins=threshold.LINEAR_BINS)
    threshold.difference_histogram(corner, start=0, stop=corner.shape[-1] - 1, width=1.0)
    filters.local_foreground(signal, float(signal.mean()), fraction=0.5, size=lp.size)
    yy, xx = np.mgrid[:64, :64]
    discs = ((yy - 20) ** 2 + (xx - 20) ** 2 < 100) | ((yy - 36) ** 2 + (xx - 38) ** 2 < 120)
    kw.segment_signal(discs[None].astype(np.float32), apart=0.8, min_radius=1.0, max_radius=20.0)


def default_stages(
    stack: np.ndarray, *, block: int = 4, gil: bool = True, threads: int = 2
) -> list[tuple]:
    """Run the default method's kernels on a whole ``(z, y, x)`` stack here, one thread.

    Returns rows ``(stage, CPU s, longest GIL hold s)``.  Steps are those of
    ``methods.default`` on whole-plane blocks of ``block`` planes, each grown by its reach;
    the signal is computed once, in the blocks a run on ``threads`` threads computes it in
    (:func:`_signal_blocks`: here the whole stack in y parts, each grown by the y reach),
    kept (in a raw float32 file, as a run keeps it; and in Zarr, as it did before) and
    read back by the pre-pass, as in a run (what computing it again cost is timed too);
    the result is checked against ``kernels.watershed.segment_signal``, the compiled
    kernels against the SciPy / NumPy code they replaced (timed too, marked "before").
    """
    import zarr
    from skimage.morphology import remove_small_holes

    from bigseg import cluster
    from bigseg.io import WRITE_CONFIG
    from bigseg.io.raw import RawArray
    from bigseg.kernels import filters, lut, regions, threshold
    from bigseg.kernels import watershed as kw
    from bigseg.measure import measure_planes
    from bigseg.methods import default as dm
    from bigseg.params import Params
    from bigseg.reads import read_by_chunks

    clock = Stages(gil)
    params = Params()
    lp = dm.local_pixels(params, SCALE)
    _warm_compiled(stack, lp)
    width = (float(np.iinfo(stack.dtype).max) + 1.0) / threshold.LINEAR_BINS
    nz = stack.shape[0]
    # The signal's blocks as a run's (whole storage chunks merged along z, planes cut in y),
    # each grown by the reach of the smoothing and the map (threshold pass, whose signal a
    # run keeps); then z blocks of ``block`` planes grown by the local box's radius (pre-pass,
    # reading the kept signal back).
    reach, reach_y = dm.signal_reach(lp)[:2]
    box = (lp.size[0] - 1) // 2
    counts = np.zeros(threshold.LINEAR_BINS, np.int64)
    differences = np.zeros(threshold.LINEAR_BINS, np.int64)
    blocks, planned = _signal_blocks(stack.shape, block, threads)
    # As a run keeps it: one raw float32 file (on disk, in the system's cache), and before
    # that a Zarr array of Blosc-LZ4 chunks where the signal's blocks and the stack's meet.
    scratch = tempfile.TemporaryDirectory()
    kept = RawArray.create(Path(scratch.name) / "kept.f32", stack.shape, np.float32)
    zarr_chunks = (block, planned[2][0], stack.shape[2])
    kept_zarr = zarr.create_array(
        store=zarr.storage.LocalStore(Path(scratch.name) / "kept.zarr"),
        shape=stack.shape,
        chunks=zarr_chunks,
        dtype=np.float32,
        compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle="shuffle"),
        config={"write_empty_chunks": True},
    )
    fg_signal = np.zeros(stack.shape, np.float32)
    for z0, z1, y0, y1 in blocks:
        lo, hi = (max(z0 - reach, 0), min(z1 + reach, nz)) if len(planned[1]) > 1 else (0, nz)
        ny = stack.shape[1]
        ylo, yhi = (max(y0 - reach_y, 0), min(y1 + reach_y, ny)) if len(planned[2]) > 1 else (0, ny)
        margin = ((z0 - lo, hi - z1), (y0 - ylo, yhi - y1), (0, 0))
        # methods.default.signal_volume, step by step.
        smooth_m, map_m, _ = dm.signal_margins(margin, None, lp)
        smoothed = clock(
            "smoothing (3D Gaussian, compiled)",
            filters.smooth_volume,
            stack[lo:hi, ylo:yhi],
            lp.sigma,
            margin=smooth_m,
        )
        plain = clock(
            "smoothing, SciPy (before)",
            _smooth_scipy,
            stack[lo:hi, ylo:yhi],
            lp.sigma,
            smooth_m,
        )
        assert np.array_equal(smoothed, plain), "the compiled smoothing differs"
        signal = clock(
            "background map (compiled opening)",
            filters.above_background,
            smoothed,
            lp.background,
            margin=map_m,
        )
        before = clock(
            "background map, SciPy filters (before)", _opening_scipy, smoothed, lp.background
        )
        core = tuple(slice(b, n - a) for n, (b, a) in zip(smoothed.shape, map_m))
        assert np.array_equal(signal, before[core]), "the compiled opening differs"
        counts += clock(
            "floor (histogram, compiled)",
            threshold.linear_histogram,
            signal,
            low=0.0,
            width=width,
            nbins=threshold.LINEAR_BINS,
        )
        plain = clock(
            "floor (histogram, NumPy, before)",
            threshold._linear_histogram,
            signal,
            low=0.0,
            width=width,
            nbins=threshold.LINEAR_BINS,
        )
        assert np.array_equal(plain, threshold.linear_histogram(
            signal, low=0.0, width=width, nbins=threshold.LINEAR_BINS
        )), "the compiled histogram differs"  # fmt: skip
        differences += clock(
            "noise (neighbours' differences, compiled)",
            threshold.difference_histogram,
            stack[z0:z1, y0:y1],
            start=0,
            stop=stack.shape[2] - 1,
            width=width,
        )

        def keep(signal=signal, z0=z0, z1=z1, y0=y0, y1=y1, array=kept):
            array[z0:z1, y0:y1] = signal

        clock("kept signal (raw float32 write)", keep)
        clock("kept signal, Zarr Blosc-LZ4 write (before)", keep, array=kept_zarr)
    # The signal as the pipeline computed it before its blocks of their own: the stack's
    # chunks merged up to the z reach, each grown by it (smoothing and map together).
    for z0, z1 in _blocks(nz, block, reach):
        lo, hi = max(z0 - reach, 0), min(z1 + reach, nz)
        old, _ = clock(
            "signal in the stack's z blocks merged up to its reach (before)",
            dm.signal_volume,
            stack[lo:hi],
            lp,
            ((z0 - lo, hi - z1), (0, 0), (0, 0)),
        )
        assert np.array_equal(old, kept[z0:z1]), "the signal of the z blocks differs"
    noise = threshold.noise_of_differences(differences, width=width, step=max(width, 1.0))
    floor = threshold.floor_above_background(counts, low=0.0, width=width, noise=noise)
    base = dm.LOCAL_BASE * floor
    for z0, z1 in _blocks(nz, block, box):
        lo, hi = max(z0 - box, 0), min(z1 + box, nz)
        rest = ((z0 - lo, hi - z1), (0, 0), (0, 0))
        signal = clock("kept signal (read back, grown)", kept.__getitem__, slice(lo, hi))
        before = clock(
            "kept signal, Zarr read back, grown (before)",
            read_by_chunks,
            kept_zarr,
            slice(lo, hi),
            zarr_chunks,
        )
        assert np.array_equal(signal, before), "the raw kept signal differs"
        options = dict(
            fraction=params.local_fraction,
            size=lp.size,
            margin=rest,
            base=base,
            bright=(dm.BRIGHT_FROM * floor, dm.BRIGHT_TO * floor),  # as methods.default
        )
        fg = clock("local maximum (foreground)", filters.local_foreground, signal, floor, **options)
        plain = clock(
            "local maximum, SciPy filter (before)",
            _without_compiled,
            filters.local_foreground,
            signal,
            floor,
            **options,
        )
        assert np.array_equal(fg, plain), "the compiled local maximum differs"
        inside = tuple(slice(b, n - a) for n, (b, a) in zip(signal.shape, rest))
        fg_signal[z0:z1] = np.where(fg, signal[inside], np.float32(0))
    # What the kept signal saves: the pre-pass computed it again from the stack, on blocks
    # merged up to its reach (the signal's and the local box's) and grown by it.
    for z0, z1 in _blocks(nz, block, reach + box):
        lo, hi = max(z0 - reach - box, 0), min(z1 + reach + box, nz)
        again, rest = clock(
            "pre-pass computing the signal again (before)",
            dm.signal_volume,
            stack[lo:hi],
            lp,
            ((z0 - lo, hi - z1), (0, 0), (0, 0)),
            inner=(box, 0, 0),
        )
        (b, a) = rest[0]
        assert np.array_equal(again, kept[z0 - b : z1 + a]), "the kept signal differs"
    px = params.in_pixels(SCALE)
    labels = np.zeros(stack.shape, np.int32)
    for z, plane in enumerate(fg_signal):
        if not plane.any():
            continue
        filled = clock("holes filled", kw.filled_plane, plane > 0, max_radius=px.max_radius)
        before = clock(
            "holes filled, scikit-image (before)",
            remove_small_holes,
            plane > 0,
            max_size=int(np.pi * px.max_radius**2),
        )
        assert np.array_equal(filled, before), "the compiled hole filling differs"
        split = _split_apart(filled, dm.MARKER_APART, clock)
        sizes = dict(min_radius=dm.PLANE_FRACTION * px.min_radius, max_radius=px.max_radius)
        labels[z] = clock("size filter", kw.filter_sizes, split, **sizes)
        before = clock(
            "size filter, NumPy (before)", _without_compiled, kw.filter_sizes, split, **sizes
        )
        assert np.array_equal(labels[z], before), "the compiled size filter differs"
    assert np.array_equal(
        labels,
        kw.segment_signal(
            fg_signal,
            apart=dm.MARKER_APART,
            min_radius=dm.PLANE_FRACTION * px.min_radius,
            max_radius=px.max_radius,
        ),
    ), "the step-by-step split differs from segment_signal"
    for z in range(stack.shape[0]):
        clock("region sums", regions.region_sums, labels[z], stack[z])
    detections = clock("measuring (tables)", measure_planes, labels[None], stack[None], scale=SCALE)
    linked = clock("linking", cluster.link, detections, params=params, scale=SCALE)
    rows = linked[["t", "z", "label", "nucleus"]].to_numpy(np.int64)
    table = clock(
        "label writing (lookup table)",
        lut.lookup_tables,
        (1,),
        np.zeros(len(rows), np.int64),
        rows[:, 0],
        rows[:, 1],
        rows[:, 2],
        rows[:, 3].astype(np.uint32),
        np.uint32,
    )[0]
    relabelled = clock("label writing (lookup table)", lut.apply_lut, labels[None], table)

    def write(config=WRITE_CONFIG):
        out = zarr.create_array(
            store=zarr.storage.MemoryStore(),
            shape=stack.shape,
            chunks=(1, *stack.shape[1:]),
            dtype=np.uint32,
            compressors=zarr.codecs.ZstdCodec(level=1),
            config=config,
        )
        out[...] = relabelled[0]

    clock("label writing (zstd encode)", write)
    clock("label writing, each chunk compared with 0 first (before)", write, {})
    scratch.cleanup()
    return [(name, cpu, clock.gil.get(name, float("nan"))) for name, cpu in clock.cpu.items()]


def print_default_stages(stack_path: Path, planes: int, size: int) -> None:
    _read_stack(stack_path)  # imports, and the file system's cache
    started = time.process_time()
    stack = _read_stack(stack_path)
    decode = time.process_time() - started
    idle = min(gil_hold(time.sleep, 0.5)[1] for _ in range(2))  # the machine's other load
    voxels = stack.size
    middle = stack.shape[0] // 2
    default_stages(stack[max(middle - 2, 0) : middle + 2, :128, :128], gil=False)  # compile
    rows = default_stages(stack)
    print(
        f"\n### default method per kernel: {planes} x {size} x {size} uint16, one thread, "
        "Mvoxel/s per core (voxels / CPU s)"
    )
    print("| stage | CPU s per plane | Mvoxel/s per core | longest GIL hold | peers (per core) |")
    print("|---|---:|---:|---:|---|")
    print(
        f"| input decode (Blosc-zstd, the codec's floor) | {decode / planes:.4f} | "
        f"{voxels / decode / 1e6:.0f} | | |"
    )
    print(
        f"| (nothing: `time.sleep(0.5)`, the gap other load on the machine makes) | | | "
        f"{idle * 1e3:.0f} ms | |"
    )
    total = 0.0
    for name, cpu, held in rows:
        if "(before)" not in name:
            total += cpu
        peer = next((v for k, v in PEERS.items() if name.startswith(k)), "")
        print(
            f"| {name} | {cpu / planes:.4f} | {voxels / max(cpu, 1e-9) / 1e6:.1f} | "
            f"{held * 1e3:.0f} ms | {peer} |"
        )
    print(
        f"| **all kernels** | {total / planes:.4f} | {voxels / total / 1e6:.2f} | | "
        f"{PEERS['total']} |"
    )


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
    port = not args.no_dask_recipe and presets != ["seed"]  # not on the large stack
    vol = args.vol and presets != ["seed"]
    runs = (["recipe dask"] if port else []) + (["VOL"] if vol else []) + list(presets)
    for p in runs:
        times[p], cpus[p], peaks[p] = [], [], 0
    mismatch = port_mismatch = None
    # One untimed run of each bigseg version first: numba compiles a version's loops into its
    # own cache on its first run (seconds), which a user pays once, not per run.
    for p in presets:
        preset, _, ref = p.partition("@")
        run_bigseg(stack_path, work / f"out-{p}", preset, extra, args.reference if ref else None)
    for rep in range(repeats):
        secs, cpu, wall, peak = run_recipe(stack_path, work / "recipe.parquet")
        times["recipe"].append(secs)
        cpus["recipe"].append(cpu)
        times["recipe process"].append(wall)
        peaks["recipe"] = max(peaks["recipe"], peak)
        line = [f"recipe {secs:.2f} s (CPU {cpu:.2f} s)"]
        if port:
            secs, cpu, _, peak = run_recipe(stack_path, work / "recipe-dask.parquet", port=True)
            times["recipe dask"].append(secs)
            cpus["recipe dask"].append(cpu)
            peaks["recipe dask"] = max(peaks["recipe dask"], peak)
            line.append(f"dask recipe {secs:.2f} s (CPU {cpu:.2f} s)")
            if rep == 0:
                port_mismatch = same_detections(
                    pd.read_parquet(work / "recipe.parquet"),
                    pd.read_parquet(work / "recipe-dask.parquet"),
                )
        if vol:
            secs, cpu, _, peak, n_vol = run_vol(stack_path, work / "vol", tuple(args.vol_sigmas))
            times["VOL"].append(secs)
            cpus["VOL"].append(cpu)
            peaks["VOL"] = max(peaks["VOL"], peak)
            line.append(f"VOL {secs:.2f} s (CPU {cpu:.2f} s, {n_vol} nuclei)")
        for p in presets:
            preset, _, ref = p.partition("@")
            source = args.reference if ref else None
            wall, cpu, peak = run_bigseg(stack_path, work / f"out-{p}", preset, extra, source)
            times[p].append(wall)
            cpus[p].append(cpu)
            peaks[p] = max(peaks[p], peak)
            line.append(f"{p} {wall:.2f} s (CPU {cpu:.2f} s)")
            if p == "seed" and rep == 0:
                found = pd.read_parquet(work / "out-seed" / "detections.parquet")
                mismatch = same_detections(pd.read_parquet(work / "recipe.parquet"), found)
                n_det = len(found)
        print(f"  run {rep + 1}: " + ", ".join(line), flush=True)
        if rep == 0:
            same = {p: _same_outputs(work / f"out-{p}", work / f"out-{p}@ref") for p in presets}
            same = {p: v for p, v in same.items() if v is not None}
    cores = len(os.sched_getaffinity(0))
    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
    dask_col = " vs dask recipe |" if port else ""
    print(
        "\n| run | median s | Mvoxel/s | Mvoxel/s per core | vs recipe |"
        + dask_col
        + " CPU s | CPU vs recipe | peak memory |"
    )
    print("|---|---:|---:|---:|---:|" + ("---:|" if port else "") + "---:|---:|---:|")
    for name in ["recipe", *runs]:
        used = 1 if name in ("recipe", "VOL") else cores
        label = {
            "recipe": "recipe (serial, in memory)",
            "recipe dask": f"recipe, dask port (map_blocks over planes, {cores} threads)",
            "VOL": "Voronoi-Otsu-Labeling, sigmas {:g}, {:g} (serial, in memory)".format(
                *args.vol_sigmas
            ),
        }.get(name, f"bigseg --preset {name}")
        label = label.replace("@ref", " (reference version)")
        rate = voxels / med[name] / 1e6
        vs_port = f" {med['recipe dask'] / med[name]:.1f}x |" if port else ""
        print(
            f"| {label} | {med[name]:.2f} | {rate:.2f} | {rate / used:.2f} | "
            f"{med['recipe'] / med[name]:.1f}x |{vs_port} {cpu_med[name]:.2f} | "
            f"{cpu_med['recipe'] / cpu_med[name]:.1f}x | {peaks[name] / 2**20:.0f} MiB |"
        )
    if port:
        print(
            "per-plane detections recipe vs its dask port: "
            + ("identical" if not port_mismatch else f"DIFFER: {port_mismatch}")
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
    if vol:
        print(
            f"default preset's speed / VOL's: {med['VOL'] / med['default']:.2f}x in wall time "
            f"(bigseg's process start included, VOL's call alone), "
            f"{cpu_med['VOL'] / cpu_med['default']:.2f}x per CPU second (VOL: {n_vol} nuclei, "
            f"bigseg: {len(pd.read_parquet(work / 'out-default' / 'nuclei.parquet'))})"
        )
    for p, ok in same.items():
        ratio = med[f"{p}@ref"] / med[p]
        print(
            f"--preset {p}: {ratio:.2f}x the reference version's speed (median wall, same run); "
            f"detections and labels {'identical' if ok else 'DIFFER'} to the reference's"
        )
    return {"median": med, "mismatch": mismatch or port_mismatch}


def _same_up_to_ids(out: Path, ref: Path) -> str:
    """How two runs' outputs compare: identical, the same up to ids, or what differs."""
    import zarr

    a, b = (pd.read_parquet(p / "nuclei.parquet") for p in (out, ref))
    la = zarr.open_group(str(out / "labels.zarr"), mode="r")["0"][...]
    lb = zarr.open_group(str(ref / "labels.zarr"), mode="r")["0"][...]
    if a.equals(b) and np.array_equal(la, lb):
        return "identical"
    cols = ["t", "z", "y", "x"]
    a, b = (t.drop(columns="nucleus").sort_values(cols, ignore_index=True) for t in (a, b))
    if len(a) != len(b) or not np.allclose(a.to_numpy(float), b.to_numpy(float), rtol=1e-9):
        return f"nuclei differ ({len(a)} against {len(b)})"
    pairs = np.unique(np.stack([la.ravel(), lb.ravel()]), axis=1)
    one_to_one = len(np.unique(pairs[0])) == len(np.unique(pairs[1])) == pairs.shape[1]
    return "same up to ids" if one_to_one else "labels differ"


def bench_memory_limits(args, work: Path) -> int:
    """``bigseg segment`` on the stack with each ``--memory-limit``: wall, CPU, peak, blocks.

    Each limit (``none``: the command's default, no limit) runs ``--repeats`` times,
    alternating, with this version and, given ``--reference``, that one; ratios are to the
    same version's run without a limit, in the same bench run; outputs are compared with
    that run's.
    """
    from bigseg.synth import synth

    shape = (args.planes, args.size, args.size)
    nuclei = max(1, round(NUCLEI_PER_MVOXEL * np.prod(shape) / 1e6))
    stack_path = work / f"stack{args.planes}.ome.zarr"
    synth(stack_path, shape=shape, nuclei=nuclei, scale=SCALE, seed=args.seed,
          overwrite=True, brightness=tuple(args.brightness))  # fmt: skip
    versions = ["this"] + (["reference"] if args.reference else [])
    runs = [(v, limit) for limit in args.memory_limits for v in versions]
    print(
        f"\n## --memory-limit on {args.planes} x {args.size} x {args.size} uint16 (storage "
        f"chunks of 4 planes), default preset, {args.repeats} repeats, alternating",
        flush=True,
    )
    times: dict = {r: [] for r in runs}
    cpus: dict = {r: [] for r in runs}
    peaks: dict = dict.fromkeys(runs, 0)
    for v in versions:  # numba compiles each version's loops once (untimed)
        run_bigseg(stack_path, work / f"warm-{v}", "default", [],
                   args.reference if v == "reference" else None)  # fmt: skip
    for _ in range(args.repeats):
        for v, limit in runs:
            extra = [] if limit == "none" else ["--memory-limit", limit]
            out = work / f"out-{v}-{limit}"
            wall, cpu, peak = run_bigseg(stack_path, out, "default", extra,
                                         args.reference if v == "reference" else None)  # fmt: skip
            times[(v, limit)].append(wall)
            cpus[(v, limit)].append(cpu)
            peaks[(v, limit)] = max(peaks[(v, limit)], peak)
            print(f"{v} {limit}: {wall:.2f} s (CPU {cpu:.2f} s, peak {peak / 2**20:.0f} MiB)",
                  flush=True)  # fmt: skip
    print(
        "\n| version | --memory-limit | budget per task | work blocks (z x y x x) | signal "
        "kept | wall s | ratio to no limit | CPU s | peak RSS | outputs vs no limit |"
    )
    print("|---|---|---:|---|---|---:|---:|---:|---:|---|")
    for v, limit in runs:
        out = work / f"out-{v}-{limit}"
        record = json.loads((out / "run.json").read_text())["work_blocks"]
        block = " x ".join(str(max(c)) for c in record["chunks"][-3:])
        kept = {True: "yes", False: "no"}.get(record.get("kept_signal"), "(not recorded)")
        wall = statistics.median(times[(v, limit)])
        base = statistics.median(times[(v, "none")]) if (v, "none") in times else float("nan")
        same = _same_up_to_ids(out, work / f"out-{v}-none") if limit != "none" else ""
        print(
            f"| {v} | {limit} | {record['budget_bytes'] / 2**20:.0f} MiB | {block} | {kept} | "
            f"{wall:.2f} | {wall / base:.2f}x | {statistics.median(cpus[(v, limit)]):.2f} | "
            f"{peaks[(v, limit)] / 2**20:.0f} MiB | {same} |"
        )
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")
    return 0


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
    parser.add_argument(
        "--reference",
        help="a directory holding another bigseg package (e.g. `git archive` of main): its "
        "presets run alternating with this one's, and their outputs are compared",
    )
    parser.add_argument(
        "--default-stages",
        action="store_true",
        help="the default method's per-kernel table (Mvoxel/s per core, GIL) on the stack",
    )
    parser.add_argument(
        "--no-dask-recipe",
        action="store_true",
        help="skip the dask port of the recipe (map_blocks over planes, all threads)",
    )
    parser.add_argument(
        "--vol",
        action="store_true",
        help="also time Voronoi-Otsu-Labeling (needs the peers' environment: make bench-env)",
    )
    parser.add_argument(
        "--vol-sigmas",
        nargs=2,
        type=float,
        default=(2.0, 2.0),
        metavar=("SPOT", "OUTLINE"),
        help="VOL's spot and outline sigmas in pixels (default: its own, 2 2)",
    )
    parser.add_argument(
        "--memory-limits",
        nargs="+",
        metavar="LIMIT",
        help="only time `bigseg segment --memory-limit LIMIT` on the stack for each LIMIT "
        "(`none`: no limit, the reference for the ratios), e.g. none 1GiB 600MiB 400MiB",
    )
    parser.add_argument("--_recipe", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--_recipe-dask", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._recipe:
        _recipe_child(*args._recipe)
        return 0
    if args._recipe_dask:
        _recipe_dask_child(*args._recipe_dask)
        return 0

    import platform

    if args.vol:
        from peers import PEERS_PYTHON

        if not PEERS_PYTHON.exists():
            parser.error(f"--vol needs {PEERS_PYTHON}: create it with `make bench-env`.")

    print(
        f"# bench/speed.py on {platform.node()}: {len(os.sched_getaffinity(0))} cores, "
        f"load average {os.getloadavg()[0]:.2f} at start, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    with tempfile.TemporaryDirectory(prefix="bigseg-speed-") as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.memory_limits:
            limits = list(dict.fromkeys(["none", *args.memory_limits]))
            return bench_memory_limits(
                argparse.Namespace(**{**vars(args), "memory_limits": limits}), work
            )
        presets = ["seed", "default"]
        if args.reference:
            presets += [f"{p}@ref" for p in presets]
        small = bench_stack(args, work, args.planes, presets, args.repeats)
        if args.default_stages:
            print_default_stages(work / f"stack{args.planes}.ome.zarr", args.planes, args.size)
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
