"""Sphinx configuration of the skae documentation.

Build the site, gallery included, from the repository root with::

    python -m sphinx -W -b html docs docs/_build/html

Add ``-D plot_gallery=0`` to render the gallery without running it.
"""

import os
import sys
from pathlib import Path

from docutils import nodes

# Document the source tree, installed or not.
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

import skae  # noqa: E402

project = "skae"
author = "the skae developers"
copyright = "the skae developers"
version = release = skae.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"
default_role = "literal"
pygments_style = "sphinx"

# -- autodoc, autosummary, numpydoc ------------------------------------------

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"
# Members are listed by autodoc; numpydoc's own member tables would duplicate
# them and point at pages that do not exist.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

# -- sphinx-gallery -----------------------------------------------------------

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    # Run every example: the plots and the digits demo.
    "filename_pattern": r"/(plot_|demo_)",
    "within_subsection_order": "sphinx_gallery.sorting.FileNameSortKey",
    "backreferences_dir": "gen_modules/backreferences",
    "doc_module": ("skae",),
    "reference_url": {"skae": None},
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
}

# -- HTML ---------------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skae {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"index": [], "install": [], "quickstart": [], "changelog": []}
html_show_sourcelink = False

# -- references into scikit-learn's documentation ----------------------------
#
# Methods that skae's estimators inherit from scikit-learn (``set_output``,
# ``get_metadata_routing``) and the shared parameter text cite scikit-learn's
# glossary and user guide. Without a network connection at build time there
# is no inventory to resolve them against: glossary terms link to
# scikit-learn's glossary, the few user-guide labels become plain text. Any
# other unresolved reference is still a warning.

SKLEARN_GLOSSARY = "https://scikit-learn.org/stable/glossary.html#term-"
SKLEARN_LABELS = {
    "metadata_routing",
    "df_output_transform",
    "sphx_glr_auto_examples_miscellaneous_plot_set_output.py",
}


def _sklearn_reference(app, env, node, contnode):
    if node.get("refdomain") != "std":
        return None
    target = node.get("reftarget", "")
    if node.get("reftype") == "term":
        anchor = "-".join(target.lower().split())
        reference = nodes.reference("", "", internal=False)
        reference["refuri"] = SKLEARN_GLOSSARY + anchor
        reference += contnode
        return reference
    if node.get("reftype") == "ref" and target in SKLEARN_LABELS:
        text = contnode.astext()
        if text == target:
            text = "scikit-learn's documentation"
        return nodes.inline(text, text)
    return None


def setup(app):
    app.connect("missing-reference", _sklearn_reference)
