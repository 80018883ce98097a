"""The example gallery and the documentation: scripts run, the site builds."""

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
DOCS = ROOT / "docs"

# Folders the docs build writes into the source tree.
GENERATED = ("_build", "auto_examples", "generated", "gen_modules")


def _environment():
    """A child environment: skae importable, no display, one torch thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    env["MPLBACKEND"] = "Agg"
    env["OMP_NUM_THREADS"] = "1"
    return env


def _run(args, cwd, timeout):
    result = subprocess.run(
        args,
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    return result.returncode, output


# The whole set takes under two minutes on one core: not marked slow.
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    """Check that an example script runs to the end without error, and that
    every fit in it ends by its stopping rule: a ConvergenceWarning is an
    error (no example silences it)."""
    pytest.importorskip("matplotlib")
    args = [sys.executable, "-W", "error::sklearn.exceptions.ConvergenceWarning"]
    code, output = _run([*args, str(path)], cwd=tmp_path, timeout=600)
    assert code == 0, output


def test_no_example_silences_convergence_warnings():
    """Check that no example, doc page or benchmark filters ConvergenceWarning
    out (a fit that did not converge must be visible)."""
    sources = [*EXAMPLES, *(ROOT / "benchmarks").glob("*.py")]
    sources += [*DOCS.rglob("*.rst"), ROOT / "README.md"]
    pattern = re.compile(
        r"(filterwarnings|simplefilter)\(\s*\"ignore\"[^)]*ConvergenceWarning"
    )
    offenders = [
        str(p.relative_to(ROOT))
        for p in sources
        if GENERATED[0] not in p.parts and pattern.search(p.read_text(encoding="utf-8"))
    ]
    assert not offenders, offenders


def test_every_example_has_a_gallery_header():
    """Check that each example opens with a titled docstring and uses cells."""
    for path in EXAMPLES:
        text = path.read_text(encoding="utf-8")
        match = re.match(r'"""\n(=+)\n(.+)\n(=+)\n', text)
        assert match, f"{path.name} has no title block"
        rule, title, underline = match.groups()
        assert rule == underline and len(rule) >= len(title), path.name
        assert "# %%" in text, f"{path.name} has no cells"


def _copy_docs(destination):
    """Copy docs/ and examples/ without build outputs; return the docs copy."""
    ignore = shutil.ignore_patterns(*GENERATED, "sg_execution_times.rst")
    shutil.copytree(DOCS, destination / "docs", ignore=ignore)
    shutil.copytree(ROOT / "examples", destination / "examples", ignore=ignore)
    return destination / "docs"


def test_docs_build(tmp_path):
    """Check that the site builds without a warning (gallery not executed)."""
    for module in ("sphinx", "numpydoc", "sphinx_gallery", "pydata_sphinx_theme"):
        pytest.importorskip(module)
    # Build a copy, so that the generated pages stay out of the source tree.
    docs = _copy_docs(tmp_path)
    args = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html"]
    args += ["-D", "plot_gallery=0", str(docs), str(tmp_path / "html")]
    code, output = _run(args, cwd=tmp_path, timeout=600)
    assert code == 0, output
    assert (tmp_path / "html" / "index.html").exists()


# `.. code-block:: python` directives, their options, and the indented body.
# A block with the option `:class: not-run` (code for a real cluster, say)
# is shown but not run.
_PYTHON_BLOCK = re.compile(
    r"^(?P<indent> *)\.\. code-block:: python\n"
    r"(?P<options>(?:(?P=indent) +:.*\n)*)\n"
    r"(?P<body>(?:(?:(?P=indent) +.*)?\n)+)",
    re.MULTILINE,
)
PAGES = sorted(
    page
    for page in DOCS.rglob("*.rst")
    if not set(page.relative_to(DOCS).parts) & {*GENERATED, "_templates"}
    and _PYTHON_BLOCK.search(page.read_text(encoding="utf-8"))
)


# About 90 s for all pages on one core, on top of the examples.
@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_docs_code_runs(page, tmp_path):
    """Check that the Python code of a docs page runs, blocks in order."""
    text = page.read_text(encoding="utf-8")
    blocks = [
        textwrap.dedent(m["body"])
        for m in _PYTHON_BLOCK.finditer(text)
        if ":class: not-run" not in m["options"]
    ]
    script = tmp_path / "page.py"
    script.write_text("\n".join(blocks), encoding="utf-8")
    code, output = _run([sys.executable, str(script)], cwd=tmp_path, timeout=600)
    assert code == 0, output


# Defines the names the README's code uses and does not define itself.
_README_DATA = """\
from sklearn.datasets import load_digits

X_train, y_train = load_digits(return_X_y=True)
X_train, y_train = X_train[:120] / 16, y_train[:120]
"""


# About 30 s on one core: the README's grid search, on 120 digits.
@pytest.mark.slow
def test_readme_code_runs(tmp_path):
    """Check that the README's Python code runs, blocks in order, on a few
    digits as ``X_train, y_train``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    assert blocks
    script = tmp_path / "readme.py"
    script.write_text(_README_DATA + "\n".join(blocks), encoding="utf-8")
    code, output = _run([sys.executable, str(script)], cwd=tmp_path, timeout=600)
    assert code == 0, output
