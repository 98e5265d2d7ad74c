"""The CLI's feedback: figures (`bigseg plot`), progress, summary and verbosity."""

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bigseg.cli import build_parser, main, summary
from bigseg.pipeline import run
from bigseg.synth import synth

from .conftest import DASHBOARD


@pytest.fixture(scope="module")
def series_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("plot")
    image, _ = synth(root / "ts.ome.zarr", shape=(6, 64, 64), nuclei=3, t=2, seed=3)
    result = run(image, root / "out")
    return root, image, result


def test_plot_writes_every_figure_of_a_series(series_run, capsys):
    root, _, _ = series_run
    assert main(["plot", str(root / "out"), "--t", "1"]) == 0
    names = ["projections_t001.png", "montage_t001.png", "histogram_t001.png", "time.png"]
    for name in names:
        png = root / "out" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5_000
    assert capsys.readouterr().out.startswith("Wrote projections_t001.png, montage_t001.png")


def test_plot_of_a_single_stack_has_no_time_figure(tmp_path):
    image, _ = synth(tmp_path / "s.ome.zarr", shape=(4, 48, 48), nuclei=2, seed=1)
    run(image, tmp_path / "out")
    assert main(["plot", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "histogram.png").exists()
    assert not (tmp_path / "out" / "time.png").exists()


def test_plot_names_the_fix_when_the_input_moved(series_run, tmp_path, capsys):
    root, image, _ = series_run
    out = tmp_path / "out"
    shutil.copytree(root / "out", out)
    moved = tmp_path / "moved.ome.zarr"
    shutil.copytree(image, moved)
    record = json.loads((out / "run.json").read_text())
    record["input"]["source"] = str(tmp_path / "gone.ome.zarr")
    (out / "run.json").write_text(json.dumps(record))
    assert main(["plot", str(out)]) == 2
    assert "--input" in capsys.readouterr().err
    assert main(["plot", str(out), "--input", str(moved)]) == 0
    assert main(["plot", str(out), "--t", "5"]) == 2
    assert "time points 0 to 1" in capsys.readouterr().err


def test_plot_refuses_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2
    assert "no run.json" in capsys.readouterr().err


def test_summary_is_one_paragraph_with_counts_speed_and_outputs(series_run):
    _, _, result = series_run
    wrapped = summary(result.record, "ts.ome.zarr", "out", 12.5)
    text = " ".join(wrapped.split())
    n = result.record["counts"]["nuclei"]
    assert text.startswith(f"Found {n} nuclei")
    assert "2 time points of 6 x 64 x 64 uint16" in text
    assert "Took 12.5 s" in text and "Mvoxel/s" in text
    assert "labels.zarr" in text and "bigseg plot out" in text
    tracks = result.record["tracking"]["counts"]["tracks"]
    assert f"tracks.parquet ({tracks} tracks" in text  # a series is tracked
    assert "\n\n" not in wrapped and max(len(line) for line in wrapped.splitlines()) <= 100


def test_verbose_flag_before_or_after_the_subcommand():
    parser = build_parser()
    assert parser.parse_args(["segment", "in", "-o", "o"]).verbose == 0
    assert parser.parse_args(["-v", "segment", "in", "-o", "o"]).verbose == 1
    assert parser.parse_args(["segment", "in", "-o", "o", "-vv"]).verbose == 2
    assert parser.parse_args(["plot", "out", "-v"]).verbose == 1


@pytest.mark.slow
def test_progress_bar_only_on_a_terminal_and_quiet_prints_nothing(tmp_path, capsys, monkeypatch):
    image, _ = synth(tmp_path / "s.ome.zarr", shape=(4, 48, 48), nuclei=2, seed=1)
    common = ["--workers", "1", "--threads-per-worker", "1", "--memory-limit", "1GiB"]

    assert main(["segment", str(image), "-o", str(tmp_path / "a"), *common]) == 0
    out = capsys.readouterr().out
    assert "Completed" not in out  # captured output is not a terminal: no bars in logs
    assert DASHBOARD in out and "Found 2 nuclei" in out

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["segment", str(image), "-o", str(tmp_path / "b"), *common]) == 0
    assert "100% Completed" in capsys.readouterr().out

    assert main(["segment", str(image), "-o", str(tmp_path / "c"), "-q", *common]) == 0
    assert capsys.readouterr().out == ""
    assert main(["segment", str(image), "-o", str(tmp_path / "d"), "--no-progress", *common]) == 0
    assert "Completed" not in capsys.readouterr().out


# --- CLI manners: --version, help texts, suggestions for typos, early Ctrl-C ---------------

# What the ``bigseg`` console script runs (``from bigseg.cli import main``), in a fresh interpreter.
CONSOLE = [sys.executable, "-c", "import sys; from bigseg.cli import main; sys.exit(main())"]


def test_version_prints_the_installed_version_without_heavy_imports():
    from importlib.metadata import version

    proc = subprocess.run([*CONSOLE, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"bigseg {version('bigseg')}\n"
    # Fast because the command line imports no scientific library until a subcommand runs.
    check = "import sys, bigseg.cli; print(sorted({'numpy', 'dask', 'xarray'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_public_names_are_the_functions_whatever_was_imported_first():
    # The package imports its API on first use; a submodule imported first (bigseg.segment)
    # must not hide the function of the same name.
    code = (
        "import bigseg.segment, bigseg.measure, bigseg.score, bigseg.pipeline, bigseg\n"
        "print(all(callable(getattr(bigseg, n)) for n in bigseg.__all__))\n"
        "print(bigseg.segment.__module__, bigseg.measure.__module__, bigseg.score.__module__)\n"
        "print(bigseg.io.open_stack is bigseg.open_stack)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == [
        "True",
        "bigseg.segment",
        "bigseg.measure",
        "bigseg.score",
        "True",
    ], proc.stderr


def _help(parser):
    return {
        action.dest: parser._get_formatter()._expand_help(action)
        for action in parser._actions
        if action.option_strings and action.help and action.help != argparse.SUPPRESS
    }


def test_help_states_every_default():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        takes_value = {
            a.dest for a in sub._actions if a.option_strings and a.nargs != 0 and not a.required
        }
        helps = _help(sub)
        for dest in takes_value:
            text = helps.get(dest, "")
            # --scale of segment: the file's metadata is the default ("overrides" it).
            assert "default" in text or "overrides" in text, (name, dest, text)


def test_help_says_what_each_preset_does_with_each_size():
    from bigseg.params import PRESETS

    helps = _help(next(iter(_subparsers().values())))
    smooth = helps["smooth_radius"]
    # seed: median and contrast disks per plane; default: a 3D Gaussian.
    assert "median" in smooth and "Gaussian" in smooth and "seed" in smooth, smooth
    for name in ("smooth_radius", "min_radius", "max_radius"):
        default = getattr(PRESETS["default"], name)
        assert f"default: {default:g} µm" in helps[name], helps[name]
    assert "both presets" in helps["min_radius"] and "both presets" in helps["max_radius"]


def _subparsers():
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


@pytest.mark.parametrize(
    "argv,hint",
    [
        (["segment", "in.tif", "-o", "out", "--min-radus", "3"], "--min-radius"),
        (["segment", "in.tif", "-o", "out", "--min-radus=3"], "--min-radius"),
        (["segment", "in.tif", "--ouput", "out"], "--output"),  # before -o is missed
        (["synth", "s.ome.zarr", "--nucleii", "3"], "--nuclei"),
        (["score", "a.csv", "b.csv", "--tolerence", "2"], "--tolerance"),
        (["--verbse", "plot", "out"], "--verbose"),
        (["segmnt", "in.tif", "-o", "out"], "segment"),
    ],
)
def test_a_mistyped_option_or_command_suggests_the_nearest(argv, hint, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"(did you mean {hint}?)" in err, err
    assert err.count("error:") == 1 and "Traceback" not in err


def test_an_unknown_option_without_a_near_name_is_argparses_message(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["segment", "in.tif", "-o", "out", "--zzzz"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --zzzz" in err and "did you mean" not in err


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory):
    image, _ = synth(
        tmp_path_factory.mktemp("ctrlc") / "s.ome.zarr", shape=(16, 128, 128), nuclei=8
    )
    return image


@pytest.mark.parametrize("delay", [0.1, 0.3, 0.6, 1.0])
def test_ctrl_c_in_the_first_second_prints_no_traceback(small_stack, tmp_path, delay):
    out = tmp_path / "out"
    for _ in range(5):
        proc = subprocess.Popen(
            [*CONSOLE, "segment", str(small_stack), "-o", str(out), "--no-progress"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        # On a busy machine 0.1 s can still be inside Python's own start-up (the site
        # module), before any bigseg code runs: out of bigseg's reach, so try again.
        if "<frozen site>" not in stderr:
            break
    assert "Traceback" not in stderr, stderr
    assert proc.returncode == 130, stderr
    assert stderr.startswith("bigseg: interrupted by SIGINT") and stderr.count("\n") == 1, stderr
    assert not out.exists()


def test_ctrl_c_while_an_import_makes_a_class_is_the_one_sentence(
    small_stack, tmp_path, monkeypatch, capsys
):
    """Python wraps an interrupt raised in ``__set_name__`` in a RuntimeError."""
    import bigseg.cli as cli

    def interrupted_import(args):
        class Attribute:
            def __set_name__(self, owner, name):
                raise KeyboardInterrupt

        class Made:  # as dask.dataframe's classes are made on import
            attribute = Attribute()

    monkeypatch.setattr(cli, "_segment", interrupted_import)
    status = main(["segment", str(small_stack), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 130 and err.startswith("bigseg: interrupted by SIGINT"), err
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_ctrl_c_while_a_compiled_module_initialises_is_the_one_sentence(
    small_stack, tmp_path, monkeypatch, capsys
):
    """An interrupt in a C extension's initialisation surfaces as an ImportError from it."""
    import bigseg.cli as cli

    def interrupted_import(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:  # as scipy.spatial's _distance_pybind was seen to
            raise ImportError("initialization failed") from exc

    monkeypatch.setattr(cli, "_segment", interrupted_import)
    status = main(["segment", str(small_stack), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 130 and err.startswith("bigseg: interrupted by SIGINT"), err
    assert err.count("\n") == 1 and "Traceback" not in err, err

    def missing(args):
        raise ImportError("No module named 'nothing'")

    monkeypatch.setattr(cli, "_segment", missing)
    with pytest.raises(ImportError, match="nothing"):  # a real import error is not hidden
        main(["segment", str(small_stack), "-o", str(tmp_path / "out")])


def test_ctrl_c_while_an_event_loop_is_made_is_the_one_sentence(
    small_stack, tmp_path, monkeypatch, capsys
):
    """An interrupt in an event loop's constructor (Zarr makes one as the input is opened)."""
    import asyncio
    import gc
    import signal

    import bigseg.cli as cli

    def interrupted_loop(args):
        class Loop(asyncio.SelectorEventLoop):
            def __init__(self):
                signal.raise_signal(signal.SIGINT)  # before BaseEventLoop sets ``_closed``

        Loop()

    monkeypatch.setattr(cli, "_segment", interrupted_loop)
    status = main(["segment", str(small_stack), "-o", str(tmp_path / "out")])
    gc.collect()  # the half-built loop's __del__ fails on ``_closed``
    err = capsys.readouterr().err
    assert status == 130 and err.startswith("bigseg: interrupted by SIGINT"), err
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_a_failing_finalizer_without_an_interrupt_is_not_hidden():
    import types

    import bigseg.cli as cli

    state = cli._SignalState()

    class Thing:
        def __del__(self):
            pass

    failed = types.SimpleNamespace(exc_value=AttributeError("_closed"), object=Thing.__del__)
    assert not state.swallowed(failed)  # no interrupt: Python reports it
    state.received.append("SIGINT")
    assert state.swallowed(failed)  # after one: the interrupt's own noise
    other = types.SimpleNamespace(exc_value=AttributeError("x"), object=print)
    assert not state.swallowed(other)  # not a finalizer


def test_an_unquoted_pattern_expanded_by_the_shell_says_to_quote_it(tmp_path, capsys):
    import numpy as np
    import tifffile

    folder = tmp_path / "planes"
    folder.mkdir()
    for i in range(3):
        tifffile.imwrite(folder / f"t{i:03d}.tif", np.zeros((8, 8), np.uint16))
    files = sorted(str(p) for p in folder.iterdir())  # what the shell makes of planes/*.tif
    with pytest.raises(SystemExit) as exc:
        main(["segment", *files, "-o", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "3 input files" in err and f'"{folder}/*.tif"' in err
    assert not (tmp_path / "out").exists()


def test_an_interrupt_that_leaves_a_coroutine_unawaited_is_still_one_sentence(
    tmp_path, monkeypatch, capsys
):
    # Ctrl-C inside zarr's (or distributed's) sync call can leave a coroutine made and
    # never awaited; freed as the run unwinds, it warned after the sentence ("bigseg:
    # warning: coroutine 'open' was never awaited", seen once in a fresh-clone CI run).
    import bigseg.cli as cli

    async def open_store():  # what zarr had made when the interrupt came
        return None

    def interrupted(args):
        pending = open_store()  # noqa: F841 - freed, never awaited, when the run unwinds
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_synth", interrupted)
    assert cli.main(["synth", str(tmp_path / "s.ome.zarr")]) == 130
    err = capsys.readouterr().err
    assert err.startswith("bigseg: interrupted by SIGINT") and err.count("\n") == 1, err


def test_a_signal_that_lands_in_a_weakref_callback_still_interrupts_the_run(
    tmp_path, monkeypatch, capsys
):
    # A signal handled while Python runs a weakref callback raises there, and Python
    # prints "Exception ignored in ..." with a traceback and goes on (seen once in a
    # fresh-clone CI run: SIGTERM inside WeakSet._remove, the run not interrupted).
    import time
    import weakref

    import bigseg.cli as cli

    class Thing:
        pass

    def interrupted(args):
        thing = Thing()
        ref = weakref.ref(thing, lambda _: cli._SIGNALS.handler(signal.SIGTERM, None))
        del thing  # the callback runs: the signal "arrives" inside it
        time.sleep(2)  # delivered again, the interrupt lands here
        raise AssertionError(f"the run was not interrupted ({ref})")

    monkeypatch.setattr(cli, "_synth", interrupted)
    assert cli.main(["synth", str(tmp_path / "s.ome.zarr")]) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert err.startswith("bigseg: interrupted by SIGTERM") and err.count("\n") == 1, err


def test_summary_says_when_planes_were_split_to_fit_the_memory_budget(series_run):
    _, _, result = series_run
    record = json.loads(json.dumps(result.record))
    whole = " ".join(summary(record, "ts.ome.zarr", "out", 1.0).split())
    assert "planes were split" not in whole and whole.endswith("bigseg plot out")
    blocks = record["work_blocks"]
    blocks["budget_bytes"] = 184_524_226
    blocks["chunks"] = [[1, 1], [6], [32, 32], [22, 22, 20]]
    text = " ".join(summary(record, "ts.ome.zarr", "out", 1.0).split())
    assert text.endswith(
        "bigseg plot out. To fit the memory budget of 185 MB per task, planes were split "
        "into blocks of 32 x 22 pixels, which recomputes their edges: a larger "
        "--memory-limit, or fewer --threads-per-worker, gives larger blocks (whole planes "
        "run fastest)."
    )
    blocks["storage_chunks"] = [[1, 1], [6], [32, 32], [64]]  # stored split: not bigseg's
    assert "planes were split" not in summary(record, "ts.ome.zarr", "out", 1.0)
    # Whole planes, the kept signal computed in y/x blocks to fit the budget: said too.
    blocks["storage_chunks"] = blocks["chunks"] = [[1, 1], [6], [64], [64]]
    blocks["kept_signal"], blocks["signal_blocks"] = True, [[1, 1], [6], [32, 32], [64]]
    assert "the signal above" not in summary(record, "ts.ome.zarr", "out", 1.0)  # y: threads
    blocks["signal_blocks"] = [[1, 1], [6], [32, 32], [22, 22, 20]]
    text = " ".join(summary(record, "ts.ome.zarr", "out", 1.0).split())
    assert text.endswith(
        "bigseg plot out. To fit the memory budget of 185 MB per task, the signal above the "
        "background was computed in blocks of 32 x 22 pixels, which recomputes their "
        "edges: a larger --memory-limit, or fewer --threads-per-worker, gives larger blocks "
        "(whole planes run fastest)."
    )
