"""Chain the stages lazily and compute once, at the sinks.

:func:`run` segments a stack end to end as a short sequence of passes
(:mod:`~bigseg.pipeline.passes`: threshold, segment + measure, link, relabel,
write), each computed through :mod:`~bigseg.pipeline.sink`.  Around them:
:mod:`~bigseg.pipeline.preflight` (the time selection, the output location),
:mod:`~bigseg.pipeline.scratch` (the hidden scratch directory, resume, atomic
finalisation), :mod:`~bigseg.pipeline.outputs` (which outputs bigseg may
replace), :mod:`~bigseg.pipeline.safety` (non-finite inputs, output errors,
the dask workers' preload), :mod:`~bigseg.pipeline.layout` (the scratch
directory's names) and :mod:`~bigseg.pipeline.record` (``run.json``).
"""

import lazy_loader

# Imported on first use: the CLI (naming the scratch directory when interrupted) and the
# dask workers (the safety preload) import single modules of this package, not all of it.
__getattr__, __dir__, __all__ = lazy_loader.attach(
    __name__,
    submod_attrs={
        "passes": ["relabel"],
        "preflight": ["check_output", "select_t"],
        "runner": ["Result", "run"],
    },
)
