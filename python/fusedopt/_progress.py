"""A progress bar for long commands (``fusedopt bench``, ``fusedopt demo``): tqdm on stderr when tqdm
is installed and stderr is a terminal; otherwise nothing."""

from __future__ import annotations

import sys
from typing import Optional


class Progress:
    def __init__(self, total: int, description: str) -> None:
        self._bar: Optional[object] = None
        if not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=total, desc=description, file=sys.stderr, leave=False)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
