"""Chain the stages lazily and compute once, at the sinks.

:func:`run` segments a stack end to end as a short sequence of passes
(:mod:`~bigseg.pipeline.passes`: threshold, segment + measure, link, relabel,
write), each computed through :mod:`~bigseg.pipeline.sink`.  Around them:
:mod:`~bigseg.pipeline.preflight` (the time selection, the output location),
:mod:`~bigseg.pipeline.scratch` (the hidden scratch directory, resume, atomic
finalisation), :mod:`~bigseg.pipeline.outputs` (which outputs bigseg may
replace), :mod:`~bigseg.pipeline.safety` (non-finite inputs, output errors,
the dask workers' preload) and :mod:`~bigseg.pipeline.record` (``run.json``).
"""

from .passes import relabel
from .preflight import check_output, select_t
from .runner import Result, run

__all__ = ["Result", "check_output", "relabel", "run", "select_t"]
