"""Mini-batches drawn without replacement, epoch after epoch.

One epoch visits every sample once, in a fresh random order (a permutation: sampling without
replacement, refilled when the epoch ends), cut into batches of ``batch_size``; the last, smaller
batch is kept unless ``drop_last``. ``batch_size=1`` is stochastic gradient descent, ``batch_size=n``
batch gradient descent, anything between mini-batch SGD.

    for idx in fusedopt.data.minibatches(len(x), 32, epochs=10, seed=0):
        loss, grads = model.loss_and_grads(x[idx], y[idx])
        opt.step(grads)
"""

from __future__ import annotations

from typing import Iterator, Union

import numpy as np

from ._arguments import whole as _int

__all__ = ["minibatches", "num_updates"]

SeedLike = Union[None, int, np.random.Generator]


def num_updates(n: int, batch_size: int, epochs: int = 1, drop_last: bool = False) -> int:
    """The number of batches (optimizer updates) :func:`minibatches` yields: per epoch
    ``ceil(n / batch_size)``, or ``floor(n / batch_size)`` with ``drop_last``, times ``epochs``.

    Example: 20 samples, batch 5, 3 epochs -> 12 updates; 5 samples, batch 2 -> 3 (2, 2, 1).
    """
    n, batch_size, epochs = _int("n", n, 1), _int("batch_size", batch_size, 1), _int("epochs", epochs, 0)
    per_epoch = n // batch_size if drop_last else -(-n // batch_size)
    return per_epoch * epochs


def minibatches(n: int, batch_size: int, *, epochs: int = 1, shuffle: bool = True, drop_last: bool = False,
                seed: SeedLike = None) -> Iterator[np.ndarray]:
    """Yields the sample indices of each batch (int64 arrays), epoch after epoch.

    Args:
        n: number of samples (indices 0 .. n-1).
        batch_size: samples per batch; 1 is SGD, n is batch gradient descent.
        epochs: passes over the data (default: 1).
        shuffle: a fresh permutation each epoch (default: True); False keeps 0 .. n-1 in order.
        drop_last: drop each epoch's last batch when it is smaller than ``batch_size`` (default: False).
        seed: an int or ``numpy.random.Generator`` for reproducible orders (default: None, fresh
            entropy, as ``numpy.random.default_rng``).
    """
    n, batch_size, epochs = _int("n", n, 1), _int("batch_size", batch_size, 1), _int("epochs", epochs, 0)
    if seed is not None and not isinstance(seed, np.random.Generator):
        seed = _int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    stop = n - n % batch_size if drop_last else n
    return _batches(n, batch_size, epochs, bool(shuffle), stop, rng)


def _batches(n: int, batch_size: int, epochs: int, shuffle: bool, stop: int,
             rng: np.random.Generator) -> Iterator[np.ndarray]:
    for _ in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        for start in range(0, stop, batch_size):
            yield order[start:min(start + batch_size, stop)]

