"""fusedopt.jax.adam vs optax.adam under jax.jit: one whole step (update + apply_updates) on the same
params and grads, in one process, interleaved, medians. fusedopt.jax's step is an XLA custom call to the
fused CPU kernel: timed called eagerly (each update its own XLA call; the call's outputs alias params and
state, which XLA copies first), and inside a jitted whole step, with and without params and state donated
(donated: XLA may update them in place); optax's jitted step the same two ways.

    python benchmarks/bench_jax.py [--sizes 1e6 1e7] [--repeats 20] [--threads 2] [--json out.json]"""

from __future__ import annotations

import argparse
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

import fusedopt
import fusedopt.jax as fj
from fusedopt.bench import harness


def steps(n: int):
    rng = np.random.default_rng(0)
    params0 = {"w": jnp.asarray(rng.standard_normal(n), jnp.float32)}
    grads = {"w": jnp.asarray(rng.standard_normal(n), jnp.float32)}
    out = {}
    for name, tx, jitted, donate in [("fusedopt.jax.adam", fj.adam(lr=1e-3), False, False),
                                     ("fusedopt.jax.adam (jit)", fj.adam(lr=1e-3), True, False),
                                     ("fusedopt.jax.adam (jit, donated)", fj.adam(lr=1e-3), True, True),
                                     ("optax.adam (jit)", optax.adam(1e-3), True, False),
                                     ("optax.adam (jit, donated)", optax.adam(1e-3), True, True)]:
        box = {"params": jax.tree_util.tree_map(jnp.array, params0), "state": tx.init(params0)}

        def one(tx=tx, box=box):
            updates, box["state"] = tx.update(grads, box["state"], box["params"])
            box["params"] = optax.apply_updates(box["params"], updates)
            jax.block_until_ready(box["params"])

        if jitted:
            @functools.partial(jax.jit, donate_argnums=(0, 1) if donate else ())
            def jitted_step(params, state, tx=tx):
                updates, state = tx.update(grads, state, params)
                return optax.apply_updates(params, updates), state

            def one(box=box, f=jitted_step):  # noqa: F811 - the jitted whole step
                box["params"], box["state"] = f(box["params"], box["state"])
                jax.block_until_ready(box["params"])
        out[name] = one
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    fusedopt.set_num_threads(args.threads)
    rows = []
    print(f"{'params':>10} {'implementation':>33} {'ms/step':>9} {'vs optax (jit, donated)':>24}")
    for size in args.sizes:
        n = int(size)
        times = harness.time_interleaved(steps(n), args.repeats, warmup=3)
        for name, t in times.items():
            ratio = times["optax.adam (jit, donated)"] / t
            print(f"{n:>10.0e} {name:>33} {t * 1e3:>9.3f} {ratio:>23.2f}x")
            rows.append(dict(params=n, implementation=name, ms=t * 1e3, speedup_vs_optax_jit_donated=ratio))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=harness.machine_info(), jax=jax.__version__, optax=optax.__version__,
                           threads=args.threads, rows=rows), f, indent=1)


if __name__ == "__main__":
    main()
