"""``fusedopt demo regression``: batch GD, SGD and mini-batch SGD on one linear regression.

Synthetic heights (cm) and weights (kg); the model is weight ≈ w·height + b on standardized height,
the loss the mean squared error, the optimizer ``fusedopt.SGD`` with one lr for all three. Batch GD
(``batch_size = n``) takes one smooth step per epoch; SGD (``batch_size = 1``) takes n noisy steps per
epoch; mini-batches sit between. A last panel runs gradient descent on y = x² with several learning
rates: below 1 it converges, at lr = 1 it jumps between x₀ and −x₀ for ever, above 1 it diverges.
The command also prints how much slower the gradient of a small MLP is by finite differences
(:func:`fusedopt.models.numerical_grad`) than by backpropagation.
"""

from __future__ import annotations

import time
from typing import Dict, Tuple

import numpy as np

from .. import data, models, optim
from ..surfaces import bowl_1d
from . import _figures

HEIGHT_MEAN, HEIGHT_STD = 170.0, 10.0  # cm
SLOPE, INTERCEPT, NOISE = 0.9, -90.0, 5.0  # kg per cm, kg, kg
BOWL_LRS = (0.1, 0.45, 1.0, 1.02)


def synthetic(n: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """(height in cm, weight in kg) of n made-up people: weight = 0.9·height − 90 + N(0, 5²)."""
    rng = np.random.default_rng(seed)
    height = rng.normal(HEIGHT_MEAN, HEIGHT_STD, n)
    return height, SLOPE * height + INTERCEPT + rng.normal(0.0, NOISE, n)


def _runs(x: np.ndarray, y: np.ndarray, epochs: int, lr: float, seed: int) -> Dict[str, dict]:
    n = len(x)
    runs = {}
    for label, batch_size in ((f"batch GD (batch {n})", n), ("SGD (batch 1)", 1), ("mini-batch (batch 16)", 16)):
        model = models.MLP([1, 1], init="zeros", dtype=np.float64)  # one linear layer: w·x + b
        opt = optim.SGD(model.params, lr=lr)
        history = models.fit(model, opt, x, y, loss="mse", batch_size=batch_size, epochs=epochs, seed=seed)
        runs[label] = dict(history, per_epoch=data.num_updates(n, batch_size, 1), w=float(model.weights[0][0, 0]),
                           b=float(model.biases[0][0]))
    return runs


def _bowl_paths(steps: int) -> Dict[float, np.ndarray]:
    paths = {}
    for lr in BOWL_LRS:
        p = np.array(bowl_1d.start, np.float64)
        opt = optim.SGD([p], lr=lr)
        xs = [p[0]]
        for _ in range(steps):
            opt.step([bowl_1d.gradient(p)])
            xs.append(p[0])
        paths[lr] = np.array(xs)
    return paths


def backprop_vs_numerical(x: np.ndarray, y: np.ndarray, hidden: int = 32, seed: int = 0) -> Dict[str, float]:
    """Seconds for the gradient of an MLP [1, hidden, hidden, 1] on (x, y) by backprop and by
    finite differences, and the largest difference between the two."""
    model = models.MLP([1, hidden, hidden, 1], activation="tanh", seed=seed, dtype=np.float64)
    started = time.perf_counter()
    _, grads = model.loss_and_grads(x, y, "mse")
    backprop = time.perf_counter() - started
    started = time.perf_counter()
    numeric = models.numerical_grad(lambda: model.loss(x, y, "mse"), model.params)
    finite = time.perf_counter() - started
    difference = max(float(np.abs(g - n).max()) for g, n in zip(grads, numeric))
    return dict(params=sum(p.size for p in model.params), backprop_s=backprop, numerical_s=finite,
                max_difference=difference)


def draw(out: str, n: int = 200, epochs: int = 30, lr: float = 0.05, bowl_steps: int = 12,
         seed: int = 0) -> Dict[str, dict]:
    plt = _figures.pyplot()
    height, weight = synthetic(n, seed)
    x = ((height - height.mean()) / height.std())[:, None]
    y = weight[:, None]
    progress = _figures.Progress(3, "regression runs")
    runs = _runs(x, y, epochs, lr, seed)
    progress.update(3)
    progress.close()
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), dpi=100)
    ax = axes[0, 0]
    ax.scatter(height, weight, s=8, color="0.5", label="data")
    line = np.linspace(height.min(), height.max(), 2)
    for label, run in runs.items():
        ax.plot(line, run["w"] * (line - height.mean()) / height.std() + run["b"], lw=1.5, label=label)
    ax.set(xlabel="height (cm)", ylabel="weight (kg)", title=f"the fits after {epochs} epochs")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    for k, (label, run) in enumerate(runs.items()):
        losses = np.array(run["update_loss"])
        noisy = run["per_epoch"] == n  # SGD: drawn underneath, so the others stay visible
        ax.plot(np.arange(len(losses)) / run["per_epoch"], losses, lw=0.6 if noisy else 1.5,
                alpha=0.6 if noisy else 1.0, marker=None if run["per_epoch"] > 1 else "o", markersize=3,
                label=label, color=f"C{k}", zorder=1 if noisy else 2)
    ax.set_ylim(bottom=1.0)
    ax.set(xlabel="epoch (each point one update)", ylabel="batch MSE before the update (kg²)", yscale="log",
           title="loss at each update: SGD's noise")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    for label, run in runs.items():
        ax.plot(np.arange(1, epochs + 1), run["epoch_loss"], marker="o", markersize=3, label=label)
    ax.axhline(NOISE ** 2, color="0.4", ls=":", lw=1, label=f"noise floor ({NOISE:g}² kg²)")
    ax.set(xlabel="epoch", ylabel="MSE on all data (kg²)", yscale="log", title=f"loss per epoch (lr {lr:g})")
    ax.legend(fontsize=8)
    ax = axes[1, 1]
    for lr_bowl, xs in _bowl_paths(bowl_steps).items():
        ax.plot(np.arange(len(xs)), xs, marker="o", markersize=3, label=f"lr {lr_bowl:g}")
    ax.axhline(0.0, color="red", lw=1)
    ax.set(xlabel="step", ylabel="x", title="GD on y = x² from x = 4: lr = 1 oscillates")
    ax.set_ylim(top=ax.get_ylim()[1] + 3)  # room for the legend above the paths
    ax.legend(fontsize=8, loc="upper left", ncol=len(BOWL_LRS))
    fig.suptitle("Linear regression with batch GD, SGD and mini-batch SGD (fusedopt.SGD)")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return runs


def main(args) -> int:
    _figures.check_out(args.out, (".png", ".pdf", ".svg"))
    runs = draw(args.out, n=args.samples, epochs=args.epochs, lr=args.lr, seed=args.seed)
    print(f"{'run':<24} {'updates':>8} {'final MSE':>10} {'w':>8} {'b':>8}")
    for label, run in runs.items():
        print(f"{label:<24} {len(run['update_loss']):>8} {run['epoch_loss'][-1]:>10.3f} {run['w']:>8.3f} "
              f"{run['b']:>8.3f}")
    height, weight = synthetic(args.samples, args.seed)
    x = ((height - height.mean()) / height.std())[:, None]
    cost = backprop_vs_numerical(x, ((weight - weight.mean()) / weight.std())[:, None])
    print(f"gradient of an MLP with {cost['params']} weights: backprop {cost['backprop_s'] * 1e3:.3f} ms, "
          f"one weight at a time {cost['numerical_s'] * 1e3:.1f} ms "
          f"({cost['numerical_s'] / cost['backprop_s']:.0f}x slower; largest difference {cost['max_difference']:.1e})")
    print(f"wrote {args.out}")
    return 0
