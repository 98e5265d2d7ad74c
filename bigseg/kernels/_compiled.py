"""Compiled loops of the kernels (numba, ``nogil``, cached on disk).

Imported on first use by the kernels that need them (:func:`bigseg.kernels.filters.box_extreme`,
:func:`bigseg.kernels.threshold.linear_histogram`, :func:`bigseg.kernels.watershed.flood`, ...),
so that a run which never calls them never loads numba (about 0.5 s and 100 MiB per process,
and 0.5 s more to read the first cached function).  Each loop gives the values of the NumPy /
SciPy code it replaces, bit for bit (``tests/test_kernels_compiled.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "box_extreme_axis",
    "box_extreme_last",
    "disk_counts",
    "disk_extremes_at",
    "apart_markers",
    "fill_holes",
    "integer_difference_counts",
    "flood",
    "gaussian_axis",
    "label_areas",
    "label_plane",
    "gaussian_last",
    "concave_regions",
    "difference_counts",
    "linear_counts",
    "median_runs",
    "plane_distance",
    "plane_peaks",
    "region_box_max",
    "spaced",
    "take",
    "window_maxima",
]

#: Columns of the lines filtered together along an axis (a small buffer per block).
_COLUMNS = 512


@njit(nogil=True, cache=True)
def box_extreme_axis(src, r, lo, hi, maximum, fill, out):  # pragma: no cover - compiled
    """Take running extremes over ``2r + 1`` along the middle axis of ``src`` (pre, n, post).

    ``out[p, i - lo, c]`` = extreme of ``src[p, max(i - r, 0) : i + r + 1, c]`` for
    ``lo <= i < hi`` (van Herk / Gil-Werman: prefix and suffix extremes in blocks of
    ``2r + 1``), the lines of :data:`_COLUMNS` neighbouring columns at once.  Returns
    False, leaving ``out`` undefined, when a NaN is met.
    """
    pre, n, post = src.shape
    if post == 1:
        return box_extreme_last(
            src.reshape((pre, n)), r, lo, hi, maximum, fill, out.reshape((pre, hi - lo))
        )
    w = 2 * r + 1
    length = hi - lo + 2 * r
    cols = min(post, _COLUMNS)
    g = np.empty((length, cols), src.dtype)
    h = np.empty((length, cols), src.dtype)
    nan = False
    for p in range(pre):
        for c0 in range(0, post, cols):
            nc = min(cols, post - c0)
            for q in range(length):
                j = lo - r + q
                gq, hq = g[q], h[q]
                if 0 <= j < n:
                    line = src[p, j, c0 : c0 + nc]
                    for c in range(nc):
                        v = line[c]
                        nan |= v != v
                        gq[c] = v
                        hq[c] = v
                else:
                    gq[:nc] = fill
                    hq[:nc] = fill
            # One loop per case: a choice inside the innermost loop stops it vectorising.
            for q in range(1, length):
                if q % w:
                    g0, g1 = g[q - 1], g[q]
                    if maximum:
                        for c in range(nc):
                            g1[c] = max(g0[c], g1[c])
                    else:
                        for c in range(nc):
                            g1[c] = min(g0[c], g1[c])
            for q in range(length - 2, -1, -1):
                if (q + 1) % w:
                    h0, h1 = h[q + 1], h[q]
                    if maximum:
                        for c in range(nc):
                            h1[c] = max(h0[c], h1[c])
                    else:
                        for c in range(nc):
                            h1[c] = min(h0[c], h1[c])
            for i in range(hi - lo):
                hs, ge, o = h[i], g[i + w - 1], out[p, i, c0 : c0 + nc]
                if maximum:
                    for c in range(nc):
                        o[c] = max(hs[c], ge[c])
                else:
                    for c in range(nc):
                        o[c] = min(hs[c], ge[c])
        if nan:
            return False
    return True


@njit(nogil=True, cache=True)
def box_extreme_last(src, r, lo, hi, maximum, fill, out):  # pragma: no cover - compiled
    """:func:`box_extreme_axis` along the last (contiguous) axis of ``src`` (pre, n).

    Each line is copied into a buffer (``fill`` beyond its ends) and its extremes taken over
    windows doubling in length, 2, 4, ... up to ``k``, the largest power of two within
    ``2r + 1``; each window of ``2r + 1`` is then the extreme of the two windows of ``k``
    at its ends, which overlap.  ``log2(k) + 1`` passes along the line, each a loop over
    contiguous values that vectorises (lines of 1 024 float32, a box of 41: 0.6 ns per
    value, against 4.0 for van Herk's three comparisons per value run on lines copied 16
    at a time across a buffer).  The reads ahead go through views (``values[k:]``), whose
    indices the compiler knows are never negative: ``values[i + k]`` did not vectorise.
    """
    pre, n = src.shape
    w = 2 * r + 1
    length = hi - lo + 2 * r
    k = 1
    while 2 * k <= w:
        k *= 2
    a = np.empty(length, src.dtype)
    b = np.empty(length, src.dtype)
    first = lo - r
    q0 = max(0, -first)  # the line's values go to a[q0:q1], the fill around them
    q1 = max(q0, min(length, n - first))
    inside = a[q0:q1]
    for p in range(pre):
        a[:q0] = fill  # (the passes of the line before wrote over them)
        a[q1:] = fill
        line = src[p, first + q0 : first + q1]
        nan = False
        for j in range(q1 - q0):
            v = line[j]
            nan |= v != v
            inside[j] = v
        if nan:
            return False
        values, spare = a, b
        span, valid = 1, length
        while span < k:
            valid -= span
            _extremes(values, values[span:], valid, maximum, spare)
            values, spare = spare, values
            span *= 2
        _extremes(values, values[w - k :], hi - lo, maximum, out[p])
    return True


@njit(nogil=True, cache=True)
def _extremes(first, second, count, maximum, out):  # pragma: no cover - compiled
    """``out[i] = max(first[i], second[i])`` (or ``min``), ``i < count``; ``out`` may be either.

    A loop of its own: the compiler vectorises it, which it did not do inline where the
    arrays were rows of one buffer or swapped between passes.
    """
    if maximum:
        for i in range(count):
            x, y = first[i], second[i]
            out[i] = y if y > x else x  # max(x, y): x unless y is larger
    else:
        for i in range(count):
            x, y = first[i], second[i]
            out[i] = y if y < x else x


@njit(nogil=True, cache=True)
def disk_counts(mask, dys, ws, r, out):  # pragma: no cover - compiled
    """``out[y, x]``: the true pixels of ``mask`` in the disk around ``(y, x)``, in the image.

    The disk's rows are ``(dys[k], ws[k])``: offset and half width, radius ``r``.  Each
    row of ``mask`` becomes running counts, ``prefix[y, j]`` the true pixels left of
    column ``j - r``; a disk row adds the difference of two of them, for a whole output
    row at once through views (:func:`_add_differences`: a loop that vectorises).  The
    counts of :func:`bigseg.kernels.filters.disk_count`'s NumPy sums, without its
    padded copy and a plane-sized array per half width.
    """
    ny, nx = mask.shape
    width = nx + 2 * r + 1
    prefix = np.zeros((ny, width), np.int32)
    for y in range(ny):
        row, run = mask[y], prefix[y]
        total = 0
        for x in range(nx):
            total += row[x]
            run[x + r + 1] = total
        for j in range(nx + r + 1, width):
            run[j] = total
    acc = np.empty(nx, np.int32)
    for y in range(ny):
        acc[:] = 0
        for k in range(dys.size):
            yy = y + dys[k]
            if 0 <= yy < ny:
                w = ws[k]
                _add_differences(prefix[yy, r + w + 1 :], prefix[yy, r - w :], nx, acc)
        o = out[y]
        for x in range(nx):
            o[x] = acc[x]


@njit(nogil=True, cache=True)
def _add_differences(high, low, n, acc):  # pragma: no cover - compiled
    """``acc[i] += high[i] - low[i]``, ``i < n``."""
    for i in range(n):
        acc[i] += high[i] - low[i]


@njit(nogil=True, cache=True)
def linear_counts(values, low, width, counts):  # pragma: no cover - compiled
    """Add to ``counts`` the bins of ``values`` (1D) from ``low`` by ``width``, outliers at ends.

    The bin of each value is NumPy's ``clip(nan_to_num((float64(v) - low) / width, nan=0),
    0, nbins - 1).astype(int64)``: NaN in the first bin, below ``low`` in the first, above
    the range (infinities too) in the last; one read of ``values``, no temporary arrays.
    """
    top = counts.size - 1
    for i in range(values.size):
        s = (np.float64(values[i]) - low) / width
        if s >= top:
            counts[top] += 1
        elif s > 0:
            counts[int(s)] += 1
        else:  # at or below 0, or NaN
            counts[0] += 1


@njit(nogil=True, cache=True)
def difference_counts(volume, start, stop, width, counts):  # pragma: no cover - compiled
    """Add to ``counts`` the bins of ``|volume[..., i + 1] - volume[..., i]|``, start <= i < stop.

    ``volume`` is 3D (any strides); bins of ``width`` from 0 as :func:`linear_counts`
    counts them (NaN in the first, above the range in the last); one read, no temporary
    arrays.
    """
    top = counts.size - 1
    for z in range(volume.shape[0]):
        for y in range(volume.shape[1]):
            for i in range(start, stop):
                s = abs(np.float64(volume[z, y, i + 1]) - np.float64(volume[z, y, i])) / width
                if s >= top:
                    counts[top] += 1
                elif s > 0:
                    counts[int(s)] += 1
                else:  # 0, or NaN
                    counts[0] += 1


@njit(nogil=True, cache=True)
def integer_difference_counts(volume, start, stop, up, down, counts):  # pragma: no cover
    """:func:`difference_counts` of an integer ``volume``, bins ``2 ** (down - up)`` wide.

    The differences are taken in int64 and shifted ``up`` then ``down`` bits: exact, so the
    bins are :func:`difference_counts`'s, without conversions or divisions.
    """
    top = counts.size - 1
    for z in range(volume.shape[0]):
        for y in range(volume.shape[1]):
            row = volume[z, y]
            before = np.int64(row[start])
            for i in range(start, stop):
                after = np.int64(row[i + 1])
                d = ((after - before if after > before else before - after) << up) >> down
                before = after
                counts[min(d, top)] += 1


@njit(nogil=True, cache=True)
def plane_peaks(values, labels, nlabels):  # pragma: no cover - compiled
    """Find the pixels of a labelled 2D plane not below any same-label neighbour.

    A pixel of label ``> 0`` is a maximum when no pixel of its own label among its 8
    neighbours (inside the plane) has a larger value.  Returns ``(rows, cols, area,
    maxima, boxes, nan)``: the maxima above the plane's minimum value in row-major order
    (``peak_local_max(values, min_distance=1, labels=labels)``'s candidates and
    threshold), each label's pixel count and count of maxima (threshold aside), its
    bounding box ``(row0, row1, col0, col1)`` (ends exclusive), and whether a NaN was
    met (the rest is then undefined).
    """
    ny, nx = values.shape
    low = np.inf
    area = np.zeros(nlabels + 1, np.intp)
    maxima = np.zeros(nlabels + 1, np.intp)
    boxes = np.empty((nlabels + 1, 4), np.intp)
    boxes[:, 0] = ny
    boxes[:, 1] = 0
    boxes[:, 2] = nx
    boxes[:, 3] = 0
    # One pass: every pixel's value for the minimum, the maxima collected in row-major
    # order (few), those at or below the minimum left out at the end.
    size = 64
    found_r = np.empty(size, np.intp)
    found_c = np.empty(size, np.intp)
    count = 0
    for y in range(ny):
        for x in range(nx):
            v = values[y, x]
            if v != v:
                empty = np.zeros(0, np.intp)
                return empty, empty, empty, empty, np.zeros((0, 4), np.intp), True
            low = min(low, v)
            own = labels[y, x]
            if own <= 0:
                continue
            area[own] += 1
            b = boxes[own]
            b[0] = min(b[0], y)
            b[1] = max(b[1], y + 1)
            b[2] = min(b[2], x)
            b[3] = max(b[3], x + 1)
            peak = True
            for yy in range(max(y - 1, 0), min(y + 2, ny)):
                for xx in range(max(x - 1, 0), min(x + 2, nx)):
                    if labels[yy, xx] == own and values[yy, xx] > v:
                        peak = False
            if peak:
                maxima[own] += 1
                if count == size:  # grow the lists
                    size *= 2
                    grown_r = np.empty(size, np.intp)
                    grown_c = np.empty(size, np.intp)
                    grown_r[:count] = found_r[:count]
                    grown_c[:count] = found_c[:count]
                    found_r, found_c = grown_r, grown_c
                found_r[count] = y
                found_c[count] = x
                count += 1
    k = 0
    for i in range(count):
        if values[found_r[i], found_c[i]] > low:
            k += 1
    rows = np.empty(k, np.intp)
    cols = np.empty(k, np.intp)
    k = 0
    for i in range(count):
        if values[found_r[i], found_c[i]] > low:
            rows[k] = found_r[i]
            cols[k] = found_c[i]
            k += 1
    return rows, cols, area, maxima, boxes, False


@njit(nogil=True, cache=True)
def gaussian_axis(src, w, out):  # pragma: no cover - compiled
    """Correlate the middle axis of ``src`` (pre, n, post) with symmetric weights ``w``.

    ``scipy.ndimage.correlate1d(src, w, axis=1, mode="nearest")`` into float32 ``out``
    (which may be ``src`` itself), bit for bit: each value is summed in float64 in
    SciPy's order for symmetric weights (the centre's product, then the pairs from the
    outermost in, each pair added before it is weighted) and rounded to float32 once.
    The lines of :data:`_COLUMNS` neighbouring columns at once; any strides.
    """
    pre, n, post = src.shape
    r = (w.size - 1) // 2
    cols = min(post, _COLUMNS)
    buf = np.empty((n + 2 * r, cols), np.float64)
    acc = np.empty(cols, np.float64)
    for p in range(pre):
        for c0 in range(0, post, cols):
            nc = min(cols, post - c0)
            for q in range(n + 2 * r):
                j = min(max(q - r, 0), n - 1)
                line, row = src[p, j, c0 : c0 + nc], buf[q]
                for c in range(nc):
                    row[c] = np.float64(line[c])
            for i in range(n):
                centre, w0 = buf[i + r], w[r]
                for c in range(nc):
                    acc[c] = centre[c] * w0
                for k in range(r, 0, -1):  # SciPy's jj = -size1 .. -1
                    lo, hi, wk = buf[i + r - k], buf[i + r + k], w[r - k]
                    for c in range(nc):
                        acc[c] += (lo[c] + hi[c]) * wk
                o = out[p, i, c0 : c0 + nc]
                for c in range(nc):
                    o[c] = np.float32(acc[c])


@njit(nogil=True, cache=True)
def gaussian_last(src, w, out):  # pragma: no cover - compiled
    """:func:`gaussian_axis` along the last axis of a 3D ``src`` (any strides)."""
    r = (w.size - 1) // 2
    n = src.shape[2]
    buf = np.empty(n + 2 * r, np.float64)
    acc = np.empty(n, np.float64)
    for p in range(src.shape[0]):
        for q in range(src.shape[1]):
            _gaussian_line(src[p, q], w, r, buf, acc, out[p, q])


@njit(nogil=True, cache=True)
def _gaussian_line(line, w, r, buf, acc, out):  # pragma: no cover - compiled
    """:func:`gaussian_axis` of one line (the last axis): all outputs one weight at a time.

    ``buf`` (``n + 2r``) and ``acc`` (``n``) are working arrays; the line's shifted reads go
    through views (:func:`_add_pairs`), whose indices the compiler knows are never
    negative, so that the loops vectorise.
    """
    n = line.size
    if n == 0:
        return
    for q in range(r):
        buf[q] = np.float64(line[0])
        buf[r + n + q] = np.float64(line[n - 1])
    inner = buf[r : r + n]
    for i in range(n):
        inner[i] = np.float64(line[i])
    w0 = w[r]
    for i in range(n):
        acc[i] = inner[i] * w0
    for k in range(r, 0, -1):
        _add_pairs(buf[r - k :], buf[r + k :], w[r - k], n, acc)
    for i in range(n):
        out[i] = np.float32(acc[i])


@njit(nogil=True, cache=True)
def _add_pairs(low, high, weight, n, acc):  # pragma: no cover - compiled
    """``acc[i] += (low[i] + high[i]) * weight``, ``i < n`` (SciPy's order for a pair)."""
    for i in range(n):
        acc[i] += (low[i] + high[i]) * weight


@njit(nogil=True, cache=True)
def label_areas(labels, n, counts):  # pragma: no cover - compiled
    """Count each label of a C-contiguous ``labels`` into ``counts`` (``n + 1`` zeros).

    ``np.bincount(labels.ravel(), minlength=n + 1)`` when every label is in ``0..n``;
    returns False (``counts`` then undefined) at the first label outside.
    """
    flat = labels.ravel()
    run, length = 0, 0  # counted along runs of one label: one count per run, not per pixel
    for i in range(flat.size):
        v = flat[i]
        if v == run:
            length += 1
            continue
        if v < 0 or v > n:
            return False
        counts[run] += length
        run, length = v, 1
    counts[run] += length
    return True


@njit(nogil=True, cache=True)
def _row_extremes(labels, n, area):  # pragma: no cover - compiled
    """Count each label's pixels into ``area``; return its rows and their extreme pixels.

    Returns ``(top, bottom, start, left, right)``: label ``v``'s first and last row, and
    for each row of its extent (slots ``start[v]`` on) its leftmost and rightmost pixel
    (``right`` < 0: a row without pixels of it); ``top`` is None at a label outside
    ``0..n``.
    """
    ny, nx = labels.shape
    top = np.full(n + 1, ny, np.intp)
    bottom = np.full(n + 1, -1, np.intp)
    start = np.zeros(n + 2, np.intp)
    for y in range(ny):
        for x in range(nx):
            v = labels[y, x]
            if v == 0:
                continue
            if v < 0 or v > n:
                return None, bottom, start, bottom, bottom
            area[v] += 1
            if top[v] == ny:
                top[v] = y
            bottom[v] = y
    for v in range(1, n + 1):
        start[v + 1] = start[v] + (bottom[v] - top[v] + 1 if bottom[v] >= 0 else 0)
    left = np.full(start[n + 1], nx, np.intp)
    right = np.full(start[n + 1], -1, np.intp)
    for y in range(ny):
        x = 0
        while x < nx:
            v = labels[y, x]
            if v == 0:
                x += 1
                continue
            end = x
            while end + 1 < nx and labels[y, end + 1] == v:
                end += 1
            i = start[v] + y - top[v]
            left[i] = min(left[i], x)
            right[i] = max(right[i], end)
            x = end + 1
    return top, bottom, start, left, right


@njit(nogil=True, cache=True)
def _hull_spans(first, last, left, right, lo, hi, cx, cy):  # pragma: no cover - compiled
    """One label's convex hull, row by row: ``lo[r] <= x <= hi[r]`` in row ``first + r``.

    The pixels whose centres lie inside or on the convex hull of the midpoints of the
    label's pixels' edges, as scikit-image's ``convex_hull_image`` takes them.  Only each
    row's leftmost and rightmost pixel can give a hull point: the hull's left and right
    chains are built from theirs (Andrew's monotone chain, along y).  ``left``/``right``
    hold its rows' extreme pixels (rows ``first..last``), ``cx``/``cy`` room for ``3 *
    rows`` points.  Returns the hull's pixel count.
    """
    rows = last - first + 1
    for s in range(2):  # the left chain (Andrew's monotone chain along y), then the right
        side = -1.0 if s == 0 else 1.0
        m = 0
        for r in range(rows):
            if right[r] < 0:  # a row without pixels of the label
                continue
            edge = left[r] if s == 0 else right[r]
            for k in range(3):  # the midpoints of the top, outer and bottom edges
                x = edge + (0.5 * side if k == 1 else 0.0)
                y = first + r + 0.5 * (k - 1)
                while m >= 2:
                    cross = (cx[m - 1] - cx[m - 2]) * (y - cy[m - 2]) - (cy[m - 1] - cy[m - 2]) * (
                        x - cx[m - 2]
                    )
                    if side * cross > 0:
                        break
                    m -= 1
                cx[m] = x
                cy[m] = y
                m += 1
        j = 0  # the chain's x at each row (rows are whole numbers; its y only grows)
        for r in range(rows):
            row = first + r
            while j + 1 < m and cy[j + 1] < row:
                j += 1
            x = cx[j]
            if j + 1 < m and cy[j + 1] > cy[j]:
                x += (row - cy[j]) / (cy[j + 1] - cy[j]) * (cx[j + 1] - cx[j])
            if s == 0:
                lo[r] = int(np.ceil(x - 1e-9))
            else:
                hi[r] = int(np.floor(x + 1e-9))
    count = 0
    for r in range(rows):
        count += hi[r] - lo[r] + 1
    return count


@njit(nogil=True, cache=True)
def concave_regions(labels, n, solidity, min_area, depth, notch, out, points):  # pragma: no cover
    """Mark in ``out`` (``n + 1`` False) the labels to cut, their notches' pixels in ``points``.

    Label ``v`` is marked when it has ``min_area`` pixels or more, fewer than ``solidity``
    times its convex hull's (:func:`_hull_spans`), and notches (8-connected components of
    its hull's pixels not its own) whose two deepest are ``notch`` pixels large or more
    and ``depth`` or more deep: their deepest pixel that far from the nearest pixel outside
    the hull (the Euclidean distance transform of the hull).  Notches are ranked by depth,
    ties by their first pixel in raster order, and a notch's deepest pixel is its first
    in raster order among ties, as ``scipy.ndimage.label`` and ``maximum_position`` rank
    them.  ``points[v]`` (an ``(n + 1, 4)`` integer array) receives the two deepest
    pixels, ``y0, x0, y1, x1`` in ``labels``.  Returns False at a label outside ``0..n``.
    """
    area = np.zeros(n + 1, np.intp)
    top, bottom, start, left, right = _row_extremes(labels, n, area)
    if top is None:
        return False
    ny, nx = labels.shape
    lo = np.empty(ny, np.intp)
    hi = np.empty(ny, np.intp)
    cx = np.empty(3 * ny)
    cy = np.empty(3 * ny)
    best = np.zeros((2, 4), np.intp)  # per notch: squared depth, size, y, x
    for v in range(1, n + 1):
        if bottom[v] < 0 or area[v] < min_area:
            continue
        a, b = start[v], start[v + 1]
        count = _hull_spans(top[v], bottom[v], left[a:b], right[a:b], lo, hi, cx, cy)
        if not area[v] < solidity * count:
            continue
        if _deepest_notches(labels, v, top[v], bottom[v], lo, hi, best) < 2:
            continue
        if min(best[0, 1], best[1, 1]) < notch or np.sqrt(float(best[1, 0])) < depth:
            continue
        out[v] = True
        points[v, 0], points[v, 1] = best[0, 2], best[0, 3]
        points[v, 2], points[v, 3] = best[1, 2], best[1, 3]
    return True


@njit(nogil=True, cache=True)
def _deepest_notches(labels, v, first, last, lo, hi, best):  # pragma: no cover - compiled
    """Find label ``v``'s two deepest notches (see :func:`concave_regions`); count them all.

    The hull is rows ``first..last``, spans ``lo..hi``; ``best[k]`` receives the ``k``-th
    deepest notch's squared depth, size and deepest pixel (in ``labels``).  Works in the
    hull's box grown by one pixel.
    """
    rows = last - first + 1
    x0, x1 = lo[0], hi[0]
    for r in range(rows):
        x0 = min(x0, lo[r])
        x1 = max(x1, hi[r])
    h, w = rows + 2, x1 - x0 + 3  # the box, grown by one pixel (outside the hull)
    inside = np.zeros((h, w), np.bool_)
    for r in range(rows):
        for x in range(lo[r], hi[r] + 1):
            inside[r + 1, x - x0 + 1] = True
    # The pixels outside the hull next to it: the nearest one to a hull pixel is one.
    edge_y = np.empty(h * w, np.intp)
    edge_x = np.empty(h * w, np.intp)
    ne = 0
    for i in range(h):
        for j in range(w):
            if inside[i, j]:
                continue
            near = False
            for di in range(-1, 2):
                for dj in range(-1, 2):
                    ii, jj = i + di, j + dj
                    if 0 <= ii < h and 0 <= jj < w and inside[ii, jj]:
                        near = True
            if near:
                edge_y[ne] = i
                edge_x[ne] = j
                ne += 1
    # The notches, in raster order of their first pixel (8-connected), one at a time.
    seen = np.zeros((h, w), np.bool_)
    stack_y = np.empty(h * w, np.intp)
    stack_x = np.empty(h * w, np.intp)
    found = 0
    for i in range(1, h - 1):
        for j in range(1, w - 1):
            if seen[i, j] or not inside[i, j] or labels[first + i - 1, x0 + j - 1] == v:
                continue
            seen[i, j] = True
            stack_y[0], stack_x[0] = i, j
            pending = 1
            size = 0
            deepest, at = -1, 0
            while pending > 0:
                pending -= 1
                y, x = stack_y[pending], stack_x[pending]
                size += 1
                nearest = h * h + w * w
                for k in range(ne):
                    dy, dx = y - edge_y[k], x - edge_x[k]
                    nearest = min(nearest, dy * dy + dx * dx)
                if nearest > deepest or (nearest == deepest and y * w + x < at):
                    deepest, at = nearest, y * w + x
                for di in range(-1, 2):
                    for dj in range(-1, 2):
                        ii, jj = y + di, x + dj
                        if seen[ii, jj] or not inside[ii, jj]:
                            continue
                        if labels[first + ii - 1, x0 + jj - 1] == v:
                            continue
                        seen[ii, jj] = True
                        stack_y[pending], stack_x[pending] = ii, jj
                        pending += 1
            py, px = first + at // w - 1, x0 + at % w - 1
            if found == 0 or deepest > best[0, 0]:
                if found > 0:
                    best[1, :] = best[0, :]
                best[0, 0], best[0, 1], best[0, 2], best[0, 3] = deepest, size, py, px
            elif found == 1 or deepest > best[1, 0]:
                best[1, 0], best[1, 1], best[1, 2], best[1, 3] = deepest, size, py, px
            found += 1
    return found


@njit(nogil=True, cache=True)
def take(table, labels, out):  # pragma: no cover - compiled
    """``out = table[labels]`` for C-contiguous ``labels``; 0 for labels outside the table."""
    flat, result = labels.ravel(), out.ravel()
    n = table.size
    for i in range(flat.size):
        v = flat[i]
        result[i] = table[v] if 0 <= v < n else 0


#: The median's histogram: fine bins of every value, coarse bins of ``2**_SHIFT`` values.
_SHIFT = 4
_LOW = (1 << _SHIFT) - 1


@njit(nogil=True, cache=True)
def median_runs(plane, ys, xs, dys, ws, out):  # pragma: no cover - compiled
    """Median of each pixel's disk window of an unsigned 8/16-bit plane, at ``(ys, xs)``.

    The ``n // 2``-th smallest (0-based) of the ``n`` in-image values of the window whose
    rows are ``(dys[k], ws[k])`` (row offset, half width): ``skimage.filters.rank.median``'s
    choice.  Pixels are taken in the order given (row-major, as ``np.nonzero`` gives them):
    along a row the window slides (a histogram of the window's values, one row's leaving
    and entering values a step, and the median's value moved from the last one's), and is
    built again elsewhere.
    """
    ny, nx = plane.shape
    fine = np.zeros(65536, np.int32)
    coarse = np.zeros(65536 >> _SHIFT, np.int32)
    nrows = dys.size
    m = 0  # the median's value of the window held ...
    below = 0  # ... and how many of its values are smaller
    n = 0
    y_held, x_held = -1, -1
    for i in range(ys.size):
        y, x = ys[i], xs[i]
        if y == y_held and 0 < x - x_held <= 8:
            for step in range(x_held + 1, x + 1):  # slide right, one column at a time
                for k in range(nrows):
                    yy = y + dys[k]
                    if yy < 0 or yy >= ny:
                        continue
                    xo, xi = step - 1 - ws[k], step + ws[k]
                    if xo >= 0:
                        v = plane[yy, xo]
                        fine[v] -= 1
                        coarse[v >> _SHIFT] -= 1
                        n -= 1
                        if v < m:
                            below -= 1
                    if xi < nx:
                        v = plane[yy, xi]
                        fine[v] += 1
                        coarse[v >> _SHIFT] += 1
                        n += 1
                        if v < m:
                            below += 1
        else:
            if y_held >= 0:  # empty the histogram: the held window's values out
                for k in range(nrows):
                    yy = y_held + dys[k]
                    if yy < 0 or yy >= ny:
                        continue
                    for xx in range(max(x_held - ws[k], 0), min(x_held + ws[k] + 1, nx)):
                        v = plane[yy, xx]
                        fine[v] -= 1
                        coarse[v >> _SHIFT] -= 1
            n = 0
            for k in range(nrows):
                yy = y + dys[k]
                if yy < 0 or yy >= ny:
                    continue
                for xx in range(max(x - ws[k], 0), min(x + ws[k] + 1, nx)):
                    v = plane[yy, xx]
                    fine[v] += 1
                    coarse[v >> _SHIFT] += 1
                    n += 1
            m, below = 0, 0
        y_held, x_held = y, x
        rank = n // 2
        # Move m until below <= rank < below + fine[m], a coarse bin at a time where it can.
        while below > rank:
            if m & _LOW == 0 and m > 0 and below - coarse[(m >> _SHIFT) - 1] > rank:
                below -= coarse[(m >> _SHIFT) - 1]
                m -= _LOW + 1
            else:
                m -= 1
                below -= fine[m]
        while below + fine[m] <= rank:
            if m & _LOW == 0 and below + coarse[m >> _SHIFT] <= rank:
                below += coarse[m >> _SHIFT]
                m += _LOW + 1
            else:
                below += fine[m]
                m += 1
        out[i] = m


@njit(nogil=True, cache=True)
def plane_distance(binary, out):  # pragma: no cover - compiled
    """Euclidean distance of each pixel of a 2D boolean plane to the nearest ``False`` one.

    ``scipy.ndimage.distance_transform_edt(binary)`` into float64 ``out``, bit for bit:
    the squared distance is found in integers (Meijster, Roerdink and Hesselink's two
    passes: to the nearest background pixel of each column, then the lower envelope of
    those columns' parabolas along each row), and its square root taken once, as SciPy
    does from its nearest feature.  Along a row only a run of foreground pixels and the
    background pixel at each of its ends are looked at: no column beyond that pixel can
    be nearer.  Returns False (``out`` undefined) for a plane without background.
    """
    ny, nx = binary.shape
    far = ny + nx  # farther than any pixel of the plane
    g = np.empty((ny, nx), np.int32)  # rows to the nearest background pixel of the column
    for x in range(nx):
        g[0, x] = 0 if not binary[0, x] else far
    for y in range(1, ny):
        above, here, mine = g[y - 1], g[y], binary[y]
        for x in range(nx):
            here[x] = 0 if not mine[x] else min(above[x] + 1, far)
    background = False
    for x in range(nx):
        background |= g[ny - 1, x] < far
    if not background:
        return False
    for y in range(ny - 2, -1, -1):
        below, here = g[y + 1], g[y]
        for x in range(nx):
            here[x] = min(here[x], below[x] + 1)
    s = np.empty(nx, np.int64)  # the envelope's columns ...
    t = np.empty(nx, np.int64)  # ... and where each starts to be the lowest
    for y in range(ny):
        row, mine, dist = g[y], binary[y], out[y]
        x = 0
        while x < nx:
            if not mine[x]:
                dist[x] = 0.0
                x += 1
                continue
            a = x
            while x < nx and mine[x]:
                x += 1
            c0, c1 = max(a - 1, 0), min(x, nx - 1)  # the run [a, x) and its two ends
            q = -1
            for u in range(c0, c1 + 1):
                fu = np.int64(row[u])
                if fu >= far:
                    continue
                fu *= fu
                while q >= 0:
                    i, at = s[q], t[q]
                    fi = np.int64(row[i]) * row[i]
                    if (at - i) * (at - i) + fi > (at - u) * (at - u) + fu:
                        q -= 1
                    else:
                        break
                if q < 0:
                    q = 0
                    s[0], t[0] = u, c0
                else:
                    i = s[q]
                    fi = np.int64(row[i]) * row[i]
                    w = 1 + (u * u - i * i + fu - fi) // (2 * (u - i))
                    if w <= c1:
                        q += 1
                        s[q], t[q] = u, w
            for xx in range(x - 1, a - 1, -1):
                while q > 0 and xx < t[q]:
                    q -= 1
                i = s[q]
                d2 = (xx - i) * (xx - i) + np.int64(row[i]) * row[i]
                dist[xx] = np.sqrt(np.float64(d2))
    return True


@njit(nogil=True, cache=True)
def flood(levels, markers, mask, out, most):  # pragma: no cover - compiled
    """Flood a 2D plane of whole-number ``levels`` from ``markers`` (labels) within ``mask``.

    ``skimage.segmentation.watershed(levels, markers, mask=mask)`` (connectivity 1, no
    compactness, no lines) into int32 ``out``, label for label, when no two marker
    pixels have the same level (:func:`bigseg.kernels.watershed.flood_levels`); between
    marker pixels of one level, position decides here (scikit-image: its heap).  A
    pixel is labelled when first reached and queued at its level, raised to the level
    it was reached from; pixels leave the queue lowest level first, of one level in the
    order they came.  Levels being whole numbers, the queue is a list per level (a
    bucket queue) rather than a heap.  Returns False (``out`` undefined) when a level
    is not a whole number or the levels span more than ``most`` values.
    """
    ny, nx = levels.shape
    n = ny * nx
    flat, inside, seeds, result = levels.ravel(), mask.ravel(), markers.ravel(), out.ravel()
    low, high = np.inf, -np.inf
    for i in range(n):
        result[i] = seeds[i] if inside[i] else 0  # markers outside the mask are dropped
        if inside[i]:
            v = flat[i]
            if not v == np.floor(v):  # NaN, an infinity or a fraction
                return False
            low, high = min(low, v), max(high, v)
    if low > high:
        return True
    span = high - low + 1
    if span > most:
        return False
    nkeys = int(span)
    head = np.full(nkeys, -1, np.int64)
    tail = np.full(nkeys, -1, np.int64)
    after = np.empty(n, np.int64)  # the pixel queued after each one at its level
    level = nkeys
    for i in range(n):
        if result[i] != 0:
            k = int(flat[i] - low)
            after[i] = -1
            if tail[k] < 0:
                head[k] = i
            else:
                after[tail[k]] = i
            tail[k] = i
            level = min(level, k)
    while level < nkeys:
        i = head[level]
        if i < 0:
            level += 1
            continue
        head[level] = after[i]
        if head[level] < 0:
            tail[level] = -1
        y = i // nx
        x = i - y * nx
        label = result[i]
        for d in range(4):  # scikit-image's order: above, left, right, below
            if d == 0:
                if y == 0:
                    continue
                j = i - nx
            elif d == 1:
                if x == 0:
                    continue
                j = i - 1
            elif d == 2:
                if x == nx - 1:
                    continue
                j = i + 1
            else:
                if y == ny - 1:
                    continue
                j = i + nx
            if not inside[j] or result[j] != 0:
                continue
            result[j] = label
            k = max(int(flat[j] - low), level)
            after[j] = -1
            if tail[k] < 0:
                head[k] = j
            else:
                after[tail[k]] = j
            tail[k] = j
    return True


@njit(nogil=True, cache=True)
def _root(parent, i):  # pragma: no cover - compiled
    """Return the root of run ``i``, halving the path on the way (parents stay smaller)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(nogil=True, cache=True)
def _runs(plane, value):  # pragma: no cover - compiled
    """Return the 4-connected runs of the pixels of a 2D boolean plane equal to ``value``.

    Runs of each row (``start``, ``stop``), in raster order, with the index of each row's
    first run in ``first`` (``first[ny]``: their number), and the runs of one component
    joined in a union-find ``parent`` whose roots are each component's first run in
    raster order.  A run touches a run of the row above when their columns overlap.
    """
    ny, nx = plane.shape
    cap = ny * ((nx + 1) // 2) + 1  # no more runs than this
    start = np.empty(cap, np.int32)
    stop = np.empty(cap, np.int32)
    parent = np.empty(cap, np.int32)
    first = np.empty(ny + 1, np.int64)
    n = 0
    for y in range(ny):
        first[y] = n
        row = plane[y]
        x = 0
        while x < nx:
            if row[x] != value:
                x += 1
                continue
            s = x
            while x < nx and row[x] == value:
                x += 1
            start[n], stop[n], parent[n] = s, x, n
            n += 1
        if y == 0:
            continue
        i, j = first[y - 1], first[y]  # the runs above, and this row's
        while i < first[y] and j < n:
            if start[i] < stop[j] and start[j] < stop[i]:
                a, b = _root(parent, i), _root(parent, j)
                if a != b:  # the smaller root stays
                    parent[max(a, b)] = min(a, b)
            if stop[i] < stop[j]:
                i += 1
            elif stop[j] < stop[i]:
                j += 1
            else:
                i += 1
                j += 1
    first[ny] = n
    return start, stop, parent, first


@njit(nogil=True, cache=True)
def _numbers(parent, n):  # pragma: no cover - compiled
    """Return the numbers 1.. of ``n`` runs' components, in the raster order of their first runs."""
    final = np.empty(n, np.int32)
    count = 0
    for i in range(n):  # a run's parent comes before it, and is numbered already
        if parent[i] == i:
            count += 1
            final[i] = count
        else:
            final[i] = final[parent[i]]
    return final, count


@njit(nogil=True, cache=True)
def label_plane(plane, value, out):  # pragma: no cover - compiled
    """Label the 4-connected components of the pixels of a 2D boolean plane equal to ``value``.

    ``scipy.ndimage.label(plane == value)`` into int32 ``out``, number for number
    (components numbered in the raster order of their first pixel), from the plane's runs
    (:func:`_runs`): one read of the plane and one write of ``out``.  Returns each label's
    pixel count, index 0 the pixels left unlabelled (``np.bincount(out.ravel())``).
    """
    ny, nx = plane.shape
    start, stop, parent, first = _runs(plane, value)
    final, count = _numbers(parent, first[ny])
    counts = np.zeros(count + 1, np.intp)
    for y in range(ny):
        here = out[y]
        x = 0
        for i in range(first[y], first[y + 1]):
            here[x : start[i]] = 0
            here[start[i] : stop[i]] = final[i]
            counts[final[i]] += stop[i] - start[i]
            x = stop[i]
        here[x:] = 0
    counts[0] = ny * nx - counts[1:].sum()
    return counts


@njit(nogil=True, cache=True)
def fill_holes(plane, max_size, out):  # pragma: no cover - compiled
    """Set ``out`` to ``plane`` with its small holes filled, from the runs of False.

    Every 4-connected component of False pixels of at most ``max_size`` pixels becomes True
    (``skimage.morphology.remove_small_holes``).
    """
    ny, nx = plane.shape
    start, stop, parent, first = _runs(plane, False)
    n = first[ny]
    size = np.zeros(n, np.int64)
    for i in range(n):
        size[_root(parent, i)] += stop[i] - start[i]
    out[:, :] = plane
    for y in range(ny):
        for i in range(first[y], first[y + 1]):
            if size[_root(parent, i)] <= max_size:
                out[y, start[i] : stop[i]] = True


@njit(nogil=True, cache=True)
def _not_below(values, inside, y, x, v, reach):  # pragma: no cover - compiled
    """Whether no ``inside`` pixel within ``reach`` rows and columns of ``(y, x)`` exceeds ``v``."""
    ny, nx = values.shape
    for yy in range(max(y - reach, 0), min(y + reach + 1, ny)):
        for xx in range(max(x - reach, 0), min(x + reach + 1, nx)):
            if inside[yy, xx] and values[yy, xx] > v:
                return False
    return True


@njit(nogil=True, cache=True)
def window_maxima(values, inside, low, r):  # pragma: no cover - compiled
    """Pixels of a 2D plane not below any ``inside`` pixel of their square of ``2r + 1``.

    Of the ``inside`` pixels above ``low``, those no ``inside`` pixel within ``r`` rows
    and columns (the plane's edges clip the square) exceeds, as ``(rows, cols)``,
    row-major: ``values == maximum_filter(where(inside, values, lowest), 2r + 1,
    mode="nearest")``.  A pixel below a neighbour of the 3 x 3 square is no maximum of
    the larger one, so the large square is looked at around those few pixels only.
    Also returns whether every ``inside`` pixel is such a maximum (``low`` aside).
    """
    ny, nx = values.shape
    top = np.zeros((ny, nx), np.bool_)
    count = 0
    trivial = True
    for y in range(ny):
        for x in range(nx):
            if not inside[y, x]:
                continue
            v = values[y, x]
            # The 3 x 3 square first: most pixels end there.
            peak = _not_below(values, inside, y, x, v, 1)
            if peak and r > 1:
                peak = _not_below(values, inside, y, x, v, r)
            if not peak:
                trivial = False
            elif v > low:
                top[y, x] = True
                count += 1
    rows = np.empty(count, np.intp)
    cols = np.empty(count, np.intp)
    k = 0
    for y in range(ny):
        for x in range(nx):
            if top[y, x]:
                rows[k] = y
                cols[k] = x
                k += 1
    return rows, cols, trivial


@njit(nogil=True, cache=True)
def spaced(rows, cols, spacing):  # pragma: no cover - compiled
    """Keep points in order unless closer than ``spacing`` (Chebyshev) to one kept before."""
    n = rows.size
    keep = np.zeros(n, np.bool_)
    kept_r = np.empty(n, np.intp)
    kept_c = np.empty(n, np.intp)
    m = 0
    for i in range(n):
        near = False
        for j in range(m):
            if max(abs(rows[i] - kept_r[j]), abs(cols[i] - kept_c[j])) < spacing:
                near = True
                break
        if not near:
            keep[i] = True
            kept_r[m] = rows[i]
            kept_c[m] = cols[i]
            m += 1
    return keep


@njit(nogil=True, cache=True)
def apart_markers(rows, cols, heights, owner, order, apart, owners):  # pragma: no cover
    """Keep peaks taken in ``order`` far enough from the kept peaks of their own component.

    Peak ``i`` is kept unless ``hypot(dy, dx) < apart * (heights[j] + heights[i])`` for a
    kept peak ``j`` with ``owner[j] == owner[i]`` (``owner`` in ``0..owners``): the loop of
    :func:`bigseg.kernels.watershed.markers_apart`, with a list of kept peaks per component.
    Returns a boolean mask over the peaks.
    """
    n = rows.size
    keep = np.zeros(n, np.bool_)
    head = np.full(owners + 1, -1, np.int64)  # the last peak kept in each component
    below = np.full(n, -1, np.int64)  # the peak kept before it there
    for i in order:
        j = head[owner[i]]
        near = False
        while j >= 0:
            gap = np.hypot(np.float64(rows[j] - rows[i]), np.float64(cols[j] - cols[i]))
            if gap < apart * (heights[j] + heights[i]):
                near = True
                break
            j = below[j]
        if not near:
            keep[i] = True
            below[i] = head[owner[i]]
            head[owner[i]] = i
    return keep


@njit(nogil=True, cache=True)
def disk_extremes_at(plane, ys, xs, dys, ws, high, low):  # pragma: no cover - compiled
    """Maximum and minimum of ``plane`` over the disk window of each pixel ``(ys, xs)``.

    The disk is given by its rows (``dys``, half widths ``ws``); only in-image pixels count
    (:func:`bigseg.kernels.filters.disk_max` and ``disk_min`` at those pixels).
    """
    ny, nx = plane.shape
    for i in range(ys.size):
        y, x = ys[i], xs[i]
        top = plane[y, x]
        bottom = top
        for k in range(dys.size):
            yy = y + dys[k]
            if yy < 0 or yy >= ny:
                continue
            row = plane[yy]
            for xx in range(max(x - ws[k], 0), min(x + ws[k] + 1, nx)):
                v = row[xx]
                top = max(top, v)
                bottom = min(bottom, v)
        high[i] = top
        low[i] = bottom


@njit(nogil=True, cache=True)
def region_box_max(values, regions, hy, hx, own, peak):  # pragma: no cover - compiled
    """Each labelled pixel's largest value in its box, and among its own region's pixels.

    The box reaches ``hy`` rows and ``hx`` columns from the pixel (inside the plane);
    ``own`` and ``peak`` are left alone where ``regions`` is 0.
    """
    ny, nx = values.shape
    for y in range(ny):
        for x in range(nx):
            mine = regions[y, x]
            if mine <= 0:
                continue
            best = values[y, x]
            top = best
            for yy in range(max(y - hy, 0), min(y + hy + 1, ny)):
                for xx in range(max(x - hx, 0), min(x + hx + 1, nx)):
                    v = values[yy, xx]
                    top = max(top, v)
                    if regions[yy, xx] == mine and v > best:
                        best = v
            own[y, x] = best
            peak[y, x] = top
