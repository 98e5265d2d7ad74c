"""What a bigseg output holds, and when an existing one may be replaced.

bigseg replaces an existing output (``overwrite=True``) only when it can tell
that bigseg wrote it and that nothing else was added since: a ``run.json``
that bigseg wrote, and no entry that bigseg does not write.  Anything else --
a user's folder, an output someone added a notebook to, the parent of several
runs -- is refused and left untouched.  An empty directory is not an output
yet, so it is accepted as one without ``overwrite``.

The same rule holds for directories on disk and for object-store prefixes:
both are described here as the relative POSIX paths of what they hold.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from .._errors import InputError
from ..io.objstore import Remote

#: The files and folders of a run's output (see the README's output contract).
OUTPUT_FILES = (
    "nuclei.parquet",
    "nuclei.csv",
    "detections.parquet",
    "tracks.parquet",
    "labels.zarr",
    "track_labels.zarr",
    "run.json",
)

#: Figures that ``bigseg plot OUT`` writes into the output (per time point too).
FIGURE = re.compile(r"(projections|montage|histogram|time)(_t\d+)?\.png")

#: Inside a Zarr store: folders of levels, groups and chunk grids ...
_ZARR_DIR = re.compile(r"\d+|c|labels|nuclei")
#: ... and files of metadata or chunks (``0/c/0/0/0`` in Zarr 3, ``0/0.0.0`` in Zarr 2).
_ZARR_FILE = re.compile(r"zarr\.json|\.zarray|\.zattrs|\.zgroup|\.zmetadata|\d+(\.\d+)*")
#: Inside a Parquet dataset: part files, its metadata, hive partitions.
_PARQUET_FILE = re.compile(r"[\w.-]+\.parquet|_metadata|_common_metadata")
_PARQUET_DIR = re.compile(r"[\w.-]+=[\w.-]+")

#: How many names a refusal lists.
_SHOWN = 3


def foreign_entries(paths: Iterable[tuple[str, bool]]) -> list[str]:
    """Return what bigseg would not have written among an output's entries.

    Parameters
    ----------
    paths : iterable of (str, bool)
        Every entry under the output, as a relative POSIX path and whether it
        is a directory (object stores list files only: pass ``False``).

    Returns
    -------
    list of str
        The top-most foreign entries, sorted (empty when all are bigseg's).
    """
    foreign: set[str] = set()
    for rel, is_dir in paths:
        parts = rel.split("/")
        if not _owned(parts, is_dir):
            # Report the highest foreign ancestor, not every file beneath it.
            for depth in range(1, len(parts) + 1):
                if not _owned(parts[:depth], depth < len(parts) or is_dir):
                    foreign.add("/".join(parts[:depth]))
                    break
    return sorted(foreign)


def _owned(parts: list[str], is_dir: bool) -> bool:
    top, rest = parts[0], parts[1:]
    if top not in OUTPUT_FILES:
        return not rest and not is_dir and bool(FIGURE.fullmatch(top))
    if top.endswith(".zarr"):  # labels.zarr, track_labels.zarr
        return (is_dir or bool(rest)) and _tree_owned(rest, is_dir, _ZARR_DIR, _ZARR_FILE)
    if top.endswith(".parquet"):  # one file, or a partitioned dataset
        return _tree_owned(rest, is_dir, _PARQUET_DIR, _PARQUET_FILE)
    return not rest and not is_dir  # run.json, nuclei.csv


def _tree_owned(rest: list[str], is_dir: bool, folder: re.Pattern, file: re.Pattern) -> bool:
    """Whether a path inside a store names only folders and files of its kinds."""
    if not rest:  # the store itself
        return True
    folders, name = (rest, None) if is_dir else (rest[:-1], rest[-1])
    return all(folder.fullmatch(p) for p in folders) and (
        name is None or bool(file.fullmatch(name))
    )


def is_run_record(text: str) -> bool:
    """Whether ``text`` is a ``run.json`` that bigseg wrote."""
    try:
        record = json.loads(text)
    except ValueError:
        return False
    return (
        isinstance(record, dict)
        and isinstance(record.get("versions"), dict)
        and "bigseg" in record["versions"]
        and isinstance(record.get("input"), dict)
    )


def local_entries(out: Path) -> list[tuple[str, bool]]:
    """Every entry under the directory ``out``, as for :func:`foreign_entries`.

    Symbolic links are listed as files (and so are never followed or owned
    as folders).
    """
    entries = []
    for root, dirs, files in os.walk(out):
        base = Path(root).relative_to(out)
        for name in dirs:
            link = os.path.islink(os.path.join(root, name))
            entries.append(((base / name).as_posix(), not link))
        entries.extend(((base / name).as_posix(), False) for name in files)
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return entries


def refusal(out: str, entries: list[tuple[str, bool]], record: str | None) -> str | None:
    """Why the existing output ``out`` may not be replaced, or None when it may.

    ``entries`` lists what it holds (see :func:`foreign_entries`) and
    ``record`` is the text of its ``run.json`` (None when there is none).
    """
    foreign = foreign_entries(entries)
    if foreign:
        shown = ", ".join(repr(name) for name in foreign[:_SHOWN])
        more = f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else ""
        return (
            f"Output {out!r} holds {shown}{more}, which bigseg did not write; it was left "
            "untouched. Choose another output, or move those away first."
        )
    if record is None or not is_run_record(record):
        return (
            f"Output {out!r} is not a bigseg output (no run.json written by bigseg); it was "
            "left untouched. Choose another output."
        )
    return None


def check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse an existing local output unless bigseg may replace it.

    An empty directory is always accepted.  A non-empty one needs
    ``overwrite`` and must be recognised as bigseg's own (:func:`refusal`).

    Raises
    ------
    InputError
        When ``out`` exists and may not be replaced.
    """
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise InputError(
            f"Output {str(out)!r} exists and is not a directory; choose another output."
        )
    entries = local_entries(out)
    if not entries:
        return
    if not overwrite:
        raise InputError(
            f"Output {str(out)!r} already exists; choose another directory, or pass "
            "overwrite=True to replace an earlier bigseg output."
        )
    record = out / "run.json"
    text = record.read_text(errors="replace") if record.is_file() else None
    reason = refusal(str(out), entries, text)
    if reason:
        raise InputError(reason)


def remove_local(out: Path) -> None:
    """Delete a replaced bigseg output: only the entries bigseg writes, then the folder.

    Whatever is not bigseg's (put there after the last check) stays where it
    is, and so does the folder holding it.
    """
    import shutil

    for name in os.listdir(out):
        path = out / name
        if foreign_entries([(name, path.is_dir() and not path.is_symlink())]):
            continue
        if path.is_dir() and not path.is_symlink():
            inner = local_entries(path)
            if foreign_entries([(f"{name}/{rel}", d) for rel, d in inner]):
                continue
            shutil.rmtree(path)
        else:
            path.unlink()
    try:
        out.rmdir()
    except OSError:
        pass  # something that is not bigseg's remains: leave it


def check_synthetic_replaceable(image: Path, truth: Path) -> None:
    """Refuse to replace anything but a synthetic stack and truth table bigseg wrote.

    ``bigseg synth --overwrite`` may replace an OME-Zarr image named
    ``"synthetic"`` that holds only Zarr entries, and a truth CSV whose header
    is the one :func:`bigseg.synth.make_truth` writes.
    """
    if image.exists() or image.is_symlink():
        entries = local_entries(image) if image.is_dir() and not image.is_symlink() else None
        ok = entries is not None and all(
            _tree_owned(rel.split("/"), is_dir, _ZARR_DIR, _ZARR_FILE) for rel, is_dir in entries
        )
        try:
            meta = json.loads((image / "zarr.json").read_text()) if ok else None
            ok = meta["attributes"]["ome"]["multiscales"][0]["name"] == "synthetic"
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            ok = False
        if not ok:
            raise InputError(
                f"{str(image)!r} exists and is not a synthetic stack that bigseg wrote; it was "
                "left untouched. Choose another name."
            )
    if truth.exists() or truth.is_symlink():
        try:
            with truth.open() as handle:
                header = handle.readline().strip()
        except (OSError, UnicodeDecodeError):
            header = ""
        if truth.is_symlink() or not header.startswith("nucleus,t,z,y,x,"):
            raise InputError(
                f"{str(truth)!r} exists and is not a truth table that bigseg wrote; it was left "
                "untouched. Choose another name."
            )


def check_remote(out: Remote, overwrite: bool) -> list[str]:
    """Refuse an existing remote output unless bigseg may replace it.

    The rule is the local one (:func:`check_replaceable`): only with
    ``overwrite``, and only an earlier bigseg output that holds nothing else.

    Returns
    -------
    list of str
        The objects of the output to replace (relative paths; empty if none).
    """
    files = out.files() if out.exists() else []
    if not files:
        return []
    if not overwrite:
        raise InputError(
            f"Output {out.url!r} already exists; choose another prefix, or pass "
            "overwrite=True to replace an earlier bigseg output."
        )
    reason = refusal(out.url, [(f, False) for f in files], (out / "run.json").read_text())
    if reason:
        raise InputError(reason)
    return files
