"""Run Voronoi-Otsu-Labeling over a grid of sigmas: executed by the peers' environment.

``bench/.venv-peers/bin/python bench/_vol_worker.py DIR`` reads ``DIR/image.npy`` (a
``(t, z, y, x)`` stack; frames with one plane are passed to VOL as 2D images) and
``DIR/pairs.json`` (a list of ``[spot_sigma, outline_sigma]``), and writes, per pair ``k``,
``DIR/labels_k.npy`` (``(t, z, y, x)``, uint32), ``DIR/seconds.json`` (per pair, the wall
time of the VOL calls alone, all frames together, serial and in memory) and ``DIR/cpu.json``
(the same calls' CPU seconds, this process's threads together).

This file imports only NumPy and the peer's package: it must not import bigseg, which is not
installed in that environment.
"""

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

with warnings.catch_warnings():
    # napari-tools-menu warns that it found no Qt (there is no display here).
    warnings.simplefilter("ignore")
    from napari_segment_blobs_and_things_with_membranes import voronoi_otsu_labeling


def main(folder: Path) -> None:
    image = np.load(folder / "image.npy")
    pairs = json.loads((folder / "pairs.json").read_text())
    seconds, cpus = [], []
    for k, (spot, outline) in enumerate(pairs):
        labels = np.zeros(image.shape, np.uint32)
        elapsed = cpu = 0.0
        for t, frame in enumerate(image):
            data = frame[0] if frame.shape[0] == 1 else frame
            start, start_cpu = time.perf_counter(), time.process_time()
            out = voronoi_otsu_labeling(data, spot_sigma=spot, outline_sigma=outline)
            elapsed += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
            labels[t] = out.reshape(frame.shape)
        np.save(folder / f"labels_{k}.npy", labels)
        seconds.append(elapsed)
        cpus.append(cpu)
    (folder / "seconds.json").write_text(json.dumps(seconds))
    (folder / "cpu.json").write_text(json.dumps(cpus))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
