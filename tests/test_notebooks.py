"""Execute every notebook top to bottom so they never rot; check what some of them show."""

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _outputs(nb, snippet):
    """The outputs of the code cell whose source holds ``snippet``."""
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and snippet in c.source]
    return cell.outputs


def _text(outputs):
    return "".join(o.get("text", "") for o in outputs if o.output_type == "stream")


def _has_figure(outputs):
    return any("image/png" in o.get("data", {}) for o in outputs)


def _check_tracks(nb):
    """Notebook 02 shows tracks, speeds and a lineage of a series with divisions."""
    text = _text(_outputs(nb, "track_scores(result.nuclei, truth)"))
    link_f1 = float(re.search(r"links: F1 ([\d.]+)", text).group(1))
    found, true = (int(v) for v in re.search(r"divisions: (\d+) found, (\d+) true", text).groups())
    assert link_f1 >= 0.98 and true >= 3 and found >= 3, text
    for snippet in ("plots.track_paths(", "plots.lineage(", "mean_speed_um_per_min"):
        assert _has_figure(_outputs(nb, snippet)), snippet
    assert "nuclei, same as before" in _text(_outputs(nb, "Client(address)"))


CHECKS = {"02_time_series.ipynb": _check_tracks}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    nb = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), (
        f"{path.name} has outputs stored in git; strip them"
    )
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    if path.name in CHECKS:
        CHECKS[path.name](nb)
