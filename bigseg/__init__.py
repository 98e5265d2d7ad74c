"""bigseg: find cell nuclei in 3D and time-lapse stacks larger than memory.

The public API::

    stack = bigseg.open_stack("embryo.tif", scale=(1.75, 0.8, 0.8))   # lazy DataArray
    labels = bigseg.segment(stack)                  # lazy plane labels
    detections = bigseg.measure(labels, stack)      # lazy dask DataFrame
    linked = bigseg.link(detections.compute())      # detections with a nucleus id
    nuclei = bigseg.nuclei_table(linked, scale=(1.75, 0.8, 0.8))
    result = bigseg.run("embryo.tif", "out/", scale=(1.75, 0.8, 0.8))  # all, written

Figures are in :mod:`bigseg.plots` (``from bigseg import plots``; matplotlib is
imported only when a figure is drawn).
"""

from ._errors import InputError, ScaleWarning
from .cluster import link, nuclei_table
from .io import as_stack, open_stack, write_labels
from .measure import measure
from .params import Params
from .pipeline import Result, run
from .score import score
from .segment import global_threshold, segment

__all__ = [
    "InputError",
    "Params",
    "Result",
    "ScaleWarning",
    "as_stack",
    "global_threshold",
    "link",
    "measure",
    "nuclei_table",
    "open_stack",
    "run",
    "score",
    "segment",
    "write_labels",
]
