"""Figures drawn without pyplot, written atomically.

Every plot of the project is a :class:`matplotlib.figure.Figure` built directly: drawing
one never switches the caller's matplotlib backend (a Jupyter session keeps its inline
backend) and never registers a figure with pyplot, so there is nothing to close.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flaxinit.tooling._io import atomic_path

INSTALL_HINT = "plotting needs matplotlib: pip install 'flaxinit[plots]' (from a checkout: pip install -e '.[plots]')"


def new_figure(nrows: int = 1, ncols: int = 1, *, figsize: tuple[float, float], **subplots: Any) -> tuple[Any, Any]:
    """``(figure, axes)``: a tight-layout :class:`~matplotlib.figure.Figure` and its
    ``subplots(nrows, ncols, **subplots)``.

    Raises:
      ImportError: matplotlib is not installed (the message says how to install it).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    fig = Figure(figsize=figsize, layout="tight")
    return fig, fig.subplots(nrows, ncols, **subplots)


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: int = 110) -> None:
    """Writes ``fig`` to ``path`` atomically, in the format its suffix names (PNG without one)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=dpi)


def colormap(name: str = "viridis") -> Any:
    """The registered matplotlib colormap ``name``."""
    import matplotlib

    return matplotlib.colormaps[name]
