"""Progress for long commands (``fusedopt bench``, ``fusedopt demo``) on stderr: a tqdm bar when tqdm
is installed and stderr is a terminal; otherwise, when asked for (``lines=True``), one line per step
("fusedopt bench: [3/20] adam 1e5 float32 2T, 1.2 s"), so that a log or CI shows how far it got."""

from __future__ import annotations

import sys
import time
from typing import Optional


class Progress:
    def __init__(self, total: int, description: str, lines: bool = False) -> None:
        self._bar: Optional[object] = None
        self._total, self._done, self._description = total, 0, description
        self._lines = lines
        self._started = time.perf_counter()
        if not sys.stderr.isatty():
            return
        try:
            from tqdm import tqdm
        except ImportError:
            return
        self._bar = tqdm(total=total, desc=description, file=sys.stderr, leave=False)

    def update(self, n: int = 1, label: str = "") -> None:
        self._done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._lines:
            now = time.perf_counter()
            print(f"{self._description}: [{self._done}/{self._total}] {label}, {now - self._started:.1f} s",
                  file=sys.stderr, flush=True)
            self._started = now

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
