"""Detections of very large time points, partitioned by z-slab and linked exactly.

A time point of 10⁷ nuclei holds about 10⁸ detections: more than one worker can link
as one table.  When every t-chunk of a run is one time point of at least
:data:`Z_PARTS_VOXELS` voxels stored in several z work chunks, its detections are
partitioned by z-chunk (:class:`bigseg.pipeline.partitions.Parts`), and linked in four
passes over the parts, on the workers; the client holds one row of counts per part
and the components that cross a seam between parts:

1. **components**: each part finds the links (:func:`bigseg.cluster.components`)
   among its planes and with the planes just above its upper seam (up to
   ``max_gap + 1``).  A link depends on its two planes only, so these are the links
   that linking the whole time point finds.  Each part stores its rows with their
   component (``zlink/comp.P.parquet``) and the component of each row it read above
   the seam (``zlink/seam.P.parquet``).
2. **seams**: each part pairs its components with those of the parts above through
   the rows of its seam; the client joins the pairs (connected components over the
   components that cross a seam) into chains, and each chain belongs to the part of
   its first plane (``zlink/plan.parquet``).
3. **nuclei**: each part gathers the rows of its chains from the parts above, and
   runs the rest of :func:`bigseg.cluster.link` on whole chains: neck splitting, and
   fragment dropping with how far its time point's detections reach (from pass 1).
   Each nucleus goes to the part of its first row (``zlink/piece.Q.P.parquet``); the
   pieces the filter drops but may keep as small bright nuclei go too, marked, and each
   part returns its kept nuclei's peaks, of which the client takes each time point's
   median (:func:`bigseg.cluster.bright_pieces`).
4. **numbering**: each part keeps the marked pieces bright enough against their time
   point's median (:func:`bigseg.cluster.take_bright`), numbers the nuclei whose first
   row it holds, 1..n in the
   order :func:`bigseg.cluster.link` numbers them, and stores them (rows in later parts'
   planes included) as its linked partition.  Ids are made global by the parts'
   counts, in order: the same ids as linking each time point at once.

A nucleus's rows may lie in the planes of later parts: each part also reports the
last plane of its linked rows, so that a label block reads the linked partitions
that reach its planes (:func:`part_rows`).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .. import methods
from ..cluster import (
    combine_bounds,
    components,
    detection_bounds,
    kept_peaks,
    link_components,
    number_components,
    peak_medians,
    take_bright,
)
from ..params import Params
from ..tables import empty_detections
from .layout import LINKED, ZLINK
from .partitions import Parts, _write, part_name
from .scratch import BATCH_BLOCKS
from .sink import Sink

__all__ = ["Z_PARTS_VOXELS", "link_pass", "part_rows", "z_chunks"]

#: A run partitions its detections by z-chunk when each of its t-chunks is one time
#: point of at least this many voxels (about 10⁵ nuclei or more) in several z-chunks.
Z_PARTS_VOXELS = 2**31

_Reader = Callable[[int, int], pd.DataFrame]


def z_chunks(
    t_chunks: tuple[int, ...], z_chunks: tuple[int, ...], plane_voxels: int
) -> tuple[int, ...] | None:
    """Return the z-chunks to partition a run's detections by, or None (by t-chunk).

    ``t_chunks`` and ``z_chunks`` are those of its detections' blocks, ``plane_voxels``
    the voxels of one plane.
    """
    large = sum(z_chunks) * int(plane_voxels) >= Z_PARTS_VOXELS
    if large and len(z_chunks) > 1 and set(t_chunks) == {1}:
        return tuple(int(c) for c in z_chunks)
    return None


def link_pass(
    read: _Reader,
    parts: Parts,
    *,
    params: Params,
    scale: tuple[float, ...],
    planar: bool,
    work: Any,
    sink: Sink,
) -> tuple[np.ndarray, np.ndarray]:
    """Link detections partitioned by z-chunk; return each part's nucleus count and reach.

    ``read(i, z)`` gives the detections of t-chunk ``i``, z-chunk ``z``.  The linked
    parts (part-local ids 1..n) are stored in ``work/linked`` as :func:`bigseg.pipeline.
    partitions.link_partitions` stores them; the reach of a part is the last plane of
    its rows (-1 when empty).
    """
    folder = os.fspath(work / ZLINK)
    for name in (folder, os.fspath(work / LINKED)):
        os.makedirs(name, exist_ok=True)
    for stale in glob.glob(os.path.join(folder, "*.parquet")):  # an interrupted attempt's
        os.remove(stale)
    options = methods.get(params.preset).link_options(params)
    span = int(options["max_gap"]) + 1
    step = sink.batch_blocks(BATCH_BLOCKS)
    common = {"read": read, "parts": parts, "folder": folder}

    stats = _each(sink, len(parts), step, partial(_components, **common, span=span, scale=scale,
                  link_distance=float(options["link_distance"]), max_gap=int(options["max_gap"])),
                  _BOUNDS, "link")  # fmt: skip
    edges = _each(sink, len(parts), step, partial(_seam_pairs, **common), _EDGES, "link")
    _write_plan(edges, folder)
    bounds = combine_bounds(stats)  # how far each time point's detections reach
    # Each part's kept nuclei's peaks (one row each): their time point's median decides
    # which of the pieces the parts dropped are kept (cluster.bright_pieces).
    peaks = _each(sink, len(parts), step, partial(_nuclei_of, parts=parts, folder=folder,
                  params=params, scale=scale, planar=planar, bounds=bounds),
                  {"t": "float64", "peak": "float64"}, "link")  # fmt: skip
    medians = peak_medians(peaks)
    counts = _each(sink, len(parts), step, partial(_numbered_part, work=os.fspath(work),
                   folder=folder, medians=medians), {"nuclei": "int64", "reach": "int64"},
                   "link")  # fmt: skip
    return counts["nuclei"].to_numpy(np.int64), counts["reach"].to_numpy(np.int64)


def _each(sink: Sink, n: int, step: int, task: Callable, meta: dict, label: str) -> pd.DataFrame:
    """Run ``task(p)`` for every part, in batches; its one-row tables, concatenated."""

    def batches() -> Iterator[tuple]:
        for a in range(0, n, step):
            yield (
                dd.from_map(
                    task,
                    range(a, min(a + step, n)),
                    meta=pd.DataFrame({c: pd.Series(dtype=d) for c, d in meta.items()}),
                    enforce_metadata=False,
                ),
            )

    frames = [f for (f,) in sink.batches(batches(), label)]
    return pd.concat(frames, ignore_index=True).astype(meta)


def _file(folder: str, kind: str, *index: int) -> str:
    return os.path.join(folder, ".".join((kind, *(f"{int(i):06d}" for i in index), "parquet")))


def _above(read: _Reader, parts: Parts, p: int, first: int, last: int) -> list[pd.DataFrame]:
    """Read the detections of planes ``first..last`` from the parts above part ``p``.

    Parts of the same t-chunk only; each as read, in part order.
    """
    out = []
    for q in range(p + 1, (parts.t_chunk(p) + 1) * parts.per_t):
        z0, z1 = parts.z_range(q)
        if z0 > last:
            break
        rows = read(parts.t_chunk(q), q % parts.per_t)
        z = rows["z"].to_numpy()
        out.append(rows[(z >= first) & (z <= last)])
    return out


def _components(
    p: int,
    *,
    read: _Reader,
    parts: Parts,
    folder: str,
    span: int,
    scale: tuple[float, ...],
    link_distance: float,
    max_gap: int,
) -> pd.DataFrame:
    """Pass 1: part ``p``'s components, over its planes and those just above its seam.

    Returns how far its detections reach (:func:`bigseg.cluster.detection_bounds`).
    """
    own = read(parts.t_chunk(p), p % parts.per_t).reset_index(drop=True)
    z1 = parts.z_range(p)[1]
    head = _above(read, parts, p, z1, z1 + span - 1)
    both = pd.concat([own, *head], ignore_index=True)
    comp = components(both, link_distance=link_distance, max_gap=max_gap)
    _write(own.assign(comp=comp[: len(own)]), _file(folder, "comp", p))
    seam = both.iloc[len(own) :][["t", "z", "label"]].assign(comp=comp[len(own) :])
    _write(seam.reset_index(drop=True), _file(folder, "seam", p))
    return detection_bounds(own, scale).reset_index()


_BOUNDS = {"t": "int64", **dict.fromkeys(("low", "high", "far_y", "far_x"), "float64")}
_EDGES = {"part": "int64", "comp": "int64", "own": "bool", "above": "int64", "above_comp": "int64"}


def _seam_pairs(p: int, *, read: _Reader, parts: Parts, folder: str) -> pd.DataFrame:
    """Pass 2: pairs of part ``p``'s components with those of the parts above, by shared rows.

    ``own`` says whether part ``p``'s component holds rows of its own planes (one made of
    rows above the seam only is a piece of components above).
    """
    seam = pd.read_parquet(_file(folder, "seam", p))
    empty = pd.DataFrame({c: pd.Series(dtype=d) for c, d in _EDGES.items()})
    if len(seam) == 0:
        return empty
    last = int(seam["z"].max())
    found = []
    for q in range(p + 1, (parts.t_chunk(p) + 1) * parts.per_t):
        if parts.z_range(q)[0] > last:
            break
        above = pd.read_parquet(
            _file(folder, "comp", q),
            columns=["t", "z", "label", "comp"],
            filters=[("z", "<=", last)],
        )
        pairs = seam.merge(above, on=["t", "z", "label"], suffixes=("", "_above"))
        found.append(pd.DataFrame({"above": q, "above_comp": pairs["comp_above"].to_numpy(),
                                   "comp": pairs["comp"].to_numpy()}))  # fmt: skip
    pairs = pd.concat(found, ignore_index=True).drop_duplicates()
    own = pd.read_parquet(_file(folder, "comp", p), columns=["comp"])["comp"].unique()
    pairs = pairs.assign(part=p, own=pairs["comp"].isin(own))
    return pairs[list(_EDGES)].astype(_EDGES)


def _write_plan(edges: pd.DataFrame, folder: str) -> None:
    """Join the components that cross seams into chains; each chain's owner is its first part.

    ``zlink/plan.parquet``: ``part, comp, chain, owner`` for every component of a chain
    of more than one part's components.
    """
    nodes = pd.concat(
        [
            edges[["part", "comp", "own"]],
            edges[["above", "above_comp"]]
            .set_axis(["part", "comp"], axis=1)
            .assign(own=True),  # a row above the seam is a row of the part above
        ],
        ignore_index=True,
    )
    nodes = nodes.groupby(["part", "comp"], sort=True, as_index=False)["own"].max()
    key = pd.MultiIndex.from_frame(nodes[["part", "comp"]])
    a = key.get_indexer(pd.MultiIndex.from_frame(edges[["part", "comp"]]))
    b = key.get_indexer(
        pd.MultiIndex.from_frame(edges[["above", "above_comp"]].set_axis(["part", "comp"], axis=1))
    )
    n = len(nodes)
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    chain = connected_components(graph, directed=False)[1] if n else np.empty(0, np.int64)
    nodes["chain"] = chain.astype(np.int64)
    owner = nodes[nodes["own"]].groupby("chain")["part"].min()
    nodes["owner"] = nodes["chain"].map(owner).astype(np.int64)
    plan = nodes[["part", "comp", "chain", "owner"]].astype(np.int64)
    _write(plan, os.path.join(folder, "plan.parquet"))


def _nuclei_of(
    p: int,
    *,
    parts: Parts,
    folder: str,
    params: Params,
    scale: tuple[float, ...],
    planar: bool,
    bounds: pd.DataFrame,
) -> pd.DataFrame:
    """Pass 3: link part ``p``'s chains whole; hand each nucleus to the part of its first row."""
    # the plan's rows of this part's components and of the chains it owns only
    plan = pd.read_parquet(
        os.path.join(folder, "plan.parquet"), filters=[[("part", "==", p)], [("owner", "==", p)]]
    )
    own = pd.read_parquet(_file(folder, "comp", p))
    mine = plan[plan["part"] == p]
    elsewhere = mine.loc[mine["owner"] != p, "comp"].to_numpy()
    own = own[~own["comp"].isin(elsewhere)]
    comp = own["comp"].to_numpy(np.int64)
    base = int(comp.max()) + 1 if len(comp) else 0  # chains get ids after the part's own
    chain_of = pd.Series(mine["chain"].to_numpy(), index=mine["comp"].to_numpy())
    in_chain = own["comp"].isin(chain_of.index).to_numpy()
    comp = comp.copy()
    comp[in_chain] = base + own["comp"][in_chain].map(chain_of).to_numpy(np.int64)
    tables, ids = [own.drop(columns="comp")], [comp]
    gathered = plan[(plan["owner"] == p) & (plan["part"] != p)].sort_values(["part", "comp"])
    for q, rows in gathered.groupby("part", sort=True):
        wanted = rows["comp"].to_numpy(np.int64)
        above = pd.read_parquet(_file(folder, "comp", int(q)), filters=[("comp", "in", wanted)])
        chains = pd.Series(rows["chain"].to_numpy(), index=wanted)
        tables.append(above.drop(columns="comp"))
        ids.append(base + above["comp"].map(chains).to_numpy(np.int64))
    rows = pd.concat(tables, ignore_index=True)
    linked = link_components(
        rows, np.concatenate(ids), params=params, scale=scale, planar=planar, bounds=bounds,
        candidates=True,
    )  # fmt: skip
    if len(linked) == 0:
        return kept_peaks(linked)
    first = linked.groupby("nucleus")["z"].transform("min").to_numpy(np.int64)
    edges = np.cumsum((0, *parts.z_chunks))  # type: ignore[arg-type]
    to = parts.t_chunk(p) * parts.per_t + np.searchsorted(edges, first, side="right") - 1
    for q in np.unique(to):
        _write(linked[to == q].reset_index(drop=True), _file(folder, "piece", int(q), p))
    return kept_peaks(linked)


def _numbered_part(p: int, *, work: str, folder: str, medians: pd.Series) -> pd.DataFrame:
    """Pass 4: number the nuclei whose first row part ``p`` holds; store its linked partition.

    The dropped pieces passed on as candidates are kept where bright enough against their
    time point's ``medians`` (:func:`bigseg.cluster.take_bright`).
    """
    paths = sorted(glob.glob(_file(folder, "piece", p).replace(".parquet", ".*.parquet")))
    pieces = [take_bright(pd.read_parquet(path), medians) for path in paths]
    pieces = [piece for piece in pieces if len(piece)]
    if not pieces:
        linked = empty_detections().assign(nucleus=pd.Series(dtype="int64"))
    else:
        linked = pd.concat(pieces, ignore_index=True)
        source = np.repeat(np.arange(len(pieces)), [len(t) for t in pieces])
        key = pd.MultiIndex.from_arrays([source, linked["nucleus"].to_numpy()])
        linked["nucleus"] = number_components(linked, pd.factorize(key)[0].astype(np.int64))
    _write(linked, os.path.join(work, LINKED, part_name(p)))
    reach = int(linked["z"].max()) if len(linked) else -1
    n = int(linked["nucleus"].max()) if len(linked) else 0
    return pd.DataFrame({"nuclei": [n], "reach": [reach]})


def part_rows(
    linked_dir: str,
    parts: Parts,
    offsets: tuple[int, ...],
    reach: tuple[int, ...],
    z_edges: tuple[int, ...],
    location: tuple[int, ...],
) -> pd.DataFrame:
    """``t, z, label, value`` (global nucleus ids) of the label block at ``location``.

    The block's planes are ``z_edges[k]:z_edges[k + 1]`` of t-chunk ``i``
    (``location[:2] == (i, k)``); its rows come from the linked parts of t-chunk ``i``
    that start at or before its last plane and reach its first.
    """
    i, k = (int(v) for v in location[:2])
    b0, b1 = int(z_edges[k]), int(z_edges[k + 1])
    frames = [pd.DataFrame({c: pd.Series(dtype="int64") for c in ("t", "z", "label", "value")})]
    for p in range(i * parts.per_t, (i + 1) * parts.per_t):
        z0 = parts.z_range(p)[0]
        if z0 >= b1 or reach[p] < b0:
            continue
        rows = pd.read_parquet(
            os.path.join(linked_dir, part_name(p)),
            columns=["t", "z", "label", "nucleus"],
            filters=[("z", ">=", b0), ("z", "<", b1)],
        )
        frames.append(
            pd.DataFrame(
                {
                    "t": rows["t"].to_numpy(np.int64),
                    "z": rows["z"].to_numpy(np.int64),
                    "label": rows["label"].to_numpy(np.int64),
                    "value": rows["nucleus"].to_numpy(np.int64) + int(offsets[p]),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)
