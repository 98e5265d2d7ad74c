"""The ``bigseg`` command line: ``segment``, ``synth``, ``score`` and ``plot``."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ._errors import InputError

log = logging.getLogger("bigseg")


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


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser (exposed for documentation and tests)."""
    parser = argparse.ArgumentParser(
        prog="bigseg",
        description="Find cell nuclei in 3D and time-lapse stacks larger than memory.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    seg = sub.add_parser(
        "segment",
        help="segment a stack into 3D nuclei",
        description="Segment a stack; write nuclei and detections tables, "
        "a label volume and a run record into OUT.",
    )
    seg.add_argument("input", help="TIFF / OME-TIFF file, OME-Zarr image or Zarr array")
    seg.add_argument("-o", "--output", required=True, help="output directory (must not exist)")
    seg.add_argument(
        "--scale",
        nargs=3,
        type=_float,
        metavar=("Z", "Y", "X"),
        help="voxel size in µm (overrides the file's metadata)",
    )
    seg.add_argument("--channel", type=int, help="channel to segment when there are several")
    seg.add_argument(
        "--preset",
        default="default",
        choices=("default", "seed"),
        help="parameter preset (seed: the 2014 scikit-image recipe exactly)",
    )
    seg.add_argument(
        "--smooth-radius", type=_float, metavar="UM", help="median / contrast filter radius in µm"
    )
    seg.add_argument("--min-radius", type=_float, metavar="UM", help="smallest nucleus radius, µm")
    seg.add_argument("--max-radius", type=_float, metavar="UM", help="largest nucleus radius, µm")
    seg.add_argument("--chunks", metavar="Z,Y,X", help="dask chunk sizes (-1: whole axis)")
    seg.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="worker processes of the local cluster (default: one per 2 cores)",
    )
    seg.add_argument(
        "--threads-per-worker",
        type=_positive_int,
        default=None,
        help="threads per worker (default: 2)",
    )
    seg.add_argument(
        "--memory-limit",
        default="auto",
        help="memory limit per worker, e.g. 2GiB (default: share of RAM)",
    )
    seg.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="use an existing dask scheduler, e.g. tcp://10.0.0.5:8786",
    )
    seg.add_argument("--overwrite", action="store_true", help="replace an existing output")
    seg.add_argument(
        "--resume",
        action="store_true",
        help="keep partial results if interrupted, and continue an interrupted --resume run",
    )
    seg.add_argument("--no-progress", action="store_true", help="no progress bars")
    seg.add_argument("-q", "--quiet", action="store_true", help="print only errors")

    syn = sub.add_parser(
        "synth",
        help="write a synthetic stack with known nuclei",
        description="Write a synthetic OME-Zarr stack chunk by chunk and its "
        "truth table (<name>_truth.csv beside it).",
    )
    syn.add_argument("output", help="OME-Zarr image to create, e.g. sample.ome.zarr")
    syn.add_argument(
        "--shape", nargs=3, type=_positive_int, default=(24, 256, 256), metavar=("Z", "Y", "X")
    )
    syn.add_argument("--nuclei", type=int, default=40, help="nuclei per time point")
    syn.add_argument("--t", type=_positive_int, default=1, help="time points")
    syn.add_argument(
        "--scale",
        nargs=3,
        type=_float,
        default=(1.5, 0.71, 0.71),
        metavar=("Z", "Y", "X"),
        help="voxel size in µm",
    )
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--overwrite", action="store_true")

    sco = sub.add_parser(
        "score",
        help="score a nuclei table against a truth table",
        description="Match nuclei to truth one-to-one in µm and print "
        "precision, recall, F1 and centre errors.",
    )
    sco.add_argument("nuclei", help="nuclei table (.parquet or .csv) with z_um, y_um, x_um")
    sco.add_argument("truth", help="truth table (.csv or .parquet) with z_um, y_um, x_um, r_um")
    sco.add_argument(
        "--tolerance",
        type=_float,
        metavar="UM",
        help="match distance in µm (default: half each true radius)",
    )
    sco.add_argument("--json", action="store_true", help="print the scores as JSON")

    plo = sub.add_parser(
        "plot",
        help="draw figures of a finished run",
        description="Write figures (PNG) of a finished run into its directory.",
    )
    plo.add_argument("result", help="output directory of 'bigseg segment'")
    plo.add_argument("--t", type=int, default=0, help="time point to draw")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bigseg`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    command = {"segment": _segment, "synth": _synth, "score": _score, "plot": _plot}
    with _signals_as_interrupt() as received:
        try:
            return command[args.command](args)
        except InputError as exc:
            print(f"bigseg: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            name = received[0] if received else "SIGINT"
            print(f"bigseg: interrupted by {name}; {_interrupted_note(args)}", file=sys.stderr)
            return 128 + getattr(signal, name, signal.SIGINT)


class _Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM arrives, so it unwinds like Ctrl-C."""


class _SignalState:
    """Signals received so far, and whether an interrupt must wait (cluster start-up)."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.deferring = 0

    def handler(self, signum: int, frame: Any) -> None:
        self.received.append(signal.Signals(signum).name)
        if len(self.received) == 1 and not self.deferring:
            raise _Interrupted()

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
    for sig in previous:
        signal.signal(sig, state.handler)
    try:
        yield state.received
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _interrupted_note(args: argparse.Namespace) -> str:
    if args.command != "segment":
        return "nothing was finished."
    from ._resume import scratch_path

    partial = scratch_path(Path(args.output))
    if args.resume and partial.exists():
        return (
            f"{args.output!r} was not written; finished blocks are kept in {str(partial)!r}: "
            "rerun the same command (with --resume) to continue."
        )
    if args.resume:
        return f"{args.output!r} was not written; nothing had finished yet."
    return f"{args.output!r} was not written (rerun with --resume to make a run resumable)."


@contextlib.contextmanager
def dask_client(args: argparse.Namespace) -> Iterator[Any]:
    """Yield a client on ``--scheduler``, or on a LocalCluster bound to 127.0.0.1."""
    from distributed import Client, LocalCluster

    if not args.verbose:
        # distributed logs every worker start and stop at INFO; keep the terminal for results.
        for name in ("distributed", "bokeh", "tornado"):
            logging.getLogger(name).setLevel(logging.ERROR)
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
    cores = os.cpu_count() or 1
    threads = args.threads_per_worker or min(2, cores)
    workers = args.workers or max(1, cores // threads)
    try:
        with _SIGNALS.deferred():
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=threads,
                memory_limit=args.memory_limit,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
                processes=True,
                preload=["bigseg._safety"],  # workers leave Ctrl-C to this process
            )
            client = Client(cluster)
    except ValueError as exc:
        raise InputError(f"Could not start a local dask cluster: {exc}.") from None
    with cluster, client:
        _SIGNALS.check()
        if not args.quiet:
            print(
                f"dask: {workers} worker(s) x {threads} thread(s); dashboard "
                f"{client.dashboard_link}",
                flush=True,
            )
        yield client


def _segment(args: argparse.Namespace) -> int:
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
    stack = open_stack(args.input, scale=args.scale, chunks=chunks, channel=args.channel)
    params.in_pixels(tuple(stack.attrs["scale"].values()))
    check_output(Path(args.output), args.input, args.overwrite, resume=args.resume)
    started = time.perf_counter()
    with dask_client(args) as client:
        result = run(
            stack,
            args.output,
            params=params,
            overwrite=args.overwrite,
            client=client,
            progress=not (args.no_progress or args.quiet),
            resume=args.resume,
        )
    seconds = time.perf_counter() - started
    if not args.quiet:
        rec = result.record
        voxels = int(__import__("math").prod(stack.shape))
        n_t = rec["counts"]["time_points"]
        print(
            f"Found {rec['counts']['nuclei']} nuclei ({rec['counts']['detections']} plane "
            f"detections) in {n_t} time point(s) of {args.input} "
            f"(threshold{'s' if n_t > 1 else ''} "
            f"{', '.join(f'{v:g}' for v in rec['thresholds'][:5])}"
            f"{' ...' if n_t > 5 else ''}) in {seconds:.1f} s, "
            f"{voxels / seconds / 1e6:.2f} Mvoxel/s. Outputs: {result.output}/ "
            "(nuclei.parquet, nuclei.csv, detections.parquet, labels.zarr, run.json)."
        )
        if rec.get("blocks", {}).get("reused"):
            print(
                f"Resumed: {rec['blocks']['reused']} of {rec['blocks']['total']} blocks came "
                "from the interrupted run."
            )
    return 0


def _synth(args: argparse.Namespace) -> int:
    from .synth import synth

    image, truth = synth(
        args.output,
        shape=args.shape,
        nuclei=args.nuclei,
        t=args.t,
        scale=args.scale,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"Wrote {image} and its truth table {truth}.")
    return 0


def _score(args: argparse.Namespace) -> int:
    from .io import read_table
    from .score import score

    result = score(read_table(args.nuclei), read_table(args.truth), tolerance_um=args.tolerance)
    print(json.dumps(result.as_dict()) if args.json else str(result))
    return 0


def _plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .io import open_stack, read_table
    from .plots import orthogonal_projections

    out = Path(args.result)
    record_path = out / "run.json"
    if not record_path.exists():
        raise InputError(f"{str(out)!r} is not a finished bigseg output (no run.json).")
    record = json.loads(record_path.read_text())
    scale = record["input"]["scale_um"]
    stack = open_stack(record["input"]["source"], scale=(scale["z"], scale["y"], scale["x"]))
    nuclei = read_table(out / "nuclei.parquet")
    fig = orthogonal_projections(stack, nuclei, t=args.t)
    target = out / "projections.png"
    fig.savefig(target, dpi=120, bbox_inches="tight")
    plt.close(fig)
    print(f"Wrote {target}.")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
