"""``fusedopt demo train``: the NumPy MLP trained with each optimizer, then with each initializer.

Data: "digits" (scikit-learn's bundled 8×8 handwritten digits, 1,797 images, 10 classes; nothing is
downloaded) or "moons" (two interleaving half circles, generated here). 80 % train, 20 % test.
Top row: test loss and accuracy per epoch for every optimizer fusedopt has, from the same init.
Bottom row: one optimizer (SGD with momentum) from Xavier, He, LeCun and zero init; from zeros every
hidden unit computes the same thing and gets the same gradient, so they never become different
(symmetry is never broken) and the network learns no more than the output bias: the class frequencies.
"""

from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from .. import data, models, optim
from . import _figures
from .paths import OPTIMIZERS

# Learning rates for mini-batch training of the MLP (an optimizer added later takes Adam's).
LRS = {"SGD": 0.1, "Momentum": 0.05, "Nesterov": 0.05, "AdaGrad": 0.05, "RMSProp": 0.002, "Adam": 0.003,
       "AdamW": 0.003, "Adamax": 0.005, "RAdam": 0.003, "Adadelta": 1.0, "Rprop": 1e-4, "Lion": 3e-4, "NAdam": 0.003,
       "ASGD": 0.1, "LAMB": 0.003, "LARS": 0.002}
INITS = ("xavier_uniform", "he_uniform", "lecun_uniform", "zeros")
INIT_OPTIMIZER = "Momentum"


def moons(n: int, noise: float = 0.2, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as scikit-learn's make_moons), with Gaussian noise."""
    rng = np.random.default_rng(seed)
    top = n // 2
    angle = np.concatenate([np.linspace(0, np.pi, top), np.linspace(0, np.pi, n - top)])
    x = np.where(np.arange(n)[:, None] < top, np.stack([np.cos(angle), np.sin(angle)], 1),
                 np.stack([1 - np.cos(angle), 0.5 - np.sin(angle)], 1))
    labels = (np.arange(n) >= top).astype(np.int64)
    return x + rng.normal(0.0, noise, x.shape), labels


def dataset(name: str, samples: int = 0, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """Standardized features (float32) and integer labels; ``samples`` > 0 keeps that many (shuffled)."""
    if name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ImportError("the digits data ships with scikit-learn: pip install 'fusedopt[demo]' "
                              "(or use --dataset moons)") from None
        bunch = load_digits()
        x, labels = bunch.data / 16.0, bunch.target.astype(np.int64)
    elif name == "moons":
        x, labels = moons(samples or 1000, seed=seed)
    else:
        raise ValueError(f"--dataset: expected digits or moons, got {name!r}")
    order = np.random.default_rng(seed).permutation(len(x))
    if samples:
        order = order[:samples]
    x, labels = x[order], labels[order]
    x = (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8)
    return x.astype(np.float32), labels


def _train(x, labels, sizes, label: str, init: str, epochs: int, batch_size: int, seed: int,
           progress: _figures.Progress) -> Dict[str, list]:
    split = int(0.8 * len(x))
    train_x, train_y, test_x, test_y = x[:split], labels[:split], x[split:], labels[split:]
    _, class_name, hypers = next(o for o in OPTIMIZERS if o[0] == label)
    model = models.MLP(sizes, activation="tanh", init=init, seed=seed)
    opt = getattr(optim, class_name)(model.params, lr=LRS.get(label, LRS["Adam"]), **hypers)
    curves: Dict[str, list] = {"test_loss": [], "test_accuracy": []}

    def evaluate(epoch: int) -> None:
        curves["test_loss"].append(model.loss(test_x, test_y, "cross_entropy"))
        curves["test_accuracy"].append(float(np.mean(model.predict(test_x) == test_y)))
        progress.update()

    models.fit(model, opt, train_x, train_y, loss="cross_entropy", batch_size=batch_size, epochs=epochs, seed=seed,
               on_epoch=evaluate)
    return curves


def draw(out: str, name: str = "digits", epochs: int = 30, batch_size: int = 32, samples: int = 0,
         seed: int = 0) -> Dict[str, Dict[str, dict]]:
    plt = _figures.pyplot()
    x, labels = dataset(name, samples, seed)
    classes = int(labels.max()) + 1
    sizes = [x.shape[1], 32, classes] if name == "digits" else [x.shape[1], 16, 16, classes]
    progress = _figures.Progress(epochs * (len(OPTIMIZERS) + len(INITS)), f"training on {name}")
    by_optimizer = {label: _train(x, labels, sizes, label, "xavier_uniform", epochs, batch_size, seed, progress)
                    for label, _, _ in OPTIMIZERS}
    by_init = {init: _train(x, labels, sizes, INIT_OPTIMIZER, init, epochs, batch_size, seed, progress)
               for init in INITS}
    progress.close()
    fig, axes = plt.subplots(2, 2, figsize=(12, 9), dpi=100)
    epochs_axis = np.arange(1, epochs + 1)
    palette = _figures.colors(plt)
    for row, (runs, what) in enumerate(((by_optimizer, "optimizer (Xavier init)"),
                                        (by_init, f"init ({INIT_OPTIMIZER}, lr {LRS[INIT_OPTIMIZER]:g})"))):
        for k, (key, curves) in enumerate(runs.items()):
            style = "--" if key in ("Nesterov", "AdamW") else "-"
            color = palette[k % len(palette)]
            axes[row, 0].plot(epochs_axis, curves["test_loss"], ls=style, color=color, label=key)
            axes[row, 1].plot(epochs_axis, curves["test_accuracy"], ls=style, color=color, label=key)
        axes[row, 0].set(xlabel="epoch", ylabel="test cross-entropy", yscale="log", title=f"test loss by {what}")
        axes[row, 1].set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1.02), title=f"test accuracy by {what}")
        axes[row, 1].axhline(1.0 / classes, color="0.5", ls=":", lw=1, label="chance")
        for ax in axes[row]:
            ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"MLP {sizes} (tanh) on {name}: {len(x)} samples, batch {batch_size}, fusedopt optimizers")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return {"optimizers": by_optimizer, "inits": by_init}


def main(args) -> int:
    _figures.check_out(args.out, (".png", ".pdf", ".svg"))
    results = draw(args.out, args.dataset, args.epochs, args.batch_size, args.samples, args.seed)
    print(f"{'run':<24} {'test loss':>10} {'test accuracy':>14}")
    for group, runs in results.items():
        for key, curves in runs.items():
            print(f"{group[:-1] + ' ' + key:<24} {curves['test_loss'][-1]:>10.4f} {curves['test_accuracy'][-1]:>14.3f}")
    print(f"wrote {args.out}")
    return 0
