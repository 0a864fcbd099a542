"""The registry: every optimizer registered in C++ has a spec, and every spec has each piece an
optimizer needs (docs/adding-an-optimizer.md). A failure names the optimizer and what is missing."""

from pathlib import Path

import pytest

import fusedopt
from fusedopt import _core, reference
from fusedopt.backends import cuda
from fusedopt.bench import tables
from fusedopt.functional import SPECS

from cases import CASES

ROOT = Path(__file__).resolve().parents[1]


def test_every_compiled_rule_has_a_spec():
    rules = {r["name"] for r in _core.rules()}
    missing = rules - {spec.rule for spec in SPECS}
    assert not missing, f"rules registered in cpp/include/fusedopt/optimizers.hpp with no spec: {missing}"


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_spec_has_every_piece(spec):
    missing = []
    if not (Path(fusedopt.get_include()) / "fusedopt" / "rules" / f"{spec.rule}.hpp").exists():
        missing.append(f"rules header fusedopt/rules/{spec.rule}.hpp (installed)")
    if not callable(getattr(reference, spec.name, None)):
        missing.append(f"reference function fusedopt.reference.{spec.name}")
    if not any(name == spec.class_name for name, _ in CASES):
        missing.append(f"case rows for {spec.class_name} in tests/cases.py")
    names = cuda.kernel_names("optimizers")
    if not all(cuda.step_kernel_name(spec.rule_index, v, t, kernel) in names
               for v in range(len(spec.present)) for t in ("float32", "float64")
               for kernel in cuda.kernels_of(spec.rule_index, v)):
        missing.append("CUDA instantiations of every variant")
    if spec.name not in tables.OPTIMIZERS or not spec.bench:
        missing.append("bench hyperparameters (Spec.bench)")
    if not isinstance(getattr(fusedopt, spec.class_name, None), type):
        missing.append(f"class fusedopt.{spec.class_name}")
    readme = (ROOT / "README.md").read_text()
    if f"| `{spec.class_name}(" not in readme:
        missing.append(f"README row `{spec.class_name}(...)` in the Semantics table")
    assert not missing, f"{spec.name}: missing " + "; ".join(missing)


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_the_class_signature_is_the_specs(spec):
    import inspect

    params = inspect.signature(getattr(fusedopt, spec.class_name)).parameters
    keywords = ("master_weights", "state_dtype", "rounding_seed", "capturable")
    assert list(params) == ["params", *spec.hyper_names, *keywords]
    assert all(params[k].kind is inspect.Parameter.KEYWORD_ONLY for k in keywords)
    assert params["capturable"].default is False
    for h in spec.hypers:
        if h.default is not fusedopt.functional._spec.REQUIRED:
            assert params[h.name].default == h.default, h.name


# Bad-input rows from the specs: every hyperparameter of every optimizer, every value its check refuses.
BAD = [(spec, h, value, error) for spec in SPECS for h in spec.hypers for value, error in h.check.bad_values()]


@pytest.mark.parametrize("spec,hyper,value,error", BAD,
                         ids=[f"{s.class_name}-{h.name}={v!r}" for s, h, v, _ in BAD])
def test_a_refused_hyperparameter_names_itself_and_changes_nothing(spec, hyper, value, error):
    import numpy as np

    p = np.arange(6, dtype=np.float64)
    kwargs = {"lr": 0.1} if hyper.name != "lr" else {}
    with pytest.raises(error, match=hyper.name):
        getattr(fusedopt, spec.class_name)([p], **kwargs, **{hyper.name: value})
    assert np.array_equal(p, np.arange(6, dtype=np.float64))
    opt = getattr(fusedopt, spec.class_name)([p], lr=0.1)  # and set later, as a schedule would
    opt.step([np.ones(6)])
    before = p.copy()
    opt.param_groups[0][hyper.name] = value
    with pytest.raises(error, match=hyper.name):
        opt.step([np.ones(6)])
    assert p.tobytes() == before.tobytes()


def test_a_rule_whose_first_scalar_is_not_grad_sign_is_refused(monkeypatch):
    """Loss scaling and clipping multiply grad_sign (Spec.packed_scalars): a rule must start with it."""
    import dataclasses

    from fusedopt.functional import _spec

    lion = fusedopt.functional.lion.spec
    index, rule = _spec._RULES["lion"]
    monkeypatch.setitem(_spec._RULES, "lion", (index, dict(rule, scalars="decay, grad_sign, lr")))
    with pytest.raises(ValueError, match="first scalar must be grad_sign"):
        dataclasses.replace(lion)
