"""The one table of optimizer cases every reference-checked test draws from (STYLE.md §8)."""

import numpy as np

import fusedopt
from fusedopt import reference

# (optimizer class name, constructor kwargs): every option of every optimizer appears at least once.
CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, weight_decay=0.1, maximize=True)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2)),
    ("Adagrad", dict(lr=0.05, eps=1e-6, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, weight_decay=0.05)),
    ("RMSprop", dict(lr=0.005, alpha=0.9, centered=True, momentum=0.5, eps=1e-6, maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05, eps=1e-6)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.5, 0.9), maximize=True)),
    ("Adamax", dict()),
    ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1)),  # rectified from step 6 (β2 = 0.9)
    ("RAdam", dict(lr=0.01, betas=(0.9, 0.8), eps=1e-6, weight_decay=0.05, decoupled_weight_decay=True,
                   maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.1, maximize=True)),
    ("Rprop", dict()),
    ("Rprop", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2), maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), momentum_decay=0.01, weight_decay=0.1, maximize=True)),
    ("NAdam", dict(lr=0.01, eps=1e-6, weight_decay=0.05, decoupled_weight_decay=True)),
    ("ASGD", dict()),
    ("ASGD", dict(lr=0.05, lambd=0.01, alpha=0.5, t0=3, weight_decay=0.1, maximize=True)),  # averaging from step 5
    ("LAMB", dict()),
    ("LAMB", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-5, weight_decay=0.1, maximize=True)),
    ("LARS", dict(lr=0.5)),
    ("LARS", dict(lr=1.0, momentum=0.8, weight_decay=0.01, trust_coefficient=0.01, eps=1e-6, nesterov=True,
                  maximize=True)),
    ("LARS", dict(lr=0.05, weight_decay=0.01, trust_ratio=False)),  # the param group of biases and norms
    ("Lion", dict()),
    ("Lion", dict(lr=0.01, betas=(0.8, 0.95), weight_decay=0.1, maximize=True)),
]

REFERENCE = {
    "SGD": reference.sgd,
    "Adagrad": reference.adagrad,
    "RMSprop": reference.rmsprop,
    "Adam": reference.adam,
    "AdamW": reference.adamw,
    "Adamax": reference.adamax,
    "RAdam": reference.radam,
    "Adadelta": reference.adadelta,
    "Rprop": reference.rprop,
    "Lion": reference.lion,
    "NAdam": reference.nadam,
    "ASGD": reference.asgd,
    "LAMB": reference.lamb,
    "LARS": reference.lars,
}


def case_id(case):
    name, kwargs = case
    return name + ("-" + "-".join(f"{k}={v}" for k, v in kwargs.items()) if kwargs else "")


def make_optimizer(name, params, kwargs):
    return getattr(fusedopt, name)(params, **kwargs)


def random_params(shapes, dtype, seed):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def random_grads(shapes, dtype, rng):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


class ReferenceRun:
    """The reference optimizer over float64 copies of the params: one state dict per param."""

    def __init__(self, name, params, kwargs):
        self.fn = REFERENCE[name]
        self.kwargs = dict(kwargs)
        self.params = [p.astype(np.float64) for p in params]
        self.states = [{} for _ in params]

    def step(self, grads):
        for p, g, s in zip(self.params, grads, self.states):
            self.fn(p, g.astype(np.float64), s, **self.kwargs)


def assert_same_state(expected_opt, got_opt, to_numpy=np.asarray):
    """Every state buffer of got_opt has the bits of expected_opt's (step counters excepted)."""
    for i, state in expected_opt.state.items():
        for key, value in state.items():
            if key != "step":
                assert to_numpy(got_opt.state[i][key]).tobytes() == value.tobytes(), f"state[{i}][{key!r}]"
