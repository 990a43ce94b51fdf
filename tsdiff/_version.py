"""tsdiff's version, in a module of its own: the build reads it (pyproject.toml), model files and
benchmark records store it, without importing the package's user-facing API."""

__version__ = "0.1.0"
