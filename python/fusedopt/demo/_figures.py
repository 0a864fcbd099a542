"""What the demos share: matplotlib without a screen, output paths checked, a progress bar."""

from __future__ import annotations

import os

from .._progress import Progress  # noqa: F401 - the demos' progress bar


def pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no window), or a clear ImportError."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError("fusedopt demo needs matplotlib: pip install 'fusedopt[demo]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_out(path: str, suffixes=(".png", ".gif", ".pdf", ".svg")) -> str:
    """The output path, or ValueError when its suffix is not one we write or its folder is missing."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in suffixes:
        raise ValueError(f"--out {path!r}: expected a file ending in {', '.join(suffixes)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"--out {path!r}: folder {folder!r} does not exist")
    return path


def colors(plt) -> tuple:
    """Twenty distinct line colors: tab20's ten strong ones, then their light twins."""
    tab20 = plt.get_cmap("tab20").colors
    return tab20[0::2] + tab20[1::2]
