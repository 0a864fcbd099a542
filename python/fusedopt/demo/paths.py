"""``fusedopt demo paths``: every optimizer's path on a loss surface, from the same start.

The classic picture: contours of the surface and one trajectory per optimizer (plain SGD, momentum,
Nesterov, AdaGrad, RMSProp, Adam, AdamW, and any optimizer added to fusedopt later), as a still
(``.png``) or an animation (``.gif``, matplotlib's ``FuncAnimation`` with the Pillow writer). On the
saddle, the start sits almost on the ridge: plain SGD creeps away from the saddle point, the
adaptive methods, which rescale the tiny gradient across the ridge, escape at once.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from .. import optim
from ..functional import SPECS
from ..surfaces import SURFACES, Surface
from . import _figures

# (label, optimizer class, hyperparameters other than lr; the lr is the surface's for the class). An
# optimizer added to fusedopt later appears with its defaults.
_NAMED = [
    ("SGD", "SGD", {}),
    ("Momentum", "SGD", {"momentum": 0.9}),
    ("Nesterov", "SGD", {"momentum": 0.9, "nesterov": True}),
    ("AdaGrad", "Adagrad", {}),
    ("RMSProp", "RMSprop", {}),
    ("Adam", "Adam", {}),
    ("AdamW", "AdamW", {"weight_decay": 0.01}),
    ("LARS", "LARS", {"trust_coefficient": 1.0}),  # a step of lr·‖p‖ (times the momentum's gain)
]
OPTIMIZERS: List[Tuple[str, str, Dict]] = _NAMED + [
    (spec.class_name, spec.class_name, {}) for spec in SPECS if spec.class_name not in {c for _, c, _ in _NAMED}]
_FAR = 1e6  # a path this far out has left the picture for good (the saddle is unbounded below)


def run_path(surface: Surface, label: str, steps: int) -> np.ndarray:
    """The points (steps + 1, dim) the optimizer called ``label`` visits from ``surface.start``,
    in float64; a path that runs off to infinity stays where it left the picture."""
    _, class_name, hypers = next(o for o in OPTIMIZERS if o[0] == label)
    lr = surface.lr_for(class_name)
    p = np.array(surface.start, np.float64)
    opt = getattr(optim, class_name)([p], lr=lr, **hypers)
    path = np.empty((steps + 1, surface.dim))
    path[0] = p
    for t in range(steps):
        if np.abs(p).max() < _FAR:
            opt.step([surface.gradient(p)])
        path[t + 1] = p
    return path


def _draw_surface(ax, surface: Surface, steps: int) -> None:
    from matplotlib.colors import LogNorm

    if surface.dim == 1:  # x against the step: the curve itself would hide the paths
        (lo, hi), = surface.bounds
        ax.axhline(0.0, color="red", lw=1, zorder=0, label="minimum")
        ax.set_xlim(0, steps)
        ax.set_ylim(lo, hi)
        ax.set_xlabel("step")
        ax.set_ylabel("x")
        return
    (x_lo, x_hi), (y_lo, y_hi) = surface.bounds
    x, y = np.meshgrid(np.linspace(x_lo, x_hi, 300), np.linspace(y_lo, y_hi, 300))
    z = surface.value(np.stack([x, y], axis=-1))
    if surface.minima:  # log-spaced levels show the floor of the valleys
        floor = max(z.min(), 1e-3)
        ax.contourf(x, y, z, levels=np.logspace(np.log10(floor), np.log10(z.max()), 30), norm=LogNorm(),
                    cmap="viridis", alpha=0.35, zorder=0)
        ax.contour(x, y, z, levels=np.logspace(np.log10(floor), np.log10(z.max()), 30), norm=LogNorm(),
                   cmap="viridis", linewidths=0.5, alpha=0.7, zorder=0)
    else:
        ax.contourf(x, y, z, levels=30, cmap="viridis", alpha=0.35, zorder=0)
        ax.contour(x, y, z, levels=30, cmap="viridis", linewidths=0.5, alpha=0.7, zorder=0)
    for m in surface.minima:
        ax.plot(*m, marker="*", color="red", markeredgecolor="white", markersize=16, zorder=5, linestyle="none")
    ax.plot(*surface.start, marker="o", color="black", markersize=6, zorder=3)
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def _xy(surface: Surface, path: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """What to draw of a path: (x, y) on 2-D surfaces, (step, x) on the 1-D bowl."""
    if surface.dim == 1:
        return np.arange(len(path)), path[:, 0]
    return path[:, 0], path[:, 1]


def draw(surface: Surface, steps: int, out: str, fps: int = 20) -> Dict[str, np.ndarray]:
    """Runs every optimizer ``steps`` steps and writes the picture (``.gif``: an animation); returns
    the paths by label."""
    plt = _figures.pyplot()
    progress = _figures.Progress(len(OPTIMIZERS), f"paths on {surface.name}")
    paths = {}
    for label, _, _ in OPTIMIZERS:
        paths[label] = run_path(surface, label, steps)
        progress.update()
    progress.close()
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=100)
    _draw_surface(ax, surface, steps)
    colors = _figures.colors(plt)
    lines, heads, classes_seen = [], [], set()
    for k, ((label, path), (_, class_name, _)) in enumerate(zip(paths.items(), OPTIMIZERS)):
        color = colors[k % len(colors)]
        style = "--" if class_name in classes_seen else "-"  # a variant of an optimizer drawn before
        classes_seen.add(class_name)
        lr = surface.lr_for(class_name)
        (line,) = ax.plot([], [], color=color, lw=1.8, ls=style, label=f"{label} (lr {lr:g})", zorder=2)
        (head,) = ax.plot([], [], color=color, marker="o", markersize=6, zorder=4)
        lines.append(line)
        heads.append(head)
    ax.set_title(f"{surface.name}: {surface.formula}\n{steps} steps of each optimizer from {surface.start}",
                 fontsize=10)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, framealpha=0.9)  # beside the plot
    fig.tight_layout()

    def show(frame: int) -> list:
        for line, head, path in zip(lines, heads, paths.values()):
            x, y = _xy(surface, path[:frame + 1])
            line.set_data(x, y)
            head.set_data(x[-1:], y[-1:])
        return lines + heads

    if out.lower().endswith(".gif"):
        from matplotlib.animation import FuncAnimation, PillowWriter

        frames = np.unique(np.linspace(0, steps, min(steps + 1, 120)).astype(int))
        animation = FuncAnimation(fig, show, frames=frames, blit=True)
        animation.save(out, writer=PillowWriter(fps=fps))
    else:
        show(steps)
        fig.savefig(out)
    plt.close(fig)
    return paths


def main(args) -> int:
    surface = SURFACES[args.surface]
    _figures.check_out(args.out)
    paths = draw(surface, args.steps, args.out, args.fps)
    print(f"{'optimizer':<12} {'end point':>24} {'f(end)':>12}")
    for label, path in paths.items():
        end = path[-1]
        print(f"{label:<12} {np.array2string(end, precision=4):>24} {float(surface.value(end)):>12.4g}")
    print(f"wrote {args.out}")
    return 0
