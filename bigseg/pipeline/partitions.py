"""Tables partitioned by time point: link, number and write them on the workers.

Detections stay a dask DataFrame with one partition per chunk of time points of the
stack (z-links never cross t).  The link pass links each partition on the workers
(:func:`bigseg.cluster.link` with the method's options) and stores it, with
partition-local nucleus ids 1..n, in the scratch directory; only one row of counts
per partition comes back.  Nucleus ids are made global by adding each partition's
offset (the cumulative count of the partitions before it: ids are numbered by time
first, so this gives the same ids as linking everything at once).  The tables pass
then writes ``detections.parquet`` and ``nuclei.parquet`` as partitioned Parquet
datasets (``part.000000.parquet``, ... one file per partition, readable by pandas,
pyarrow and dask), and ``nuclei.csv`` only when the run is small
(:data:`SMALL_NUCLEI`).  The client holds counts and metadata only.
"""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import dask.dataframe as dd
import numpy as np
import pandas as pd

from ..cluster import link, nuclei_table
from ..io import objstore
from ..params import Params
from ..tables import PEAK, empty_detections
from .layout import BLOCKS, LINKED

__all__ = [
    "LINKED",
    "SMALL_DETECTIONS",
    "Parts",
    "block_name",
    "block_reader",
    "SMALL_NUCLEI",
    "detections_of_blocks",
    "detections_of_frames",
    "link_partitions",
    "lazy_parts",
    "part_name",
    "read_linked",
    "read_parts",
    "reset_tables",
    "split_by_t",
    "write_table",
    "write_partitions",
]

#: At most this many nuclei: ``nuclei.csv`` is written and ``Result.nuclei`` is pandas.
SMALL_NUCLEI = 100_000

#: At most this many detections: ``Result.detections`` is pandas (else a dask DataFrame).
SMALL_DETECTIONS = 1_000_000

#: ``float_format`` of ``nuclei.csv``: 7 significant digits, the precision of float32
#: intensities, and 1 nm for positions up to 10 mm; the Parquet tables keep full float64.
CSV_FLOAT_FORMAT = "%.7g"

#: Columns stored as int64 (plane ``label`` keeps its own integer dtype).
INTEGER_COLUMNS = ("t", "z_first", "z_last", "nucleus", "track_id", "n_planes")

_COUNTS = {"detections": "int64", "nuclei": "int64"}


def part_name(i: int) -> str:
    """File name of partition ``i`` of a dataset (zero-padded: names sort in order)."""
    return f"part.{int(i):06d}.parquet"


def detections_of_blocks(scratch_path: Any, first: int, end: int) -> dd.DataFrame:
    """Read the detections of t-chunks ``first`` to ``end`` from the per-block completion markers.

    One partition per t-chunk (lazy); the graph holds those t-chunks only, so a run
    builds one batch of partitions at a time.
    """
    blocks = os.fspath(scratch_path / BLOCKS)
    return dd.from_map(
        partial(_read_markers, blocks),
        range(int(first), int(end)),
        meta=empty_detections(),
        enforce_metadata=False,
    )


def _read_markers(blocks: str, i: int, z: int | None = None) -> pd.DataFrame:
    """Read the detections of t-chunk ``i`` (of its z-chunk ``z`` only, when given).

    Its blocks' markers, in block order.
    """
    prefix = f"{int(i)}_" if z is None else f"{int(i)}_{int(z)}_"
    paths = _glob(blocks, f"{prefix}*.parquet")
    key = [tuple(int(v) for v in os.path.basename(p)[: -len(".parquet")].split("_")) for p in paths]
    frames = [pd.read_parquet(p) for _, p in sorted(zip(key, paths))]
    return pd.concat([empty_detections(), *frames], ignore_index=True)


def block_name(index: Sequence[int]) -> str:
    """File name of the detections of the block at ``index`` (``T_Z_Y_X.parquet``)."""
    return "_".join(str(int(v)) for v in index) + ".parquet"


def write_table(table: pd.DataFrame, path: str) -> int:
    """Write one table (a block's detections) to ``path``, local or a URL; return its rows."""
    _write(table, path)
    return len(table)


def _glob(folder: str, pattern: str) -> list[str]:
    """List the files of ``folder`` (a local path or a URL) whose names match ``pattern``."""
    if "://" not in folder:
        return glob.glob(os.path.join(folder, pattern))
    import fsspec

    fs, key = fsspec.core.url_to_fs(folder)
    fs.invalidate_cache()
    protocol = folder.split("://", 1)[0]
    return [f"{protocol}://{f}" for f in fs.glob(f"{key}/{pattern}")]


def block_reader(scratch_path: Any) -> Callable[[int, int], pd.DataFrame]:
    """``read(i, z)``: the detections of t-chunk ``i``, z-chunk ``z`` (whole planes)."""
    return partial(_read_markers, os.fspath(scratch_path / BLOCKS))


@dataclass(frozen=True)
class Parts:
    """The partitions of a run's detections, in order: by t-chunk, or by t-chunk and z-chunk.

    Detections are partitioned by t-chunk, or, when each t-chunk is one time point too
    large for one worker's table (:mod:`bigseg.pipeline.zparts`), by z-chunk of each
    time point: part ``p`` is t-chunk ``p // per_t``, z-chunk ``p % per_t``.
    """

    t_chunks: tuple[int, ...]
    z_chunks: tuple[int, ...] | None = None

    @property
    def by_z(self) -> bool:
        """Whether parts are z-chunks of time points."""
        return self.z_chunks is not None

    @property
    def per_t(self) -> int:
        """Parts per t-chunk."""
        return 1 if self.z_chunks is None else len(self.z_chunks)

    def __len__(self) -> int:
        return len(self.t_chunks) * self.per_t

    def t_chunk(self, p: int) -> int:
        """Return the t-chunk of part ``p``."""
        return int(p) // self.per_t

    def z_range(self, p: int) -> tuple[int, int]:
        """Return the planes ``z0, z1`` of part ``p`` (``0, -1``: all planes, when not by z)."""
        if self.z_chunks is None:
            return 0, -1
        edges = np.cumsum((0, *self.z_chunks))
        j = int(p) % self.per_t
        return int(edges[j]), int(edges[j + 1])


def split_by_t(frame: pd.DataFrame, t_chunks: Sequence[int]) -> list[pd.DataFrame]:
    """Split a detections table already in memory into one table per t-chunk."""
    edges = np.cumsum((0, *t_chunks))
    t = frame["t"].to_numpy(np.float64)
    order = np.argsort(t, kind="stable")
    bounds = np.searchsorted(t[order], edges - 0.5)
    return [frame.iloc[order[a:b]].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:])]


def detections_of_frames(
    parts: Sequence[pd.DataFrame], first: int = 0, end: int | None = None
) -> dd.DataFrame:
    """Return ``parts[first:end]`` (tables of t-chunks, :func:`split_by_t`) as partitions."""
    chosen = list(parts[first:end])
    return dd.from_map(_identity, chosen, meta=parts[0].iloc[:0], enforce_metadata=False)


def _identity(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def link_partitions(
    detections: dd.DataFrame,
    work: Any,
    *,
    params: Params,
    scale: Sequence[float],
    planar: bool,
    first: int = 0,
) -> dd.DataFrame:
    """Link each partition and store it in ``work/linked`` (lazy; one row of counts each).

    ``detections`` may be a slice of the partitions of a run's detections (a batch),
    whose first is partition ``first`` of the run: the linked files are named by their
    place in the run.
    """
    linked = os.fspath(work / LINKED)
    _makedirs(linked)
    return detections.map_partitions(
        _link_part,
        linked,
        params=params,
        scale=tuple(float(s) for s in scale),
        planar=planar,
        first=int(first),
        meta=pd.DataFrame({c: pd.Series(dtype=d) for c, d in _COUNTS.items()}),
        enforce_metadata=False,
    )


def _link_part(
    part: pd.DataFrame,
    linked_dir: str,
    *,
    params: Params,
    scale: tuple,
    planar: bool,
    first: int = 0,
    partition_info: dict | None = None,
) -> pd.DataFrame:
    number = first + (0 if partition_info is None else int(partition_info["number"]))
    out = link(part, params=params, scale=scale, planar=planar)
    _write(out, _join(linked_dir, part_name(number)))
    n_nuclei = int(out["nucleus"].max()) if len(out) else 0
    return pd.DataFrame({"detections": [len(out)], "nuclei": [n_nuclei]}).astype(_COUNTS)


def read_linked(work: Any, i: int, offset: int = 0) -> pd.DataFrame:
    """Read the linked detections of partition ``i``, with ids shifted by ``offset``."""
    table = pd.read_parquet(_join(os.fspath(work / LINKED), part_name(i)))
    table["nucleus"] = table["nucleus"].to_numpy(np.int64) + int(offset)
    return table


def read_parts(path: Any) -> pd.DataFrame:
    """Read a partitioned table into pandas, part file by part file, in order.

    One small read per file costs a fifth of the memory of pyarrow's dataset reader
    over thousands of files (measured with 2 000 parts); the parts are concatenated
    :data:`READ_GROUP` at a time, so that thousands of small DataFrames are never alive
    at once (5 000 parts of 2 rows: +24 MiB at once, +5 MiB in groups).
    """
    files = _part_files(path)
    groups = [
        pd.concat([_read_part(f) for f in files[a : a + READ_GROUP]], ignore_index=True)
        for a in range(0, len(files), READ_GROUP)
    ]
    return pd.concat(groups, ignore_index=True)


#: Part files read back per concatenation by :func:`read_parts`.
READ_GROUP = 100


def lazy_parts(path: Any) -> dd.DataFrame:
    """Read a partitioned table lazily: a dask DataFrame, one partition per part file."""
    # One partition per part file, in order (dask's own fsspec reader uses a keyword
    # that pandas 3.1 deprecates).
    files = _part_files(path)
    meta = _read_part(files[0]).iloc[:0]
    return dd.from_map(_read_part, files, meta=meta, enforce_metadata=False)


def _part_files(path: Any) -> list[str]:
    """List the part files of a dataset, in order (local paths or URLs)."""
    if isinstance(path, objstore.Remote):
        protocol = path.url.split("://", 1)[0]
        return [f"{protocol}://{f}" for f in sorted(path.fs.glob(f"{path.key}/part.*.parquet"))]
    return sorted(glob.glob(os.path.join(os.fspath(path), "part.*.parquet")))


def _read_part(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


def relabel_rows(linked_dir: str, location: tuple[int, ...]) -> pd.DataFrame:
    """``t, z, label, value`` for relabelling the block at ``location`` (local nucleus ids).

    The rows of its t-chunk's partition (whole planes: every block holds whole planes).
    """
    table = pd.read_parquet(
        _join(linked_dir, part_name(int(location[0]))), columns=["t", "z", "label", "nucleus"]
    )
    return table.rename(columns={"nucleus": "value"})


def reset_tables(work: Any) -> None:
    """Empty ``detections.parquet`` and ``nuclei.parquet`` in ``work`` (before writing them)."""
    for name in ("detections.parquet", "nuclei.parquet"):
        if (work / name).exists():  # partial, from an interrupted attempt
            objstore.rmtree(work / name)
        _makedirs(os.fspath(work / name))


def write_partitions(
    work: Any,
    offsets: np.ndarray,
    starts: Sequence[int],
    t_values: Sequence[np.ndarray],
    *,
    scale: Sequence[float],
    planar: bool,
    first: int = 0,
) -> dd.DataFrame:
    """Write partitions of ``detections.parquet`` and ``nuclei.parquet`` (lazy).

    Partition ``first + i`` gets global ids (``offsets[i]`` added) and the original
    time indices ``t_values[i]`` of its t-chunk, whose first stack position is
    ``starts[i]``; one row of counts per partition comes back.  The datasets'
    directories must exist (:func:`reset_tables`).
    """
    return dd.from_map(
        partial(_write_part, os.fspath(work), scale=tuple(float(s) for s in scale), planar=planar),
        range(int(first), int(first) + len(offsets)),
        [int(o) for o in offsets],
        [int(s) for s in starts],
        list(t_values),
        meta=pd.DataFrame({c: pd.Series(dtype=d) for c, d in _COUNTS.items()}),
        enforce_metadata=False,
    )


def _write_part(
    work: str,
    i: int,
    offset: int,
    start: int,
    t_values: np.ndarray,
    *,
    scale: tuple,
    planar: bool,
) -> pd.DataFrame:
    linked = pd.read_parquet(_join(_join(work, LINKED), part_name(i)))
    linked["nucleus"] = linked["nucleus"].to_numpy(np.int64) + offset
    linked = linked.drop(columns=[PEAK], errors="ignore")  # private to the linking
    nuclei = nuclei_table(linked, scale=scale, planar=planar)
    linked, nuclei = (integer_columns(table, t_values, start) for table in (linked, nuclei))
    _write(linked, _join(_join(work, "detections.parquet"), part_name(i)))
    _write(nuclei, _join(_join(work, "nuclei.parquet"), part_name(i)))
    return pd.DataFrame({"detections": [len(linked)], "nuclei": [len(nuclei)]}).astype(_COUNTS)


def integer_columns(table: pd.DataFrame, t_values: np.ndarray, first: int = 0) -> pd.DataFrame:
    """Store ``t`` as the original time index and the index/id columns as int64.

    ``t_values`` are the original indices of the stack positions ``first, first + 1, ...``.
    """
    table = table.copy()
    for name in INTEGER_COLUMNS:
        if name not in table:
            continue
        values = table[name].to_numpy()
        if name == "t":
            values = np.asarray(t_values)[values.astype(np.int64) - int(first)]
        table[name] = values.astype(np.int64)
    return table


def _join(base: str, name: str) -> str:
    return f"{base.rstrip('/')}/{name}" if "://" in base else os.path.join(base, name)


def _makedirs(path: str) -> None:
    if "://" in path:
        import fsspec

        fs, key = fsspec.core.url_to_fs(path)
        fs.makedirs(key, exist_ok=True)
    else:
        os.makedirs(path, exist_ok=True)


def _write(table: pd.DataFrame, path: str) -> None:
    """Write one part file (atomically on local paths)."""
    if "://" in path:
        table.to_parquet(path, index=False)
        return
    tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
    table.to_parquet(tmp, index=False)
    os.replace(tmp, path)
