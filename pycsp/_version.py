"""The version of pycsp: the one place it is written.

pyproject.toml reads it for the distribution's metadata ([tool.setuptools.dynamic]);
``pycsp.__version__`` is this string and every backend's ``version`` tuple starts
with its three numbers.
"""
__version__ = "0.10.0"
