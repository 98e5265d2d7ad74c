"""Memory and layout of ``bigseg convert``: peak RSS of the process tree converting a large TIFF.

Writes a TIFF of ``--planes`` untiled 2048 x 2048 uint16 pages (256 pages: 2 GiB)
page by page, then runs ``bigseg convert IN OUT.ome.zarr`` in a subprocess, once per
layout (``--layouts``: ``sharded``, the default, and ``plain``, ``--no-shards``) and
number of threads (``--threads``), while a thread samples the summed RSS of that
process and its children (``_rss.TreeRSS``).  Printed per conversion: the peak, its
ratio to the input, seconds, the files and bytes written, and the time (wall and CPU
ms, median of three) to read, through bigseg's reader, one work block grown by the
default method's reach (the block the planner picks for a 512 MiB worker) and one
512² tile of one plane (what a viewer reads); and the peak of a reference process
measured in the same run (the interpreter importing bigseg's converter, its floor).
The files are written under ``--dir`` and removed afterwards (only those this
script wrote).

Example (docs/view.md)::

    python bench/convert.py --planes 256 --dir /tmp/bigseg-convert --threads 2 4
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _rss import TreeRSS  # noqa: E402

MiB = 2**20


def write_tiff(path: Path, planes: int, side: int = 2048) -> int:
    import tifffile

    rng = np.random.default_rng(0)
    noise = rng.integers(100, 400, (side, side), dtype=np.uint16)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for z in range(planes):
            plane = noise.copy()
            plane[(z * 7) % side : (z * 7) % side + 40, 500:560] = 3000
            tif.write(plane, contiguous=True, photometric="minisblack")
    return planes * side * side * 2


def measure(command: list[str]) -> tuple[int, float, float]:
    """Run ``command``: its tree's peak RSS, its wall seconds and its CPU seconds."""
    import resource

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    started, cpu = time.perf_counter(), children_cpu()
    proc = subprocess.Popen(command)
    with TreeRSS(proc.pid, interval=0.05) as rss:
        code = proc.wait()
    if code:
        raise SystemExit(f"{' '.join(command)} exited with {code}")
    return rss.peak, time.perf_counter() - started, children_cpu() - cpu


def read_times(out: Path) -> dict[str, tuple[float, float]]:
    """Wall and CPU ms (medians of 3) to read a grown work block and a 512² tile of ``out``."""
    import statistics

    from bigseg import open_stack
    from bigseg.methods.default import local_pixels, signal_reach
    from bigseg.params import Params
    from bigseg.segment import work_blocks

    stack = open_stack(out)
    params = Params()
    blocks = work_blocks(stack, params, budget=256 * MiB).data.chunks  # 512 MiB, 1 thread
    lp = local_pixels(params, tuple(stack.attrs["scale"].values()))
    reach = [r + (size - 1) // 2 for r, size in zip(signal_reach(lp), lp.size)]
    region = []
    for sizes, grow, n in zip(blocks, reach, stack.shape):
        start = sum(sizes[: min(1, len(sizes) - 1)])  # the second block along each axis
        stop = start + sizes[min(1, len(sizes) - 1)]
        region.append(slice(max(0, start - grow), min(n, stop + grow)))
    z = stack.shape[0] // 2
    cy, cx = stack.shape[1] // 2, stack.shape[2] // 2
    tile = (z, slice(cy - 256, cy + 256), slice(cx - 256, cx + 256))
    times = {}
    for name, key in (("grown block", tuple(region)), ("512² tile", tile)):
        rows = []
        for _ in range(3):
            wall, cpu = time.perf_counter(), time.process_time()
            stack.data[key].compute(scheduler="threads")
            rows.append((time.perf_counter() - wall, time.process_time() - cpu))
        times[name] = tuple(statistics.median(r[k] for r in rows) * 1000 for k in range(2))
    shape = "x".join(str(r.stop - r.start) for r in region)
    times[f"grown block {shape}"] = times.pop("grown block")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=256)
    parser.add_argument("--dir", default="/tmp/bigseg-convert")
    parser.add_argument("--threads", type=int, nargs="+", default=[0], help="0: the default")
    parser.add_argument("--layouts", nargs="+", choices=("sharded", "plain"), default=["sharded"])
    args = parser.parse_args()
    root = Path(args.dir)
    root.mkdir(parents=True, exist_ok=True)
    source, out = root / "stack.tif", root / "stack.ome.zarr"
    for path in (source, out):
        if path.exists():
            raise SystemExit(f"{path} exists; give another --dir")
    try:
        nbytes = write_tiff(source, args.planes)
        bigseg = [sys.executable, "-m", "bigseg.cli"]
        floor, _, _ = measure([sys.executable, "-c", "import bigseg.io.convert, tifffile, zarr"])
        print(f"input: {args.planes} x 2048 x 2048 uint16 TIFF, {nbytes / MiB:.0f} MiB")
        print(f"reference (imports only): peak tree RSS {floor / MiB:.0f} MiB")
        for layout in args.layouts:
            for threads in args.threads:
                extra = ["--threads", str(threads)] if threads else []
                extra += ["--no-shards"] if layout == "plain" else []
                command = [*bigseg, "convert", str(source), str(out), "-q", "--scale"]
                peak, seconds, cpu = measure([*command, "1.5", "0.71", "0.71", *extra])
                files = [f for f in out.rglob("*") if f.is_file()]
                written = sum(f.stat().st_size for f in files)
                reads = "; ".join(
                    f"{name} {wall:.0f} ms ({cpu:.0f} CPU)"
                    for name, (wall, cpu) in read_times(out).items()
                )
                print(
                    f"convert, {layout}, threads {threads or 'default'}: peak tree RSS "
                    f"{peak / MiB:.0f} MiB ({peak / nbytes:.2f}x the input, "
                    f"{peak / floor:.1f}x the reference), {seconds:.0f} s ({cpu:.0f} s CPU), "
                    f"{len(files)} files, "
                    f"{written / MiB:.0f} MiB; reads: {reads}",
                    flush=True,
                )
                shutil.rmtree(out)
    finally:
        source.unlink(missing_ok=True)
        if out.exists():
            shutil.rmtree(out)
        if not os.listdir(root):
            root.rmdir()


if __name__ == "__main__":
    main()
