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

import sys
import types

import lazy_loader

# The API is imported on first use, so that ``import bigseg`` (and the ``bigseg`` command,
# whose ``--help`` and ``--version`` need none of it) start in milliseconds, not a second.
# The public names and their modules are listed in ``__init__.pyi``, which static tools read
# too (scikit-image's pattern); the submodules it imports are reachable but not in __all__.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
__all__ = sorted(set(__all__) - {"cluster", "io", "params", "pipeline"})

# Functions named like the module that holds them.
_SAME_NAME = frozenset({"measure", "score", "segment", "track"})


class _Package(types.ModuleType):
    """Keep ``bigseg.segment`` the function when the module ``bigseg.segment`` is imported.

    Python binds every imported submodule as an attribute of its package; with the API
    imported lazily, importing ``bigseg.segment`` first would otherwise hide the function.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in _SAME_NAME and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
