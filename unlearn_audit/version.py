"""The package version, in a module of its own so that any module can read it without importing the package's
public API (``unlearn_audit/__init__.py`` imports io and info, which would close an import cycle)."""

__version__ = "0.1.0"
