"""A minimal NumPy multilayer perceptron with hand-written backpropagation: the classic training loop
made real, on fusedopt's initializers and optimizers.

    model = fusedopt.models.MLP([64, 32, 10], activation="tanh", init="xavier_uniform", seed=0)
    opt = fusedopt.Adam(model.params, lr=1e-2)
    for idx in fusedopt.data.minibatches(len(x), 32, epochs=20, seed=0):
        loss, grads = model.loss_and_grads(x[idx], y[idx], loss="cross_entropy")   # forward + backprop
        opt.step(grads)                                                              # fused update

Layer l computes z_l = a_{l-1} W_lᵀ + b_l (W_l laid out (out, in), as torch's Linear) and a_l = f(z_l),
with no activation after the last layer (its z is the prediction, or the logits). Backprop is the
chain rule from the loss back: dL/dz_L from the loss, then for each layer dW_l = dz_lᵀ a_{l-1},
db_l = Σ_rows dz_l, dz_{l-1} = (dz_l W_l) ⊙ f'(z_{l-1}). :func:`numerical_grad` gets the same numbers
the slow way, one weight at a time, and is what the tests check backprop against.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from . import data as _data
from . import init as _init

__all__ = ["MLP", "ACTIVATIONS", "INITS", "LOSSES", "numerical_grad", "fit"]


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


ACTIVATIONS: Dict[str, Tuple[Callable, Callable]] = {  # name -> (f(z), f'(z) from z and a = f(z))
    "sigmoid": (_sigmoid, lambda z, a: a * (1 - a)),
    "tanh": (np.tanh, lambda z, a: 1 - a * a),
    "relu": (lambda z: np.maximum(z, 0), lambda z, a: (z > 0).astype(z.dtype)),
}


def _init_weight(w: np.ndarray, scheme: str, generator: _init.Generator) -> None:
    if scheme == "zeros":
        _init.zeros_(w)
    elif scheme in ("xavier_uniform", "glorot_uniform"):
        _init.xavier_uniform_(w, generator=generator)
    elif scheme in ("xavier_normal", "glorot_normal"):
        _init.xavier_normal_(w, generator=generator)
    elif scheme in ("he_uniform", "kaiming_uniform"):
        _init.kaiming_uniform_(w, nonlinearity="relu", generator=generator)
    elif scheme in ("he_normal", "kaiming_normal"):
        _init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
    elif scheme == "lecun_uniform":
        _init.lecun_uniform_(w, generator=generator)
    elif scheme == "lecun_normal":
        _init.lecun_normal_(w, generator=generator)


INITS = ("xavier_uniform", "xavier_normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
         "kaiming_uniform", "kaiming_normal", "lecun_uniform", "lecun_normal", "zeros")
LOSSES = ("mse", "cross_entropy")


class MLP:
    """Fully connected layers ``sizes[0] -> sizes[1] -> ... -> sizes[-1]``.

    Args:
        sizes: the width of each layer, input first (at least two).
        activation: "tanh", "sigmoid" or "relu", after every layer but the last (default: "tanh").
        init: the weights' initializer (default: "xavier_uniform"): Xavier/Glorot with gain 1, He/Kaiming
            for ReLU (gain √2, fan_in), LeCun (fan_in), or "zeros" (every unit the same: symmetry is
            never broken). Biases start at zero.
        seed: seeds the fusedopt.init generator (default: 0).
        dtype: float32 (default) or float64.

    ``params`` is the list ``[W_1, b_1, W_2, b_2, ...]`` the optimizer updates in place, and
    ``loss_and_grads`` returns the gradients in the same order.
    """

    def __init__(self, sizes: Sequence[int], activation: str = "tanh", *, init: str = "xavier_uniform",
                 seed: int = 0, dtype=np.float32) -> None:
        sizes = list(sizes)
        if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 1 for s in sizes):
            raise ValueError(f"sizes: expected at least two layer widths >= 1, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {activation!r}")
        if init not in INITS:
            raise ValueError(f"init: expected one of {', '.join(INITS)}, got {init!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        self.sizes, self.activation, self.init, self.dtype = sizes, activation, init, dtype
        generator = _init.Generator(seed)
        self.params: List[np.ndarray] = []
        for fan_in, fan_out in zip(sizes, sizes[1:]):
            w = np.empty((fan_out, fan_in), dtype)
            _init_weight(w, init, generator)
            self.params += [w, np.zeros(fan_out, dtype)]

    @property
    def weights(self) -> List[np.ndarray]:
        return self.params[0::2]

    @property
    def biases(self) -> List[np.ndarray]:
        return self.params[1::2]

    def _inputs(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"x: expected shape (batch, {self.sizes[0]}), got {x.shape}")
        return x.astype(self.dtype, copy=False)

    def _forward(self, x) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """The pre-activations z_l and activations a_l (a_0 = x) of every layer."""
        f = ACTIVATIONS[self.activation][0]
        zs, activations = [], [self._inputs(x)]
        layers = list(zip(self.weights, self.biases))
        for k, (w, b) in enumerate(layers):
            z = activations[-1] @ w.T + b
            zs.append(z)
            activations.append(z if k == len(layers) - 1 else f(z))
        return zs, activations

    def forward(self, x) -> np.ndarray:
        """The last layer's output (predictions for "mse", logits for "cross_entropy")."""
        return self._forward(x)[1][-1]

    def predict(self, x) -> np.ndarray:
        """The class with the highest logit of each row."""
        return np.argmax(self.forward(x), axis=1)

    def loss(self, x, y, loss: str = "mse") -> float:
        return self.loss_and_grads(x, y, loss, grads=False)[0]

    def loss_and_grads(self, x, y, loss: str = "mse", *, grads: bool = True) -> Tuple[float, List[np.ndarray]]:
        """The mean loss over the batch and, by backpropagation, its gradient for each of ``params``.

        "mse": mean over every element of (output − y)², y of shape (batch, outputs).
        "cross_entropy": mean over rows of −log softmax(logits)[label], y the integer labels.
        """
        zs, activations = self._forward(x)
        out = activations[-1]
        n = out.shape[0]
        if loss == "mse":
            y = np.asarray(y)
            if y.shape == (n,) and out.shape == (n, 1):  # one target per row
                y = y[:, None]
            if y.shape != out.shape:
                raise ValueError(f"y: expected shape {out.shape} for the mse loss, got {np.shape(y)}")
            diff = out - y
            value = float(np.mean(diff * diff))
            dz = 2.0 * diff / diff.size
        elif loss == "cross_entropy":
            labels = np.asarray(y)
            if labels.shape != (n,) or not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"y: expected {n} integer labels for the cross_entropy loss, got {labels.dtype} "
                                 f"of shape {labels.shape}")
            if labels.size and (labels.min() < 0 or labels.max() >= out.shape[1]):
                raise ValueError(f"y: labels must be in [0, {out.shape[1]}), got {labels.min()}..{labels.max()}")
            shifted = out - out.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            value = float(-log_probs[np.arange(n), labels].mean())
            dz = np.exp(log_probs)
            dz[np.arange(n), labels] -= 1.0
            dz /= n
        else:
            raise ValueError(f"loss: expected one of {', '.join(LOSSES)}, got {loss!r}")
        if not grads:
            return value, []
        derivative = ACTIVATIONS[self.activation][1]
        result: List[np.ndarray] = [np.empty(0)] * len(self.params)
        weights = self.weights
        for k in reversed(range(len(weights))):
            result[2 * k] = (dz.T @ activations[k]).astype(self.dtype, copy=False)
            result[2 * k + 1] = dz.sum(axis=0).astype(self.dtype, copy=False)
            if k:
                dz = (dz @ weights[k]) * derivative(zs[k - 1], activations[k])
        return value, result


def numerical_grad(f: Callable[[], float], params: Sequence[np.ndarray], eps: float = 1e-6) -> List[np.ndarray]:
    """∂f/∂w for every element w of ``params`` by central differences, (f(w + eps) − f(w − eps)) / 2eps,
    perturbing one weight at a time in place (and restoring it): 2 evaluations of ``f`` per weight,
    where backprop needs one forward and one backward pass for all of them."""
    result = []
    for p in params:
        g = np.empty(p.shape, np.float64)
        flat = p.reshape(-1)
        if not np.shares_memory(flat, p):
            raise ValueError("params: each must be contiguous (perturbed in place through a flat view)")
        for i in range(flat.size):
            kept = flat[i].copy()
            flat[i] = kept + eps
            up = f()
            flat[i] = kept - eps
            down = f()
            flat[i] = kept
            g.reshape(-1)[i] = (up - down) / (2 * eps)
        result.append(g.astype(p.dtype))
    return result


def fit(model: MLP, optimizer, x, y, *, loss: str = "mse", batch_size: int = 32, epochs: int = 1,
        shuffle: bool = True, seed: Optional[int] = None, schedule=None,
        on_epoch: Optional[Callable[[int], None]] = None) -> Dict[str, List[float]]:
    """The classic loop: for each mini-batch (drawn without replacement, :func:`fusedopt.data.minibatches`),
    forward, loss, backprop, ``optimizer.step(grads)``; ``schedule`` (a fusedopt.schedules schedule)
    sets the lr of each update. Returns ``{"update_loss": [...], "epoch_loss": [...]}``: the batch loss
    at each update, and the loss on all of (x, y) after each epoch. ``on_epoch(epoch)`` runs after each."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"x, y: expected one target per sample, got {len(x)} samples and {len(y)} targets")
    history: Dict[str, List[float]] = {"update_loss": [], "epoch_loss": []}
    per_epoch = _data.num_updates(len(x), batch_size, 1)
    for t, idx in enumerate(_data.minibatches(len(x), batch_size, epochs=epochs, shuffle=shuffle, seed=seed)):
        if schedule is not None:
            schedule.apply(optimizer, t)
        value, grads = model.loss_and_grads(x[idx], y[idx], loss)
        optimizer.step(grads)
        history["update_loss"].append(value)
        if (t + 1) % per_epoch == 0:
            history["epoch_loss"].append(model.loss(x, y, loss))
            if on_epoch is not None:
                on_epoch((t + 1) // per_epoch - 1)
    return history
