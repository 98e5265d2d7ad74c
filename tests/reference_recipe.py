"""The seed recipe, written plainly and serially in scikit-image (test reference only).

This is the 2014 recipe as DESIGN.md states it, with today's API names and
with the binary mask passed to ``peak_local_max``.  bigseg's ``--preset seed``
must give exactly these per-plane detections.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.filters import rank, threshold_otsu
from skimage.measure import regionprops
from skimage.morphology import disk
from skimage.segmentation import watershed


def recipe_detections(
    stack: np.ndarray, *, smooth=5, min_radius=4, max_radius=20, min_distance=None, threshold=None
) -> pd.DataFrame:
    """Per-plane detections of a (Z, Y, X) stack: z, y, x, area, intensity_sum.

    Sizes in pixels; ``min_distance`` defaults to ``2 * min_radius`` (the recipe's).
    ``threshold`` defaults to the Otsu threshold of the stack's maximum projection (given:
    a part of a stack segmented with its whole stack's threshold, as a dask port does).
    The benchmarks in ``bench/`` time and score this same function.
    """
    if min_distance is None:
        min_distance = 2 * min_radius
    thresh = threshold_otsu(stack.max(axis=0)) if threshold is None else threshold
    rows = []
    for z, plane in enumerate(stack):
        smoothed = rank.enhance_contrast(rank.median(plane, disk(smooth)), disk(smooth))
        if smoothed.max() < thresh:
            continue
        binary = smoothed > thresh
        distance = ndimage.distance_transform_edt(binary)
        peaks = peak_local_max(distance, min_distance=min_distance, labels=binary)
        marker_mask = np.zeros(binary.shape, bool)
        marker_mask[tuple(peaks.T)] = True
        markers = ndimage.label(marker_mask)[0]
        labels = watershed(-distance, markers, mask=binary)
        for region in regionprops(labels, intensity_image=plane):
            radius = np.sqrt(region.area / np.pi)
            if min_radius < radius < max_radius:
                y, x = region.centroid_weighted
                rows.append((float(z), y, x, int(region.area), region.intensity_mean * region.area))
    return pd.DataFrame(rows, columns=["z", "y", "x", "area_px", "intensity_sum"])
