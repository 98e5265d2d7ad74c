"""Where a run writes: the scratch directory beside the output and the names inside it.

Standard library only, so that the command line can name the scratch directory
even while it is being interrupted in the middle of importing the libraries.
"""

from __future__ import annotations

from pathlib import Path

STATE = "state.json"
INCOMPLETE = "INCOMPLETE"
LOCK = "LOCK"
PLANES = "planes.zarr"
SIGNAL = "signal.zarr"  # a pre-pass's output (split planes), read back grown by the halo
SIGNAL_DONE = "signal.done"
KEPT = "kept.f32"  # a method's signal, computed once for its statistic and its pre-pass
KEPT_DONE = "kept.done"
KEPT_ZARR = "kept.zarr"  # where earlier versions kept it: removed with it, never read
BLOCKS = "blocks"
SLABS = "slabs"  # split planes: each slab's detections, label nodes and stitching counts
LINKED = "linked"
ZLINK = "zlink"  # detections partitioned by z-slab: components, seams, pieces of nuclei
TRACKING = "tracking"


def scratch_path(out: Path) -> Path:
    """Return the hidden scratch directory of ``out``: ``.OUT.partial`` beside it."""
    return out.parent / f".{out.name}.partial"
