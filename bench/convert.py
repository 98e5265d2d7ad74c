"""Memory of ``bigseg convert``: peak RSS of the process tree converting a large TIFF.

Writes a TIFF of ``--planes`` untiled 2048 x 2048 uint16 pages (256 pages: 2 GiB)
page by page, then runs ``bigseg convert IN OUT.ome.zarr`` in a subprocess while a
thread samples the summed RSS of that process and its children (``_rss.TreeRSS``).
Printed: the input's size, the peak, their ratio, and the peak of a reference
process measured in the same run (the interpreter importing bigseg's converter, its
floor), with seconds.  The files are written under ``--dir`` and removed afterwards
(only those this script wrote).

Example (docs/view.md)::

    python bench/convert.py --planes 256 --dir /tmp/bigseg-convert
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


def measure(command: list[str]) -> tuple[int, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(command)
    with TreeRSS(proc.pid, interval=0.05) as rss:
        code = proc.wait()
    if code:
        raise SystemExit(f"{' '.join(command)} exited with {code}")
    return rss.peak, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planes", type=int, default=256)
    parser.add_argument("--dir", default="/tmp/bigseg-convert")
    parser.add_argument("--threads", type=int, default=None)
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
        floor, _ = measure([sys.executable, "-c", "import bigseg.io.convert, tifffile, zarr"])
        extra = ["--threads", str(args.threads)] if args.threads else []
        peak, seconds = measure(
            [
                *bigseg,
                "convert",
                str(source),
                str(out),
                "-q",
                "--scale",
                "1.5",
                "0.71",
                "0.71",
                *extra,
            ]
        )
        written = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        print(f"input: {args.planes} x 2048 x 2048 uint16 TIFF, {nbytes / MiB:.0f} MiB")
        print(f"reference (imports only): peak tree RSS {floor / MiB:.0f} MiB")
        print(
            f"convert: peak tree RSS {peak / MiB:.0f} MiB ({peak / nbytes:.2f}x the input, "
            f"{peak / floor:.1f}x the reference), {seconds:.0f} s, "
            f"output {written / MiB:.0f} MiB"
        )
    finally:
        source.unlink(missing_ok=True)
        if out.exists():
            shutil.rmtree(out)
        if not os.listdir(root):
            root.rmdir()


if __name__ == "__main__":
    main()
