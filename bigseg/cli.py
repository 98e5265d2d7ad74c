"""The ``bigseg`` command line: ``segment``, ``synth``, ``score`` and ``plot``."""

from __future__ import annotations

import signal
import sys

try:  # Ctrl-C while the command starts is one sentence too, as it is in main().
    import argparse
    import contextlib
    import gc
    import json
    import logging
    import os
    import re
    import threading
    import time
    from collections.abc import Iterator, Sequence
    from pathlib import Path
    from typing import Any

    from ._errors import InputError
except KeyboardInterrupt:  # pragma: no cover - tested through a subprocess
    print("bigseg: interrupted by SIGINT; nothing was started.", file=sys.stderr)
    raise SystemExit(128 + signal.SIGINT) from None

log = logging.getLogger("bigseg")

# --------------------------------------------------------------------------- flags

#: The library names its parameters in errors and warnings (``min_radius=4``,
#: ``scale=(z, y, x)``, ``overwrite=True``); the command line names its flags. These
#: are the keywords that have a flag, rewritten by :func:`as_flags` (and only there).
KEYWORD_FLAGS = {
    "scale": "--scale",
    "chunks": "--chunks",
    "channel": "--channel",
    "files_axis": "--files-axis",
    "t": "--t",
    "min_radius": "--min-radius",
    "max_radius": "--max-radius",
    "smooth_radius": "--smooth-radius",
    "preset": "--preset",
    "shape": "--shape",
    "nuclei": "--nuclei",
    "seed": "--seed",
    "difficulty": "--difficulty",
    "search_radius": "--search-radius",
    "frame_interval": "--frame-interval",
}
#: Boolean keywords whose flag takes no value.
SWITCH_FLAGS = {"overwrite": "--overwrite", "resume": "--resume", "track_labels": "--track-labels"}
_NAMES = "|".join(sorted(KEYWORD_FLAGS, key=len, reverse=True))
_TUPLE = re.compile(rf"(?<![\w.])({_NAMES})=\(([^()]*)\)")
_SWITCH = re.compile(r"(?<![\w.])(" + "|".join(SWITCH_FLAGS) + r")=True\b")
_KEYWORD = re.compile(rf"(?<![\w.])({_NAMES})=([^\s)\].,;:]?)")


def as_flags(message: str) -> str:
    """Rewrite the library's keywords in ``message`` as the command line's flags.

    ``scale=(z, y, x)`` becomes ``--scale Z Y X``, ``scale=(1.5, 0.71, 0.71)``
    ``--scale 1.5 0.71 0.71``, ``chunks=(z, -1, -1)`` ``--chunks Z,-1,-1``,
    ``overwrite=True`` ``--overwrite`` and ``min_radius=4`` ``--min-radius 4``.
    """

    def values(match: re.Match) -> str:
        name, inner = match.groups()
        items = [v.strip().upper() for v in inner.split(",") if v.strip()]
        return f"{KEYWORD_FLAGS[name]} {(',' if name == 'chunks' else ' ').join(items)}"

    def keyword(match: re.Match) -> str:
        name, following = match.groups()
        return KEYWORD_FLAGS[name] + (f" {following}" if following else "")

    message = _TUPLE.sub(values, message)
    message = _SWITCH.sub(lambda m: SWITCH_FLAGS[m.group(1)], message)
    return _KEYWORD.sub(keyword, message)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _time_selection(text: str) -> slice | int:
    """Parse ``--t``: ``3``, ``0:10``, ``:10``, ``5:`` or ``0:100:10``."""
    parts = text.split(":")
    try:
        values = [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time selection like 0:10") from None
    if len(values) == 1 and values[0] is not None:
        return values[0]
    if not 2 <= len(values) <= 3 or any(v is not None and v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} is not a time selection like 0:10")
    return slice(*values)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bigseg")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree, not installed
        return "(version unknown: not installed)"


def _preset_value(name: str) -> str:
    """Return the presets' value of the µm parameter ``name`` as help text."""
    from .params import PRESETS

    values = {preset: getattr(params, name) for preset, params in PRESETS.items()}
    if len(set(values.values())) == 1:
        return f"{next(iter(values.values())):g} µm, both presets"
    return ", ".join(f"{value:g} µm with {preset}" for preset, value in values.items())


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="bigseg",
        description="Find cell nuclei in 3D and time-lapse stacks larger than memory.",
    )
    parser.add_argument("--version", action="version", version=f"bigseg {_version()}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="debug logs of bigseg and dask's INFO logs (-vv: debug logs of everything)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _segment_parser,
        _track_parser,
        _export_ctc_parser,
        _convert_parser,
        _synth_parser,
        _score_parser,
        _plot_parser,
    ):
        # -v is accepted after the subcommand too (bigseg segment IN -o OUT -v).
        add(sub).add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS, help="debug logs"
        )
    return parser


def _segment_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``segment`` subcommand and its options to ``sub``."""
    seg = sub.add_parser(
        "segment",
        help="segment a stack into 3D nuclei",
        description="Segment a stack; write nuclei and detections tables, "
        "a label volume and a run record into OUT.",
    )
    seg.add_argument(
        "input",
        help="TIFF / OME-TIFF file, OME-Zarr image, Zarr array, or a folder or quoted glob "
        "pattern of TIFF files (e.g. 'planes/*.tif')",
    )
    seg.add_argument(
        "-o",
        "--output",
        required=True,
        help="output directory: a new or empty one (missing parents are created)",
    )
    seg.add_argument(
        "--scale",
        nargs="+",
        type=_float,
        metavar="UM",
        help="voxel size in µm, Z Y X (Y X for 2D images; overrides the file's metadata)",
    )
    seg.add_argument(
        "--channel",
        type=int,
        help="channel to segment, from 0 (default: the only one; required when there are several)",
    )
    seg.add_argument(
        "--files-axis",
        choices=("t", "z"),
        help="for a folder or pattern of TIFF files: the axis the files make "
        "(default t: one file per time point; z: one file per plane)",
    )
    seg.add_argument(
        "--preset",
        default="default",
        choices=("default", "seed"),
        help="parameter preset (default: %(default)r). default: 3D Gaussian smoothing, the "
        "background (camera offset, autofluorescence) taken off, a global floor (Otsu of "
        "the log signal) and a local half-maximum cut per nucleus, nuclei stacked in z "
        "split, nuclei smaller than a --min-radius sphere dropped. seed: the "
        "2014 scikit-image recipe exactly (per-plane median and contrast filters, one Otsu "
        "threshold of the maximum projection)",
    )
    seg.add_argument(
        "--smooth-radius",
        type=_float,
        metavar="UM",
        help=f"smoothing size in µm (default: {_preset_value('smooth_radius')}). default preset: "
        "reach of the 3D Gaussian (sigma UM/3 in each axis); seed preset: radius of the "
        "per-plane median and contrast-enhancement disks",
    )
    seg.add_argument(
        "--min-radius",
        type=_float,
        metavar="UM",
        help=f"smallest nucleus radius in µm (default: {_preset_value('min_radius')}). In both "
        "presets per-plane regions of equivalent radius sqrt(area/pi) up to UM are dropped and "
        "watershed markers are at least 2 UM apart; the default preset also drops nuclei "
        "smaller than a sphere of radius UM and takes each voxel's local maximum within UM",
    )
    seg.add_argument(
        "--max-radius",
        type=_float,
        metavar="UM",
        help=f"largest nucleus radius in µm (default: {_preset_value('max_radius')}). In both "
        "presets per-plane regions of equivalent radius sqrt(area/pi) of UM or more are dropped",
    )
    seg.add_argument(
        "--chunks",
        metavar="Z,Y,X",
        help="dask chunk sizes to read the input in (-1: whole axis), kept as work blocks "
        "where they fit the workers' memory (default: bigseg's own blocks, from the storage "
        "chunks split to fit and tiny ones merged); chunks that split planes make bigseg "
        "stitch labels across them",
    )
    seg.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="worker processes of the local cluster (default: cores / threads per worker)",
    )
    seg.add_argument(
        "--threads-per-worker",
        type=_positive_int,
        default=None,
        help="threads per worker (default: cores / --workers; without --workers 2, or 1 on "
        "a one-core machine)",
    )
    seg.add_argument(
        "--memory-limit",
        default="auto",
        help="memory limit per worker, e.g. 2GiB (default: %(default)s, an equal share of RAM)",
    )
    seg.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use an existing dask scheduler, e.g. tcp://10.0.0.5:8786 (default: start a "
        "local cluster on 127.0.0.1)",
    )
    seg.add_argument(
        "--t",
        type=_time_selection,
        metavar="START:STOP",
        help="segment only these time points, e.g. 0:10 (Python slice, stop excluded) or 3 "
        "(default: all)",
    )
    seg.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an earlier bigseg output (only one that holds nothing else)",
    )
    seg.add_argument(
        "--resume",
        action="store_true",
        help="keep partial results if interrupted, and continue an interrupted --resume run",
    )
    seg.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (they are shown only when stdout is a terminal)",
    )
    _quiet_option(seg, "print only errors: no bars, link or summary")
    seg.add_argument(
        "--no-track",
        action="store_true",
        help="do not link the nuclei across time into tracks (by default a series of more "
        "than one time point is tracked)",
    )
    _tracking_options(seg)
    return seg


def _tracking_options(parser: argparse.ArgumentParser) -> None:
    """Add the tracking options (``segment`` and ``track``) to ``parser``."""
    from .params import TrackParams

    defaults = TrackParams()
    group = parser.add_argument_group("tracking (time series)")
    group.add_argument(
        "--search-radius",
        type=_float,
        metavar="UM",
        help="farthest a nucleus moves between consecutive time points, µm, beyond its "
        "own radius (daughters lie about their radius from where their mother was) "
        f"(default: {defaults.search_radius:g})",
    )
    group.add_argument(
        "--frame-interval",
        type=_float,
        metavar="S",
        help="seconds between time points, for speeds in µm/min (default: the input's "
        "metadata: ImageJ finterval, OME TimeIncrement, OME-Zarr t scale)",
    )
    group.add_argument(
        "--no-gaps", action="store_true", help="do not close gaps of one missing time point"
    )
    group.add_argument("--no-divisions", action="store_true", help="do not detect divisions")
    group.add_argument(
        "--track-labels",
        action="store_true",
        help="also write track_labels.zarr, the label volume by track id (labels.zarr keeps "
        "the nucleus ids); bigseg track rebuilds it whenever the output has one",
    )


def _track_params(args: argparse.Namespace) -> Any:
    """Return the :class:`bigseg.params.TrackParams` of the tracking options."""
    from .params import TrackParams

    changes: dict[str, Any] = {}
    if args.search_radius is not None:
        changes["search_radius"] = args.search_radius
    if args.no_gaps:
        changes["gap_closing"] = False
    if args.no_divisions:
        changes["divisions"] = False
    return TrackParams(**changes)


def _track_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``track`` subcommand and its options to ``sub``."""
    trk = sub.add_parser(
        "track",
        help="link the nuclei of a finished output across time again",
        description="Track the nuclei of a finished output (of more than one time point) "
        "again, with other parameters, without segmenting: nuclei.parquet's track columns, "
        "tracks.parquet and run.json are replaced, each table at once.",
    )
    trk.add_argument("result", help="output directory of 'bigseg segment'")
    _tracking_options(trk)
    trk.add_argument("--no-progress", action="store_true", help="no progress bars")
    _quiet_option(trk)
    return trk


def _export_ctc_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``export-ctc`` subcommand to ``sub``."""
    exp = sub.add_parser(
        "export-ctc",
        help="write a tracked output in the Cell Tracking Challenge format",
        description="Write res_track.txt and one mask per time point (mask000.tif ...), "
        "labelled by track, into a new folder.",
    )
    exp.add_argument("result", help="output directory of 'bigseg segment' (tracked)")
    exp.add_argument("directory", help="folder to write (new or empty)")
    _quiet_option(exp)
    return exp


def _quiet_option(parser: argparse.ArgumentParser, text: str = "print only errors") -> None:
    """Add ``-q/--quiet`` to a subcommand that prints what it wrote."""
    parser.add_argument("-q", "--quiet", action="store_true", help=text)


def _convert_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``convert`` subcommand and its options to ``sub``."""
    con = sub.add_parser(
        "convert",
        help="copy a TIFF stack into chunked OME-Zarr (streamed, resumable)",
        description="Copy a TIFF, OME-TIFF, ImageJ hyperstack or TIFF sequence into an "
        "OME-Zarr 0.5 image with the voxel size in µm, chunks that suit bigseg's work blocks "
        "and an image pyramid, a slab of planes at a time; each chunk is a Zarr shard of "
        "smaller inner chunks unless --no-shards. Run the same command again to continue an "
        "interrupted conversion.",
    )
    con.add_argument("input", help="TIFF file, folder or glob pattern of TIFF files, or Zarr")
    con.add_argument("output", help="the new OME-Zarr image (e.g. stack.ome.zarr)")
    con.add_argument(
        "--scale",
        nargs="+",
        type=_float,
        metavar="UM",
        help="voxel size in µm, Z Y X (Y X for 2D images; overrides the file's metadata)",
    )
    con.add_argument("--channel", type=int, help="channel to copy, from 0 (default: the only one)")
    con.add_argument(
        "--files-axis",
        choices=("t", "z"),
        help="for a folder or pattern of TIFF files: the axis the files make (default t)",
    )
    con.add_argument("--no-pyramid", action="store_true", help="write the full resolution only")
    con.add_argument(
        "--no-shards",
        action="store_true",
        help="plain chunks, one file each, decoded whole by every read (default: each chunk "
        "is a Zarr shard of planes of at most 256 x 256 px, read one inner chunk at a time)",
    )
    con.add_argument(
        "--threads", type=_positive_int, help="threads reading and writing (default: up to 4)"
    )
    _quiet_option(con)
    return con


def _convert(args: argparse.Namespace) -> int:
    with _long_lived_imports():
        from .io.convert import convert

    out = convert(
        args.input,
        args.output,
        scale=args.scale,
        channel=args.channel,
        files_axis=args.files_axis,
        pyramid=not args.no_pyramid,
        shards=not args.no_shards,
        threads=args.threads,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if not args.quiet:
        print(f"Wrote {out} (OME-Zarr 0.5); segment it with `bigseg segment {out} -o OUT`.")
    return 0


def _synth_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``synth`` subcommand and its options to ``sub``."""
    syn = sub.add_parser(
        "synth",
        help="write a synthetic stack with known nuclei",
        description="Write a synthetic OME-Zarr stack chunk by chunk and its "
        "truth table (<name>_truth.csv beside it).",
    )
    syn.add_argument("output", help="OME-Zarr image to create, e.g. sample.ome.zarr")
    syn.add_argument(
        "--shape",
        nargs=3,
        type=_positive_int,
        metavar=("Z", "Y", "X"),
        help="size in voxels (default: 24 256 256, or the kind's)",
    )
    syn.add_argument(
        "--nuclei", type=int, help="nuclei per time point (default: 40, or the kind's)"
    )
    syn.add_argument("--t", type=_positive_int, help="time points (default: 1, or the kind's)")
    syn.add_argument(
        "--scale",
        nargs=3,
        type=_float,
        metavar=("Z", "Y", "X"),
        help="voxel size in µm (default: 1.5 0.71 0.71, or the kind's)",
    )
    syn.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    syn.add_argument(
        "--difficulty",
        default="easy",
        choices=("easy", "hard"),
        help="hard: tenfold brightness range, touching and z-stacked nuclei, saturation, noise "
        "(default: %(default)s)",
    )
    syn.add_argument(
        "--kind",
        default=None,
        choices=("hela2d", "ovals2d", "heldout3d", "series"),
        help="a named kind of data (shape, count, time points, voxel size and options; "
        "see bigseg.synth.KINDS); --shape, --nuclei, --t, --scale and the options below "
        "still apply (default: none)",
    )
    syn.add_argument(
        "--radius-um",
        nargs=2,
        type=_float,
        metavar=("LO", "HI"),
        help="radius range in µm (default: 5 8, or the kind's)",
    )
    syn.add_argument(
        "--radius-px",
        nargs=2,
        type=_float,
        metavar=("LO", "HI"),
        help="radius range in pixels (default: --radius-um)",
    )
    syn.add_argument(
        "--brightness-spread",
        type=_float,
        help="log-normal brightness over this factor, e.g. 10 (default: uniform)",
    )
    syn.add_argument(
        "--touching", type=_float, help="fraction of nuclei touching another (default: 0)"
    )
    syn.add_argument(
        "--mitotic", type=_float, help="fraction of small bright (mitotic) nuclei (default: 0)"
    )
    syn.add_argument(
        "--elongation",
        nargs=2,
        type=_float,
        metavar=("LO", "HI"),
        help="oval nuclei: aspect ratios in the y/x plane drawn from LO to HI, e.g. 1 2 "
        "(default: round, or the kind's)",
    )
    syn.add_argument(
        "--offset", type=_float, help="camera offset in grey levels, 16-bit output (default: 0)"
    )
    syn.add_argument(
        "--autofluorescence",
        type=_float,
        help="peak of a smooth background, grey levels (default: 0)",
    )
    syn.add_argument(
        "--illumination",
        type=_float,
        help="uneven light: a field from 1 - this value to 1 (default: 0)",
    )
    syn.add_argument(
        "--texture", type=_float, help="nuclear texture, a fraction of brightness (default: 0)"
    )
    syn.add_argument(
        "--blur",
        nargs=3,
        type=_float,
        metavar=("Z", "Y", "X"),
        dest="blur_um",
        help="the microscope's blur: the light spread by a Gaussian of these standard "
        "deviations in µm before the noise, e.g. 1.2 0.2 0.2 (default: none)",
    )
    syn.add_argument("--overwrite", action="store_true", help="replace an existing synthetic stack")
    _synth_motion_options(syn)
    _quiet_option(syn)
    return syn


def _synth_motion_options(syn: argparse.ArgumentParser) -> None:
    """Add the options of moving, dividing nuclei (``synth --t N``) to ``syn``."""
    syn.add_argument(
        "--motion",
        type=_float,
        metavar="UM",
        help="with --t N: the nuclei move about UM µm per time point (each its own velocity; "
        "paths cross) instead of being drawn anew, and the true lineage is written "
        "(<name>_ctc/TRA, the Cell Tracking Challenge format) (default: drawn anew)",
    )
    syn.add_argument(
        "--divisions",
        type=_float,
        metavar="P",
        help="with --motion: chance per nucleus and time point of a division (default: 0)",
    )
    syn.add_argument(
        "--frame-interval",
        type=_float,
        metavar="S",
        help="seconds between time points, written as the t scale (default: none)",
    )


def _score_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``score`` subcommand and its options to ``sub``."""
    sco = sub.add_parser(
        "score",
        help="score a nuclei table against a truth table",
        description="Match nuclei to truth one-to-one in µm and print "
        "precision, recall, F1 and centre errors.",
    )
    sco.add_argument(
        "nuclei",
        help="nuclei table (.parquet or .csv) with z_um, y_um, x_um, or a run's output directory",
    )
    sco.add_argument("truth", help="truth table (.csv or .parquet) with z_um, y_um, x_um, r_um")
    sco.add_argument(
        "--tolerance",
        type=_float,
        metavar="UM",
        help="match distance in µm (default: half each true radius)",
    )
    sco.add_argument("--json", action="store_true", help="print the scores as JSON")
    _score_tracking_options(sco)
    return sco


def _score_tracking_options(sco: argparse.ArgumentParser) -> None:
    """Add the tracking measures' options to the ``score`` parser."""
    sco.add_argument(
        "--ctc",
        nargs=2,
        metavar=("RESULT", "TRUTH"),
        help="also the Cell Tracking Challenge's DET, LNK, TRA and division scores of a CTC "
        "result folder (bigseg export-ctc) against a CTC truth folder (with TRA/), "
        "through py-ctcmetrics (pip install 'bigseg[tracking]') (default: none)",
    )


def _plot_parser(sub: Any) -> argparse.ArgumentParser:
    """Add the ``plot`` subcommand and its options to ``sub``."""
    plo = sub.add_parser(
        "plot",
        help="draw figures of a finished run",
        description="Write figures (PNG) of a finished run into its directory.",
    )
    plo.add_argument("result", help="output directory of 'bigseg segment'")
    plo.add_argument(
        "--t",
        type=int,
        help="time point to draw, as numbered in the tables (default: the run's first)",
    )
    plo.add_argument(
        "--input",
        metavar="PATH",
        help="the run's input, when it has moved since the run (default: the input in run.json)",
    )
    plo.add_argument(
        "--channel", type=int, help="another channel of the input to draw (default: the run's)"
    )
    _quiet_option(plo)
    return plo


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bigseg`` command."""
    # Ctrl-C is one sentence from the first line on: nothing heavy is imported before this
    # (the package and this module import their libraries only when a subcommand runs).
    args = None
    with _signals_as_interrupt() as received, _one_line_warnings():
        try:
            parser = build_parser()
            argv = sys.argv[1:] if argv is None else list(argv)
            _exit_if_mistyped(parser, argv)
            _exit_if_expanded_pattern(parser, argv)
            args = parser.parse_args(argv)
            args.command_line = ["bigseg", *map(str, argv)]
            _configure_logging(args.verbose, getattr(args, "quiet", False))
            command = {
                "segment": _segment,
                "track": _track,
                "export-ctc": _export_ctc,
                "convert": _convert,
                "synth": _synth,
                "score": _score,
                "plot": _plot,
            }
            return command[args.command](args)
        except InputError as exc:  # the library names its parameters, the command its flags
            print(f"bigseg: error: {as_flags(str(exc))}", file=sys.stderr)
            return 2
        except SystemExit:  # --help, --version and usage errors (before distributed is imported)
            raise
        except BrokenPipeError:  # `bigseg ... | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141
        except KeyboardInterrupt:
            return _interrupted(args, received)
        except (RuntimeError, ImportError) as exc:
            # An interrupt that lands while a class is being made (an import's), or while a
            # compiled module initialises, comes wrapped: "Error calling __set_name__ ...",
            # "ImportError: initialization failed".
            if not isinstance(exc.__cause__, KeyboardInterrupt):
                raise
            return _interrupted(args, received)
        except _killed_worker() as exc:
            print(
                f"bigseg: error: dask workers kept dying while running task {exc.task!r} (most "
                "often they ran out of memory); raise --memory-limit, give each worker fewer "
                "threads, or use smaller chunks. No output was written.",
                file=sys.stderr,
            )
            return 1


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}  # pragma: no cover


def _exit_if_expanded_pattern(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Exit with a usage error when an unquoted pattern gave ``segment`` several TIFF files.

    The shell expands ``planes/*.tif`` into every file name before bigseg runs;
    argparse would only say that it did not expect the second one.
    """
    if "segment" not in argv:
        return
    known, extra = parser.parse_known_args(argv)
    files = [a for a in extra if os.path.isfile(a) and a.lower().endswith((".tif", ".tiff"))]
    if files and len(files) == len(extra):
        folder = os.path.dirname(files[0]) or "."
        _subcommands(parser)["segment"].error(
            f"got {len(files) + 1} input files ({known.input!r}, {files[0]!r}, ...): the shell "
            "expanded "
            f'a pattern; quote it ("{os.path.join(folder, "*.tif")}") or give the folder '
            f"({folder!r})."
        )


def _exit_if_mistyped(parser: argparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Exit with a usage error naming the nearest command or option to a mistyped one.

    argparse (before Python 3.14) lists what it did not recognise but suggests nothing.
    Names argparse accepts (abbreviations included) and names near none are left to it.
    """
    import difflib

    commands = _subcommands(parser)
    top_level = {s for a in parser._actions for s in a.option_strings}  # misplaced, not mistyped
    current = parser
    for token in argv:
        if token == "--":
            return
        if not token.startswith("-"):
            if current is parser:  # the top level takes no values: this is the command
                if token not in commands:
                    near = difflib.get_close_matches(token, list(commands), n=1)
                    if near:
                        parser.error(f"invalid command {token!r} (did you mean {near[0]}?)")
                    return
                current = commands[token]
            continue
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        options = [s for a in current._actions for s in a.option_strings if s.startswith("--")]
        if any(option.startswith(name) for option in options) or name in top_level:
            continue
        near = difflib.get_close_matches(name, options, n=1)
        if near:
            current.error(f"unrecognized arguments: {name} (did you mean {near[0]}?)")


@contextlib.contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Print bigseg's warnings as one line each (``bigseg: warning: ...``), others as usual."""
    import warnings

    previous = warnings.showwarning
    shown: set[str] = set()  # the input is opened more than once in a run: each said once

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if filename.startswith(os.path.dirname(__file__)):
            text = f"bigseg: warning: {as_flags(str(message))}"
            if text not in shown:
                shown.add(text)
                print(text, file=sys.stderr if file is None else file)
        else:
            previous(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _interrupted(args: Any, received: list[str]) -> int:
    """Say in one sentence that the run was interrupted; return the shell's status for it."""
    # Unwinding the interrupted run frees coroutines that zarr or distributed had made
    # and not yet awaited: their warnings would follow the one sentence.
    import warnings

    warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
    name = received[0] if received else "SIGINT"
    print(f"bigseg: interrupted by {name}; {_interrupted_note(args)}", file=sys.stderr)
    return 128 + getattr(signal, name, signal.SIGINT)


def _killed_worker() -> type[BaseException]:
    """``distributed``'s KilledWorker, imported only once a run has failed."""
    from distributed.scheduler import KilledWorker

    return KilledWorker


class _Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives, so it unwinds like Ctrl-C."""


class _SignalState:
    """Signals received so far, and whether an interrupt must wait (cluster start-up)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.deferring = 0
        self.again = False

    def handler(self, signum: int, frame: Any) -> None:
        if not self.again:
            self.received.append(signal.Signals(signum).name)
        if (len(self.received) == 1 or self.again) and not self.deferring:
            self.again = False
            raise _Interrupted()

    def swallowed(self, unraisable: Any) -> bool:
        """Deliver again an interrupt raised where it could not propagate; say if it was one.

        A signal that lands in a weakref callback or a ``__del__`` raises there, and
        Python prints the exception and goes on ("Exception ignored in ..."). The
        interrupt is delivered again, in the main thread, where it unwinds the run.  Once
        an interrupt has arrived, a finalizer's own error is dropped too: it comes from an
        object the interrupt left half-built.
        """
        if not isinstance(unraisable.exc_value, _Interrupted):
            # An interrupt that lands in an object's constructor (an event loop's, say,
            # created while the input is opened) leaves it half-built, and its finalizer
            # then fails on the attributes it never got: noise of the interrupt itself.
            finalizer = getattr(unraisable.object, "__qualname__", "").endswith(".__del__")
            return bool(self.received) and finalizer
        import _thread

        self.again = True
        # From another thread, once this hook has returned (a signal handled here, in
        # the hook, would be swallowed the same way).
        threading.Timer(0.01, _thread.interrupt_main, (signal.SIGINT,)).start()
        return True

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold a SIGINT/SIGTERM while the block runs (a half-started cluster cannot close).

        Call :meth:`check` once what the block started will be cleaned up.
        """
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1

    def check(self) -> None:
        """Raise the interrupt that arrived while deferred, if any."""
        if self.received and not self.deferring:
            raise _Interrupted()


_SIGNALS = _SignalState()


@contextlib.contextmanager
def _signals_as_interrupt() -> Iterator[list[str]]:
    """Make SIGTERM behave like SIGINT; ignore repeats while cleaning up.

    Yields the list of signal names received (the first one is reported).
    """
    global _SIGNALS
    _SIGNALS = state = _SignalState()
    if threading.current_thread() is not threading.main_thread():
        yield state.received
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_hook = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if not state.swallowed(unraisable):
            previous_hook(unraisable)

    for sig in previous:
        signal.signal(sig, state.handler)
    sys.unraisablehook = hook
    try:
        yield state.received
    finally:
        if state.received:  # what the interrupt left half-built goes while the hook is here
            import gc

            gc.collect()
        sys.unraisablehook = previous_hook
        for sig, old in previous.items():
            signal.signal(sig, old)


def _interrupted_note(args: argparse.Namespace | None) -> str:
    if args is None or args.command != "segment":
        return "nothing was finished."
    if not args.resume:
        return f"{args.output!r} was not written (rerun with --resume to make a run resumable)."
    from .pipeline.layout import scratch_path  # standard library only

    partial = scratch_path(Path(args.output))
    if partial.exists():
        return (
            f"{args.output!r} was not written; finished blocks are kept in {str(partial)!r}: "
            "rerun the same command (with --resume) to continue."
        )
    return f"{args.output!r} was not written; nothing had finished yet."


def _configure_logging(verbose: int, quiet: bool) -> None:
    """Errors only with ``--quiet``; warnings by default; ``-v`` bigseg debug; ``-vv`` all."""
    level = logging.ERROR if quiet else logging.DEBUG if verbose >= 2 else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if verbose and not quiet else level)


def cluster_shape(cores: int, workers: int | None, threads: int | None) -> tuple[int, int]:
    """Workers and threads per worker of the local cluster: together about ``cores`` threads.

    Threads per worker default to ``cores / workers`` (at least 1); without
    ``workers``, 2 threads per worker (1 on one core) and ``cores / threads`` workers.
    """
    cores = max(int(cores), 1)
    if threads is None:
        threads = max(1, cores // workers) if workers else min(2, cores)
    return (workers or max(1, cores // threads)), threads


@contextlib.contextmanager
def dask_client(args: argparse.Namespace) -> Iterator[Any]:
    """Yield a client on ``--scheduler``, or on a LocalCluster bound to 127.0.0.1.

    Local workers smaller than :data:`COMPILED_MIN_WORKER` run without the compiled
    kernels (``BIGSEG_COMPILED=0``, see :func:`bigseg.kernels.filters.compiled_kernels`).
    """
    from distributed import Client

    from .kernels.filters import COMPILED_VARIABLE

    if not args.verbose:
        # distributed logs every worker start and stop at INFO, and task errors (which the
        # client reports once, as one sentence) at ERROR: keep the terminal for results.
        for name in ("distributed", "bokeh", "tornado"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        # An interrupted gather leaves futures whose errors asyncio would log.
        logging.getLogger("asyncio").setLevel(logging.CRITICAL)
        # Worker processes configure their own logging from the environment at import;
        # errors of their tasks reach the client, which reports them once.
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "critical")
    if args.scheduler:
        try:
            with _SIGNALS.deferred():
                # Not the default client: a failed connection must not become dask's scheduler.
                client = Client(args.scheduler, timeout="10s", set_as_default=False)
        except (OSError, TimeoutError, ValueError, TypeError) as exc:
            raise InputError(
                f"Could not reach the dask scheduler at {args.scheduler!r} ({exc}); check the "
                "address and that the scheduler is running."
            ) from None
        with client:
            _SIGNALS.check()
            yield client
        return
    workers, threads = cluster_shape(os.cpu_count() or 1, args.workers, args.threads_per_worker)
    # The libraries were frozen after their imports (_long_lived_imports); what the open
    # of the input made since (its graph, the format's and xarray's modules) lives as long
    # as the run too.  Frozen, the collector no longer walks it at each full collection of
    # the run (and of the worker in this process) nor at exit (docs/speed.md).
    gc.freeze()
    # One worker runs in this process (its kernels release the GIL): no worker process to
    # spawn, import into and shut down, about a second less per run.  Not with a memory
    # limit of its own: in-process it would count the client's memory too, and a worker
    # paused above it would wait forever.  TCP on 127.0.0.1 for both, so that nothing (the
    # worker's HTTP server included) listens anywhere else.
    processes = workers > 1 or args.memory_limit != "auto"
    _check_worker_memory(args.memory_limit)
    small = processes and _small_workers(args.memory_limit)
    with _environment({COMPILED_VARIABLE: "0"} if small else {}):
        yield from _local_client(args, workers, threads, processes)


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (unless set) for the block; worker processes inherit them."""
    before = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        os.environ.setdefault(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _local_client(
    args: argparse.Namespace, workers: int, threads: int, processes: bool
) -> Iterator[Any]:
    """Yield a client on a LocalCluster bound to 127.0.0.1 (see :func:`dask_client`)."""
    import dask
    from distributed import Client, LocalCluster

    from .pipeline import safety  # the workers' preload (its dask_setup)
    from .pipeline.sink import LOCAL_CLUSTER_CONFIG, dashboard_text

    try:
        # Workers never pause and run no profiler (LOCAL_CLUSTER_CONFIG says why).
        with _SIGNALS.deferred(), dask.config.set(LOCAL_CLUSTER_CONFIG):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=threads,
                memory_limit=args.memory_limit,
                host="127.0.0.1",
                protocol="tcp://",
                dashboard_address="127.0.0.1:0",
                processes=processes,
                # Worker processes leave Ctrl-C to this process (never preload in-process).
                preload=[safety.__name__] if processes else None,
            )
            client = Client(cluster)
    except ValueError as exc:
        raise InputError(f"Could not start a local dask cluster: {exc}.") from None
    with cluster, client:
        _SIGNALS.check()
        if not args.quiet:
            print(
                f"dask: {workers} worker(s) x {threads} thread(s); "
                f"{dashboard_text(client.dashboard_link)}",
                flush=True,
            )
        yield client


#: Below this memory limit per worker, the workers of a local cluster run SciPy's filters
#: rather than the compiled kernels (the same values): numba's ~145 MiB would be too large
#: a part of each worker.
COMPILED_MIN_WORKER = 768 * 2**20


#: The smallest memory limit a local worker gets: a worker process holds about 200 MiB once
#: Python, dask and the passes' libraries are loaded (156 MiB at its start), and its nanny
#: restarts it above 95 % of its limit, so below about 210 MiB it restarts for ever without
#: running a task; 300 MB leaves it room for small blocks.
MIN_WORKER = 300 * 10**6


def _small_workers(memory_limit: str) -> bool:
    """Whether a worker memory limit is below :data:`COMPILED_MIN_WORKER`."""
    limit = _worker_bytes(memory_limit)
    return limit is not None and limit < COMPILED_MIN_WORKER


def _check_worker_memory(memory_limit: str) -> None:
    """Refuse a memory limit per worker below :data:`MIN_WORKER`, in one sentence."""
    limit = _worker_bytes(memory_limit)
    if limit is not None and 0 < limit < MIN_WORKER:
        raise InputError(
            f"--memory-limit {memory_limit} is less than a dask worker needs: about 200 MiB "
            "for Python and bigseg's libraries before any data, and room for a block; give "
            "at least 300MB (or leave it out for an equal share of the machine's memory)."
        )


def _worker_bytes(memory_limit: str) -> int | None:
    """Bytes of a ``--memory-limit`` (a size, or a fraction of the machine's memory).

    None for ``auto`` and for values LocalCluster refuses itself, in one sentence.
    """
    from dask.utils import parse_bytes

    if memory_limit == "auto":
        return None
    try:
        fraction = float(memory_limit)  # of the machine's memory, as LocalCluster reads it
    except ValueError:
        fraction = None
    try:
        if fraction is not None and 0 < fraction <= 1:
            import psutil

            return int(fraction * psutil.virtual_memory().total)
        return int(parse_bytes(memory_limit))
    except ValueError:
        return None


@contextlib.contextmanager
def _long_lived_imports() -> Iterator[None]:
    """Import a command's libraries without the cyclic garbage collector, then freeze them.

    Their modules, classes and functions (about 160 000 objects) live as long as the
    process: a collection while they are being made walks all made so far, about a
    seventh of the imports' time (docs/speed.md).  Frozen, later collections skip them.
    Only imports: what a command does next (opening thousands of files) makes garbage
    that the collector must still see before anything else is frozen.
    """
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def _segment(args: argparse.Namespace) -> int:
    with _long_lived_imports():
        import distributed  # noqa: F401  (the cluster's, with the other libraries)

        from .io import open_stack, parse_chunks
        from .params import Params
        from .pipeline import check_output, run

    params = Params.from_preset(
        args.preset,
        smooth_radius=args.smooth_radius,
        min_radius=args.min_radius,
        max_radius=args.max_radius,
    )
    chunks = parse_chunks(args.chunks) if args.chunks else None
    # Open (and validate) before starting a cluster, so bad input fails fast.
    stack = open_stack(
        args.input,
        scale=args.scale,
        chunks=chunks,
        channel=args.channel,
        files_axis=args.files_axis,
    )
    px = params.in_pixels(
        tuple(stack.attrs["scale"].values()), scale_source=stack.attrs.get("scale_source", "array")
    )
    _suggest_convert(args, stack)
    log.debug(
        "input %s: dims %s, shape %s, %s, chunks %s, scale %s µm",
        args.input,
        stack.dims,
        stack.shape,
        stack.dtype,
        stack.data.chunksize,
        stack.attrs["scale"],
    )
    log.debug("parameters %s; in pixels %s", params, px)
    # --chunks that split planes ask for stitching: too small for the halo is an error.
    stitch = True if chunks and (chunks[1] != -1 or chunks[2] != -1) else None
    if stitch:
        from .segment import plan_blocks as plan
        from .stack import as_4d

        plan(as_4d(stack).data, px, stitch, params.preset)
    if args.track_labels and (args.no_track or stack.sizes.get("t", 1) < 2):
        raise InputError(  # before starting a cluster (run() says the same)
            "--track-labels needs tracks: a series of more than one time point, with tracking on."
        )
    check_output(args.output, args.input, args.overwrite, resume=args.resume)
    started = time.perf_counter()
    with dask_client(args) as client:
        result = run(
            stack,
            args.output,
            params=params,
            overwrite=args.overwrite,
            client=client,
            progress=_show_progress(args),
            stitch=stitch,
            t=args.t,
            resume=args.resume,
            command=getattr(args, "command_line", None),
            track=False if args.no_track else _track_params(args),
            frame_interval=args.frame_interval,
            track_labels=args.track_labels,
        )
    seconds = time.perf_counter() - started
    log.debug("timings (s): %s", result.record.get("timings_s"))
    if not args.quiet:
        print(summary(result.record, args.input, result.output, seconds), flush=True)
        blocks = result.record.get("blocks", {})
        if blocks.get("reused"):
            print(
                f"Resumed: {blocks['reused']} of {blocks['total']} blocks came from the "
                "interrupted run."
            )
    return 0


def _track(args: argparse.Namespace) -> int:
    with _long_lived_imports():
        from .pipeline.retrack import retrack

    entry = retrack(
        args.result,
        params=_track_params(args),
        frame_interval=args.frame_interval,
        progress=not (args.no_progress or args.quiet) and sys.stdout.isatty(),
        command=getattr(args, "command_line", None),
        track_labels=True if args.track_labels else None,
    )
    if not args.quiet:
        print(tracking_summary(entry, args.result))
    return 0


def tracking_summary(entry: dict, output: Any) -> str:
    """One line on the tracks of a run (``run.json``'s ``tracking`` entry)."""
    counts = entry.get("counts") or {}
    interval = entry.get("frame_interval_s")
    speed = f", frame interval {interval:g} s" if interval else ", frame interval unknown"
    tracks, divisions, gaps = (
        _count(int(counts.get(k, 0)), k[:-1]) for k in ("tracks", "divisions", "gaps")
    )
    return f"Tracked {output}: {tracks}, {divisions}, {gaps} closed{speed}."


def _count(n: int, noun: str) -> str:
    """``"1 track"``, ``"3 tracks"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _export_ctc(args: argparse.Namespace) -> int:
    with _long_lived_imports():
        from .pipeline.export import export_ctc

    target = export_ctc(args.result, args.directory)
    if not args.quiet:
        print(f"Wrote res_track.txt and the masks of {args.result} in {target}/.")
    return 0


def _suggest_convert(args: argparse.Namespace, stack: Any) -> None:
    """Suggest ``bigseg convert`` for a large TIFF of untiled pages (on stderr)."""
    from .io.convert import convert_hint

    hint = None if args.quiet else convert_hint(args.input, stack.nbytes)
    if hint:
        print(f"bigseg: note: {hint}", file=sys.stderr)


def _show_progress(args: argparse.Namespace) -> bool:
    """Progress bars unless asked not to, and only on a terminal (not in logs or pipes)."""
    return not (args.no_progress or args.quiet) and sys.stdout.isatty()


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if nbytes < 1000 or unit == "TB":
            return f"{nbytes:.3g} {unit}" if unit != "B" else f"{int(nbytes)} B"
        nbytes /= 1000
    return ""  # pragma: no cover


def summary(record: dict, source: str, output: Any, seconds: float) -> str:
    """Return the one-paragraph account printed at the end of ``bigseg segment``.

    Parameters
    ----------
    record : dict
        The run record (``Result.record``, as in ``run.json``).
    source : str
        The input as the user named it.
    output : path-like
        The output directory.
    seconds : float
        Wall time of the whole command, cluster start included.

    Returns
    -------
    str
        A paragraph wrapped at 100 characters.
    """
    import textwrap

    import numpy as np

    counts = record["counts"]
    n_t = int(counts["time_points"])
    inp = record["input"]
    shape = [int(v) for v in inp["shape"]]
    voxels = float(np.prod(shape))
    nbytes = voxels * np.dtype(inp["dtype"]).itemsize
    thresholds = [float(v) for v in record["thresholds"]]
    if n_t == 1:
        per_t = ""
        thr = f"threshold {thresholds[0]:g}" if thresholds else "no threshold"
    else:
        per_t = f", {counts['nuclei'] / n_t:.1f} per time point on average"
        thr = f"thresholds {min(thresholds):g} to {max(thresholds):g}"
    tracking = (record.get("tracking") or {}).get("counts")
    tracks = (
        f"tracks.parquet ({_count(tracking['tracks'], 'track')}, "
        f"{_count(tracking['divisions'], 'division')}), "
        if tracking
        else ""
    )
    by_track = (
        ", track_labels.zarr (the same by track id)"
        if (record.get("tracking") or {}).get("track_labels")
        else ""
    )
    compute = float(record.get("timings_s", {}).get("total") or seconds)
    done = float(record.get("voxels", {}).get("computed", voxels))  # less when resumed
    text = (
        f"Found {counts['nuclei']} nuclei ({counts['detections']} plane detections{per_t}) in "
        f"{source}: {n_t} time point{'s' if n_t > 1 else ''} of "
        f"{' x '.join(str(v) for v in shape[-3:])} {inp['dtype']} voxels "
        f"({_size(nbytes)}), {thr}. "
        f"Took {seconds:.1f} s, of which {compute:.1f} s computing "
        f"({done / compute / 1e6:.2f} Mvoxel/s, {_size(nbytes * done / voxels / compute)}/s"
        f"{' of the work not reused' if done < voxels else ''}). "
        f"Outputs in {output}/: nuclei.parquet and nuclei.csv (one row per nucleus), "
        f"detections.parquet (one row per region per plane), {tracks}labels.zarr (OME-Zarr "
        f"labels for napari){by_track} and run.json. Figures: bigseg plot {output}"
        f"{_split_note(record.get('work_blocks') or {})}"
    )
    return textwrap.fill(text, width=100, break_long_words=False, break_on_hyphens=False)


def _split_note(blocks: dict) -> str:
    """Return a sentence when bigseg split whole stored planes to fit the budget, else ''.

    The work blocks' planes, or, where those stayed whole, the planes of the blocks the
    kept signal was computed in when cut along x too (only a budget that no block of
    whole rows fits cuts them so; y parts alone are for the threads).
    """
    chunks, storage = blocks.get("chunks"), blocks.get("storage_chunks")
    if not chunks or not storage or not blocks.get("budget_bytes"):
        return ""
    if len(storage[-2]) > 1 or len(storage[-1]) > 1:
        return ""  # planes stored split: nothing bigseg chose
    budget = _size(float(blocks["budget_bytes"]))
    how = (
        "a larger --memory-limit, or fewer --threads-per-worker, gives larger blocks "
        "(whole planes run fastest)"
    )
    if len(chunks[-2]) > 1 or len(chunks[-1]) > 1:
        return (
            f". To fit the memory budget of {budget} per task, planes were split into blocks "
            f"of {max(chunks[-2])} x {max(chunks[-1])} pixels, which recomputes their edges: "
            f"{how}."
        )
    signal = blocks.get("signal_blocks")
    if signal and len(signal[-1]) > 1:
        return (
            f". To fit the memory budget of {budget} per task, the signal above the background "
            f"was computed in blocks of {max(signal[-2])} x {max(signal[-1])} pixels, which "
            f"recomputes their edges: {how}."
        )
    return ""


def _synth(args: argparse.Namespace) -> int:
    with _long_lived_imports():
        from .synth import synth

    image, truth = synth(
        args.output,
        shape=args.shape,
        nuclei=args.nuclei,
        t=args.t,
        scale=args.scale,
        seed=args.seed,
        overwrite=args.overwrite,
        difficulty=args.difficulty,
        kind=args.kind,
        render_options=_given(
            args, "offset", "autofluorescence", "illumination", "texture", "blur_um"
        )
        | ({"max_value": 65535} if args.offset is not None else {}),
        frame_interval_s=args.frame_interval,
        **_given(
            args, "radius_um", "radius_px", "brightness_spread", "touching", "mitotic", "elongation"
        ),
        **({"motion_um": args.motion} if args.motion is not None else {}),
        **_given(args, "divisions"),
    )
    from .synth import ctc_truth_path_for

    lineage = ""
    if args.motion is not None and (ctc_truth_path_for(image) / "TRA").is_dir():
        lineage = f" and its lineage {ctc_truth_path_for(image)}/TRA"
    if not args.quiet:
        print(f"Wrote {image} and its truth table {truth}{lineage}.")
    return 0


def _given(args: argparse.Namespace, *names: str) -> dict:
    """Return the options among ``names`` given on the command line, by name."""
    return {
        name: tuple(v) if isinstance(v, list) else v
        for name in names
        if (v := getattr(args, name)) is not None
    }


def _score(args: argparse.Namespace) -> int:
    with _long_lived_imports():
        from .io import read_table
        from .score import score

    found, truth = read_table(args.nuclei), read_table(args.truth)
    times = _run_time_points(Path(args.nuclei))
    note = None
    if times is not None and "t" in truth and not set(truth["t"].astype(int)) <= set(times):
        truth = _truth_at(truth, times)
        note = f"the truth of the run's time points only ({_span(times)})"
    result = score(found, truth, tolerance_um=args.tolerance)
    scores = result.as_dict()
    lines = [str(result)]
    if note:
        scores["truth_time_points"] = times
        lines.insert(0, f"Scored against {note}.")
    if "track_id" in found and "track_id" in truth:  # both tracked: links and divisions
        from .score import track_scores

        tracks = track_scores(found, truth, tolerance_um=args.tolerance)
        scores["tracking"] = tracks.as_dict()
        lines.append(str(tracks))
    if args.ctc:
        from .score import ctc_scores

        scores["ctc"] = ctc_scores(*args.ctc)
        shown = {k: v for k, v in scores["ctc"].items() if k in ("DET", "LNK", "TRA", "BC(1)")}
        lines.append("CTC: " + ", ".join(f"{k} {v:.3f}" for k, v in shown.items() if v is not None))
    print(json.dumps(scores) if args.json else "\n".join(lines))
    return 0


def _run_time_points(nuclei: Path) -> list[int] | None:
    """Return the time points a run segmented, when ``nuclei`` is its output or in it."""
    for folder in (nuclei, nuclei.parent):
        record = folder / "run.json"
        if record.is_file():
            selected = json.loads(record.read_text()).get("input", {}).get("t_selected")
            return [int(v) for v in selected] if selected else None
    return None


def _truth_at(truth: Any, times: list[int]) -> Any:
    """Return the rows of ``truth`` at ``times``, without mothers outside them."""
    kept = truth[truth["t"].astype(int).isin(times)].reset_index(drop=True)
    if "parent_track_id" in kept and "track_id" in kept:
        present = set(kept["track_id"])
        kept.loc[~kept["parent_track_id"].isin(present), "parent_track_id"] = 0
    return kept


def _span(times: list[int]) -> str:
    """``1 to 3`` for consecutive time points, else the list."""
    if times == list(range(times[0], times[-1] + 1)):
        return f"{times[0]} to {times[-1]}" if len(times) > 1 else str(times[0])
    return ", ".join(str(v) for v in times)


def _plot(args: argparse.Namespace) -> int:
    with _long_lived_imports():
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from . import plots
    from .io import open_stack, read_table

    out = Path(args.result)
    record = plots._read_record(out)
    n_t = int(record["counts"]["time_points"])
    inp = record["input"]
    times = inp.get("t_selected") or list(range(n_t))  # as numbered in the tables
    t = times[0] if args.t is None else args.t
    if t not in times:
        raise InputError(f"--t {t} is out of range: this run has time points {_span(times)}.")
    position = times.index(t)
    ran = inp.get("channel")
    if args.channel is not None and "channel" in inp and args.channel != ran:
        print(f"Drawing channel {args.channel}; the run segmented channel {ran}.", file=sys.stderr)
    stack = plots._run_input(record, source=args.input, channel=args.channel, option="--input PATH")
    nuclei = read_table(out / "nuclei.parquet")
    labels_path = out / "labels.zarr"
    labels = open_stack(labels_path) if labels_path.exists() else None
    thresholds = out if record.get("thresholds") else False  # the run's, on the method's scale
    # One set of figures per time point of a series: projections_t003.png ...
    tag = f"_t{t:0{max(3, len(str(times[-1])))}d}" if "t" in stack.dims else ""
    figures = {
        f"projections{tag}.png": lambda: plots.orthogonal_projections(stack, nuclei, t=position),
        f"montage{tag}.png": lambda: plots.plane_montage(stack, labels, t=position),
        f"histogram{tag}.png": lambda: plots.intensity_histogram(stack, thresholds, t=position),
    }
    if n_t > 1:
        figures["time.png"] = lambda: plots.time_summary(
            nuclei, time_points=times, frame_interval_s=inp.get("frame_interval_s")
        )
    for name, draw in figures.items():
        log.debug("drawing %s", name)
        fig = draw()
        fig.savefig(out / name, dpi=110, bbox_inches="tight")
        plt.close(fig)
    if not args.quiet:
        print(f"Wrote {', '.join(figures)} in {out}/.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
