# The public names of bigseg, read by lazy_loader.attach_stub at run time (``__init__.py``)
# and by static tools (type checkers, griffe for the API reference), which cannot see a lazy
# import. One line per public name's current module: keep it in step when code moves. The
# submodules imported first are reachable as attributes (bigseg.io) but not listed in __all__.
from . import cluster as cluster
from . import io as io
from . import params as params
from . import pipeline as pipeline
from ._errors import InputError, ScaleWarning
from .cluster import link, nuclei_table
from .io import open_stack, write_labels
from .measure import measure
from .params import Params, TrackParams
from .pipeline.runner import Result, run
from .score import score
from .segment import global_threshold, segment
from .stack import as_stack
from .track import track

__all__ = [
    "InputError",
    "Params",
    "Result",
    "ScaleWarning",
    "TrackParams",
    "as_stack",
    "global_threshold",
    "link",
    "measure",
    "nuclei_table",
    "open_stack",
    "run",
    "score",
    "segment",
    "track",
    "write_labels",
]
