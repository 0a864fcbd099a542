"""Seeds and streams for the random initializers.

Values come from Philox4x32-10 keyed by a 64-bit seed, on a stream id that each fill takes from
its generator, counting by element index: an array depends only on (seed, stream, index), so it
is the same for any number of threads and on any backend.
"""

from __future__ import annotations

import threading
from typing import Optional

_DEFAULT_SEED = 67280421310721  # torch's default CPU seed, so an unseeded run is reproducible too
_MASK64 = (1 << 64) - 1


class Generator:
    """A seed plus a stream counter: each fill takes the next stream, so two calls give different
    arrays and the same sequence of calls on a generator with the same seed replays exactly.

    Example::

        g = fusedopt.init.Generator(0)
        fusedopt.init.normal_(w, generator=g)
    """

    def __init__(self, seed: int = _DEFAULT_SEED) -> None:
        self._lock = threading.Lock()
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> "Generator":
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed: expected an int, got {type(seed).__name__}")
        if not 0 <= seed <= _MASK64:
            raise ValueError(f"seed: expected an int in [0, 2**64), got {seed}")
        with self._lock:
            self.seed = seed
            self._next_stream = 0
        return self

    def initial_seed(self) -> int:
        return self.seed

    def take_stream(self) -> int:
        """The stream id for one fill (0, 1, 2, ...)."""
        with self._lock:
            stream = self._next_stream
            self._next_stream += 1
        return stream

    def __repr__(self) -> str:
        return f"Generator(seed={self.seed}, next_stream={self._next_stream})"


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seeds the default generator (and restarts its streams); returns it."""
    return default_generator.manual_seed(seed)


def resolve(generator: Optional[Generator], seed: Optional[int]):
    """(seed, stream) for one fill: ``seed=`` gives stream 0 of that seed; else the generator's next."""
    if generator is not None and seed is not None:
        raise ValueError("generator, seed: give one or the other, not both")
    if seed is not None:
        return Generator(seed).seed, 0
    gen = default_generator if generator is None else generator
    if not isinstance(gen, Generator):
        raise TypeError(f"generator: expected fusedopt.init.Generator, got {type(gen).__name__}")
    return gen.seed, gen.take_stream()
