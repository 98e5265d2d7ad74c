"""NumPy kernels: NumPy in, NumPy out, never dask, xarray or pandas.

One module per family: :mod:`~bigseg.kernels.filters` (disk filters, 3D smoothing, local
foreground), :mod:`~bigseg.kernels.threshold` (histograms, Otsu, the log-intensity floor),
:mod:`~bigseg.kernels.watershed` (distance, markers, watershed, the plane kernels),
:mod:`~bigseg.kernels.regions` (region sums, one kernel for planes and blocks) and
:mod:`~bigseg.kernels.lut` (lookup-table relabelling).  Every kernel accepts an empty or
all-background block and returns a correctly typed result.  The block layer that maps them
over chunks is :mod:`bigseg.chunked`.
"""

import numpy as np

#: dtype of plane (and block) labels.
LABEL_DTYPE = np.int32
