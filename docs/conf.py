"""Sphinx configuration of pycsp's documentation.

Build (the pycsp that Python imports is the one documented; install the docs
extra first: ``pip install ".[docs]"``)::

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html
"""
import builtins

import pycsp

project = "pycsp"
author = "the pycsp developers"
release = ".".join(str(part) for part in pycsp.version[:3])
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"pycsp {release}"

# Docstrings are written in the Google style ("Args:", "Raises:"), readable in help().
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # signatures stay as written; another tool checks the types
autodoc_preserve_defaults = True
add_module_names = False

# nitpicky (-n) checks every cross-reference.  The Python standard library's
# inventory would come from the network (intersphinx), which CI does not have:
# builtins and the few standard names the docstrings mention are accepted as
# they are instead.
_STANDARD = [name for name in dir(builtins) if not name.startswith("_")] + [
    "pickle.PicklingError", "signal.SIGUSR1", "threading.Thread", "faulthandler",
]
nitpick_ignore = [(role, name) for name in _STANDARD
                  for role in ("py:class", "py:exc", "py:func", "py:obj", "py:data", "py:mod")]
# csp_ext.Task, the C record of a running CSP process, is internal: Process's
# annotated ``task`` attribute names it without a page to link to.
nitpick_ignore.append(("py:class", "Task"))
