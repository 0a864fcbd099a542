"""The declarative spec of an optimizer (DESIGN.md §1, "Specs"): its hyperparameters with defaults
and checks, its state buffers with their initial values and the flag that makes each exist, the
flags (compiled variants) and the per-step scalars of its rule. The functional checks, the
optimizer class, the bad-input and Hypothesis test rows and the benchmark tables all come from it;
the math lives in the rules header (cpp/include/fusedopt/rules/) and in fusedopt.reference.

A spec is matched against the compiled rule when it is made (fusedopt._core.rules(): flag names,
state slots and which variant uses which, scalar fields), so the two cannot drift apart silently."""

from __future__ import annotations

import operator
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .. import _core, backends
from . import _checks, _precision

_RULES = {r["name"]: (index, r) for index, r in enumerate(_core.rules())}


def _names(text: str) -> Tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


class _Required:
    def __repr__(self) -> str:
        return "required"


REQUIRED: Any = _Required()  # a hyperparameter without a default (SGD's lr, as in torch)


@dataclass(frozen=True)
class Hyper:
    """One hyperparameter: its torch name, default and check. ``kernel=False`` for one that only
    the optimizer class takes (where a state buffer starts, e.g. Adagrad's
    ``initial_accumulator_value``)."""

    name: str
    default: Any
    check: _checks.Check
    kernel: bool = True


@dataclass(frozen=True)
class Buffer:
    """One state buffer per param: ``key`` in the optimizer's state (torch's name), ``argument`` of
    the functional (a list), the flag of the rule that makes it exist (None: always), and where it
    starts (a number, or the name of the hyperparameter that gives it)."""

    key: str
    argument: str
    when: Optional[str] = None
    initial: Union[float, str] = 0.0


class HyperparameterTable:
    """What a spec does with its ``hypers`` and ``constraint``: names, defaults and the checks."""

    hypers: Tuple[Hyper, ...]
    constraint: Optional[Callable[[Mapping[str, Any]], None]]

    def _index_hypers(self) -> None:
        self.hyper_names = tuple(h.name for h in self.hypers)
        self.kernel_hypers = tuple(h.name for h in self.hypers if h.kernel)
        self.defaults = {h.name: h.default for h in self.hypers}

    def check(self, h: Mapping[str, Any]) -> None:
        """Every hyperparameter of ``h`` checked, then the constraints across them."""
        for hyper in self.hypers:
            if hyper.name in h:
                hyper.check(hyper.name, h[hyper.name])
        if self.constraint is not None:
            self.constraint(h)


@dataclass
class Spec(HyperparameterTable):
    """One optimizer. ``flags(h, step)`` and ``scalars(h, step)`` read the hyperparameters ``h`` (a
    mapping: the functional's keywords or a param group) for the step ``step`` (counting from 1):
    flags gives the rule's flags by name, scalars its Scalars<T> fields by name, in float64."""

    name: str                      # the functional: fusedopt.functional.<name>
    class_name: str                # the optimizer class, named as in torch.optim
    rule: str                      # the rules header's name
    hypers: Tuple[Hyper, ...]
    buffers: Tuple[Buffer, ...]
    flags: Callable[[Mapping[str, Any], int], Dict[str, bool]]
    scalars: Callable[[Mapping[str, Any], int], Dict[str, float]]
    constraint: Optional[Callable[[Mapping[str, Any]], None]] = None  # checks across hyperparameters
    new_buffer_is_first_step: bool = False  # SGD: a new momentum buffer starts at g (step 1's rule)
    flags_use_step: bool = False   # flags(h, step) reads step (else they change only with h)
    torch_fused: bool = True       # torch.optim has fused=True for it (benchmarks)
    bench: Dict[str, Any] = field(default_factory=dict)  # the benchmarks' hyperparameters
    summary: str = ""              # one line for the class docstring; the functional's holds the math
    # torch's per-param scalar state after step `step`, which fusedopt derives from the step count and
    # the hyperparameters instead of keeping (NAdam's mu_product, ASGD's eta and mu): written into the
    # torch adapter's state_dict(), never read.
    derived_state: Optional[Callable[[Mapping[str, Any], int], Dict[str, float]]] = None
    # Arrays per param the norm pass of a two-pass rule moves beyond the one-pass model (LAMB: 3, it
    # reads p, g, m, v and writes m, v, then reads p, m, v and writes p): the benchmarks' byte model.
    norm_pass_traffic: int = 0

    def __post_init__(self) -> None:
        if self.rule not in _RULES:
            raise ValueError(f"spec {self.name}: no compiled rule {self.rule!r} (cpp/include/fusedopt/optimizers.hpp)")
        self.rule_index, rule = _RULES[self.rule]
        self.cpp_name: str = rule["cpp_name"]
        self.flag_names = _names(rule["flags"])
        self.fields = _names(rule["scalars"])
        if self.fields[0] != "grad_sign":  # loss scaling and clipping multiply it (Spec.packed_scalars)
            raise ValueError(f"spec {self.name}: the rule's first scalar must be grad_sign, the factor every "
                             f"gradient is multiplied by first; got {self.fields[0]!r}")
        self._pack = struct.Struct(f"{len(self.fields)}d").pack
        self._in_field_order = operator.itemgetter(*self.fields) if len(self.fields) > 1 else (
            lambda values: (values[self.fields[0]],))
        slots = _names(rule["slots"])
        if slots[2:] != tuple(b.key for b in self.buffers):
            raise ValueError(f"spec {self.name}: buffers {[b.key for b in self.buffers]} differ from the rule's "
                             f"state slots {list(slots[2:])}")
        for b in self.buffers:
            if b.when is not None and b.when not in self.flag_names:
                raise ValueError(f"spec {self.name}: buffer {b.key} exists when {b.when!r}, not a flag of the rule")
        self.present: List[int] = list(rule["present"])
        for variant, present in enumerate(self.present):
            expected = 0b11 | sum(1 << (k + 2) for k, b in enumerate(self.buffers)
                                  if b.when is None or (variant >> self.flag_names.index(b.when)) & 1)
            if present != expected:
                raise ValueError(f"spec {self.name}: variant {variant} of rule {self.rule} uses slots {present:b}, "
                                 f"the spec's buffers say {expected:b}")
        self._flag_bits = tuple((1 << k, name) for k, name in enumerate(self.flag_names))
        self._lists = [(("params", "grads") + tuple(b.argument for b in self.buffers_in(v)), self.buffers_in(v))
                       for v in range(len(self.present))]
        self._checked: Optional[tuple] = None  # the last hyperparameters run() found valid
        self._index_hypers()

    # --- per step --------------------------------------------------------------------------------

    def variant(self, h: Mapping[str, Any], step: int) -> int:
        """The compiled variant (bit k: the rule's k-th flag) for these hyperparameters."""
        flags = self.flags(h, step)
        variant = 0
        for bit, name in self._flag_bits:
            if flags[name]:
                variant |= bit
        return variant

    def packed_scalars(self, h: Mapping[str, Any], step: int, grad_scale: float = 1.0) -> bytes:
        """The rule's scalars as float64 bytes in the rule's field order (the kernels' argument).
        ``grad_scale`` multiplies every gradient inside the step (through grad_sign, the rule's first
        scalar): the inverse loss scale times a clipping coefficient, without a pass of its own."""
        values = self.scalars(h, step)
        if grad_scale != 1.0:
            values = dict(values, grad_sign=values["grad_sign"] * grad_scale)
        try:
            return self._pack(*self._in_field_order(values))
        except KeyError as e:
            raise RuntimeError(f"spec {self.name}: scalars() gave no value for the rule's field {e}") from None

    def buffers_in(self, variant: int) -> Tuple[Buffer, ...]:
        """The state buffers a variant updates, in slot order."""
        return tuple(b for k, b in enumerate(self.buffers) if (self.present[variant] >> (k + 2)) & 1)

    def initial_value(self, buffer: Buffer, h: Mapping[str, Any]) -> float:
        return h[buffer.initial] if isinstance(buffer.initial, str) else buffer.initial


def run(spec: Spec, params: Sequence, grads: Sequence, buffers: Dict[str, Optional[Sequence]], step: int,
        h: Dict[str, Any], grad_scale: float = 1.0, master_params: Optional[Sequence] = None,
        rounding_seed: Optional[int] = None) -> None:
    """The functional step of ``spec``: every argument checked before anything is written, then one
    fused call on the params' backend (DESIGN.md §1). ``grad_scale`` multiplies every gradient;
    ``master_params`` and ``rounding_seed`` are the mixed-precision options (fusedopt.functional._precision)."""
    if type(step) is not int or step < 1:
        _checks.step(step)
    rounding = None if rounding_seed is None else _precision.rounding(rounding_seed, step)
    values = tuple(h.values())
    key = (values, tuple(map(type, values)))  # 1 == 1.0 == True: the types too
    if key != spec._checked:
        spec.check(h)
        spec._checked = key
    variant = spec.variant(h, step)
    names, in_use = spec._lists[variant]
    lists: List[Any] = [params, grads]
    for b in in_use:
        if buffers[b.argument] is None:
            raise ValueError(f"{b.argument}: required when {b.when} is on (got None)")
        lists.append(buffers[b.argument])
    backends.for_arrays(params).step(spec, variant, names, lists, spec.packed_scalars(h, step, grad_scale),
                                     master=master_params, rounding=rounding)
