"""Docstrings, lint, formatting and packaging of the project itself."""

import importlib
import inspect
import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import skae

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_MODULES = [
    "skae",
    "skae.metrics",
    "skae.datasets",
    "skae.io",
    "skae.plotting",
    "skae.model_selection",
]

# Checks scikit-learn does not enforce either: a named Returns entry, and
# the optional See Also, Examples and extended-summary sections.
IGNORED_DOCSTRING_CHECKS = {"RT02", "SA01", "EX01", "ES01"}


def _public_callables():
    """Dotted names of every public function, class and method defined here."""
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if name.startswith("__") or not callable(obj):
                continue
            yield f"{module_name}.{name}"
            if not inspect.isclass(obj):
                continue
            for member_name, member in inspect.getmembers(obj):
                func = getattr(member, "__func__", member)
                defined_here = str(getattr(func, "__module__", "")).startswith("skae")
                if not member_name.startswith("_") and callable(func) and defined_here:
                    yield f"{module_name}.{name}.{member_name}"


PUBLIC_CALLABLES = sorted(set(_public_callables()))


def test_public_api_is_found():
    """Check that the docstring test below sees the whole public API."""
    assert "skae.SparseAutoencoder.fit" in PUBLIC_CALLABLES
    assert "skae.io.load" in PUBLIC_CALLABLES
    assert len(PUBLIC_CALLABLES) > 30


@pytest.mark.parametrize("name", PUBLIC_CALLABLES)
def test_docstring_follows_numpydoc(name):
    """Check each public docstring with numpydoc's validation."""
    pytest.importorskip("numpydoc")
    from numpydoc.validate import validate

    errors = [
        f"{code}: {message}"
        for code, message in validate(name)["errors"]
        if code not in IGNORED_DOCSTRING_CHECKS
    ]
    assert not errors, "\n".join(errors)


def _ruff():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    return ruff


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    """Check lint and formatting of the whole tree."""
    result = subprocess.run(
        [_ruff(), *command, "."], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_wheel_metadata(tmp_path):
    """Check that the wheel carries the version, license, extras and more."""
    pytest.importorskip("setuptools")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("skae-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        files = archive.namelist()
        (metadata_name,) = [f for f in files if f.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    assert metadata["Name"] == "skae"
    assert metadata["Version"] == skae.__version__
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert any(f.endswith(".dist-info/licenses/LICENSE") for f in files)
    assert metadata["Requires-Python"] == ">=3.10"
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3" in classifiers
    assert set(metadata.get_all("Provides-Extra")) >= {"test", "docs", "plot", "dask"}
    requirements = " ".join(metadata.get_all("Requires-Dist"))
    for package in ("torch", "scikit-learn", "skorch", "numpy", "tqdm"):
        assert package in requirements
    assert "skae/io.py" in files and "skae/plotting/__init__.py" in files
    assert not any(f.startswith(("tests/", "benchmarks/", "docs/")) for f in files)


CPU_WHEEL_INDEX = "https://download.pytorch.org/whl/cpu"


def _readme_sections():
    """The README's second-level sections, title to text, in order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    parts = re.split(r"^## ", readme, flags=re.MULTILINE)[1:]
    return dict(part.split("\n", 1) for part in parts)


def test_install_instructions_name_the_cpu_wheel_index():
    """Check that the README, in an Install section before the Quick start,
    and the installation page say how to install PyTorch's CPU build before
    skae, and that constraints.txt pins the torch version."""
    sections = _readme_sections()
    titles = list(sections)
    assert "Install" in titles and "Quick start" in titles
    assert titles.index("Install") < titles.index("Quick start")
    page = (ROOT / "docs" / "install.rst").read_text(encoding="utf-8")
    cpu_torch = f"pip install torch --index-url {CPU_WHEEL_INDEX}"
    for text in (sections["Install"], page):
        # Command lines, in order: the CPU build of torch, then skae.
        lines = [line.strip() for line in text.splitlines()]
        assert cpu_torch in lines
        assert lines.index(cpu_torch) < lines.index("pip install skae")
        assert "constraints.txt" in text


def test_readme_keeps_the_test_command_line():
    """Check the README's test command line, which CI runs as written."""
    command = (
        'pip install -c constraints.txt -e ".[test,dask,docs]"'
        " && python -m pytest -q tests"
    )
    assert command in (ROOT / "README.md").read_text(encoding="utf-8")


def _imports(path):
    """The modules a source file imports, absolute (relative ones resolved)."""
    import ast

    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                names.append(".".join(base + ([node.module] if node.module else [])))
            else:
                names.append(node.module)
    return names


@pytest.mark.parametrize(
    "layer, allowed_skae, forbidden",
    [
        ("_nn", ("skae._nn",), ("sklearn", "skorch")),
        ("_engine", ("skae._nn", "skae._engine"), ("sklearn",)),
    ],
)
def test_layers_import_only_downwards(layer, allowed_skae, forbidden):
    """Check the layout's one-way dependencies: skae/_nn is torch alone,
    skae/_engine builds on it alone, neither imports an estimator."""
    for path in sorted((ROOT / "skae" / layer).glob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top not in forbidden, f"{path.name} imports {name}"
            if top == "skae":
                assert name.startswith(allowed_skae), f"{path.name} imports {name}"


# The estimator methods that the public helpers may call: the documented
# interface of skae/_plan.py (plus scikit-learn's own _validate_params, and
# the outlier detector's _base_estimator, the autoencoder it fits).
_ESTIMATOR_INTERFACE = {
    "_base_estimator",
    "_plan",
    "_adopt",
    "_validate_X",
    "_build_net",
    "_describe_net",
    "_check_same_model",
    "_validate_params",
}


@pytest.mark.parametrize(
    "module",
    [
        "model_selection.py",
        "_batched_search.py",
        "io.py",
        "_restore.py",
        "_archive.py",
        "_codec.py",
        "metrics.py",
        "_metrics_checks.py",
        "plotting/__init__.py",
        "plotting/_common.py",
        "plotting/_filters.py",
        "plotting/_loss.py",
    ],
)
def test_helpers_use_the_estimator_interface_only(module):
    """Check that model_selection, io, metrics and plotting reach an
    estimator through its public attributes or the documented interface
    of skae/_plan.py: no other private method, never ``net_.module_``."""
    text = (ROOT / "skae" / module).read_text(encoding="utf-8")
    assert "net_.module_" not in text
    called = {
        name
        for owner, name in re.findall(r"(\w+|\))\.(_[a-z]\w*)\(", text)
        if owner != "self"
    }
    assert called <= _ESTIMATOR_INTERFACE, called - _ESTIMATOR_INTERFACE


def test_no_source_file_over_400_lines():
    """Check that every module stays small enough to read as one piece."""
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "skae").rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 400
    }
    assert not long, long
