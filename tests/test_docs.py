"""The docs site builds strictly: broken links, anchors, snippets or API entries fail."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import bigseg

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def _build(tmp_path, config=ROOT / "mkdocs.yml"):
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)]
        + ["-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)},
    )


def test_docs_build_strictly(tmp_path):
    proc = _build(tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    site = tmp_path / "site"
    # Every page of the nav, the notebooks as pages, the changelog from CHANGELOG.md.
    for page in ["index", "guide/index", "reliability/index", "changelog/index"]:
        assert (site / f"{page}.html").exists(), page
    assert "A tour of one stack" in (site / "examples" / "01_tour" / "index.html").read_text()
    assert "## Unreleased" not in (site / "changelog" / "index.html").read_text()
    assert "Unreleased" in (site / "changelog" / "index.html").read_text()
    # The user guide is the README's text, included from there.
    assert 'id="command-line"' in (site / "guide" / "index.html").read_text()


def test_every_public_name_has_an_api_entry():
    entries = set(re.findall(r"^::: (\S+)", "".join(p.read_text() for p in API.glob("*.md")), re.M))
    for name in bigseg.__all__:
        # A function named like its module (bigseg.segment) is reached through the module.
        assert f"bigseg.{name}" in entries or f"bigseg.{name}.{name}" in entries, name
    assert {"bigseg.plots", "bigseg.synth", "bigseg.score"} <= entries
    # Public names only: the private layout is free to move.
    assert not [e for e in entries if "._" in e], entries


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        ("[a page](no_such_page.md)", "no_such_page.md"),
        ("[an anchor](accuracy.md#no-such-heading)", "#no-such-heading"),
        ("::: bigseg.no_such", "bigseg.no_such"),
    ],
    ids=["link", "anchor", "api entry"],
)
def test_a_broken_reference_fails_the_build(tmp_path, broken, named):
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs, symlinks=False)
    (docs / "index.md").write_text((docs / "index.md").read_text() + f"\n{broken}\n")
    config = tmp_path / "mkdocs.yml"
    text = (ROOT / "mkdocs.yml").read_text().replace("docs_dir: docs", f"docs_dir: {docs}")
    config.write_text(text.replace("docs/griffe_roles.py", str(docs / "griffe_roles.py")))
    proc = _build(tmp_path, config)
    assert proc.returncode != 0
    complaints = [line for line in proc.stderr.splitlines() if line.startswith(("WARN", "ERR"))]
    assert any(named in line for line in complaints), proc.stderr[-3000:]
