"""Fetch StarDist's 2D test image (real, dense nuclei, with labels) into ``.cache/real/``.

Run from the repository root (``make real-2d`` runs it)::

    .venv/bin/python bench/fetch_real.py

``../shared/data`` holds no 2D image with truth.  The stardist wheel on PyPI ships one:
``stardist/data/images/img2d.tif``, a fluorescence image of dense, touching HeLa-like
nuclei from the 2018 Data Science Bowl (Caicedo et al., Nature Methods 16, 2019), 512 x 512
uint16, and ``mask2d.tif``, its 125 labelled nuclei.  This script downloads the wheel
(``pip download``, the package registry only, no dependencies installed), copies the two
images and the wheel's licence (BSD-3-Clause) into ``.cache/real/dsb2018_2d/`` (ignored by
git: never copied into the repository) and deletes the wheel.  The image's pixel size is
not stored; the benchmarks and tests score it at several.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / ".cache" / "real" / "dsb2018_2d"
WHEEL = "stardist==0.9.2"
MEMBERS = {
    "stardist/data/images/img2d.tif": "img2d.tif",
    "stardist/data/images/mask2d.tif": "mask2d.tif",
    "stardist-0.9.2.dist-info/licenses/LICENSE.txt": "LICENSE.stardist.txt",
}


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    if all((TARGET / name).exists() for name in MEMBERS.values()):
        print(f"{TARGET} is there already.")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary=:all:", "-d", tmp, WHEEL]
        if subprocess.run(command, check=False).returncode != 0:
            print(f"Could not download {WHEEL} from the package registry.", file=sys.stderr)
            return 1
        (wheel,) = Path(tmp).glob("*.whl")
        TARGET.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for member, name in MEMBERS.items():
                partial = TARGET / f"{name}.partial"
                partial.write_bytes(archive.read(member))
                partial.replace(TARGET / name)
    print(f"StarDist's 2D test image and its labels are in {TARGET}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
