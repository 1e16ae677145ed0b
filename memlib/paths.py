"""Where the project is, and paths made absolute the same way in every process (a leaf module)."""
from __future__ import annotations

from pathlib import Path


def project_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the current directory) holding ``pyproject.toml`` and
    ``memlib/``; None outside a checkout."""
    p = (start or Path.cwd()).resolve()
    for d in (p, *p.parents):
        if (d / "pyproject.toml").exists() and (d / "memlib").is_dir():
            return d
    return None


def absolute(path: Path | str) -> Path:
    """``~`` expanded and made absolute once, so every process (CLI, kernel in notebooks/, book) agrees.

    A relative path is taken relative to the project folder when the current directory is inside one (the
    notebook kernel runs in ``notebooks/``), else relative to the current directory.
    """
    p = Path(path).expanduser()
    if not p.is_absolute():
        p = (project_root() or Path.cwd()) / p
    return p.resolve()
