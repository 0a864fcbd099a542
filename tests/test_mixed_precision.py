"""Mixed precision (README, "Mixed precision"): bfloat16 and float16 storage, float32 master copies,
stochastic rounding, against the NumPy reference (fusedopt.reference.mixed_step: the step in float64,
then each written array rounded to its storage type).

Tolerance, in ulps of the storage type. The kernels compute each step in float32 (unit roundoff
2^-24, about ten roundings per element), the reference in float64; both then round to the storage
type, whose ulp is 2^-8 (bfloat16) or 2^-11 (float16) relative, 2^16 or 2^13 times coarser. So the two
stored values are equal unless a rounding boundary falls between the float32 and the float64 result,
which happens for a fraction of about 2^-13 of the elements: then they are one ulp apart. Each step
is checked from the kernels' own stored state (the reference takes the step from the same 16-bit
inputs, the state buffers made at the first step included: their initial values, lr for Rprop, are
stored rounded), so errors do not compound. Where a result cancels (p − lr·u with p ≈ lr·u, a momentum
that changes sign) the float32 error is relative to the terms, not the result: the bound adds 1e-6 of
the largest term. At least 99 % of the elements of a step must be bit-equal, which an off-by-one
rounding (truncation instead of round-to-nearest-even) would break for about half of them.

A few elements are ill-conditioned beyond that: where g + wd·p cancels to a few float32 ulps (the 16-bit
inputs make exact near-cancellations common), Adam's m/(√v + ε) is ±1 either way and the float32 and
float64 steps may differ by up to lr. Up to 0.05 % of the elements of a step may lie outside the bound
(in practice 4 of 40,000), each still within one step (ulp + 2·lr)."""

import numpy as np
import pytest

import fusedopt
from fusedopt import _core, reference
from cases import CASES, REFERENCE, case_id
from test_init import KAT  # Random123's known answers

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16 = np.dtype(np.float16)
SHAPES = [(7,), (1023,), (3, 129), (0,), (300, 129)]  # odd sizes, an empty one, one above the serial threshold

# storage layouts: (param dtype, optimizer options)
LAYOUTS = {
    "bfloat16": (BF16, {}),
    "float16": (F16, {}),
    "bfloat16-float32-state": (BF16, dict(state_dtype="float32")),
    "float16-master": (F16, dict(master_weights=True)),
    "bfloat16-master": (BF16, dict(master_weights=True)),
    "bfloat16-stochastic": (BF16, dict(rounding_seed=1234)),
    "bfloat16-float32-state-stochastic": (BF16, dict(state_dtype="float32", rounding_seed=2**40 + 7)),
}


def ulp(x, dtype):
    """The spacing of storage ``dtype`` at float64 values x (the subnormal spacing near zero)."""
    info = ml_dtypes.finfo(dtype) if dtype == BF16 else np.finfo(dtype)
    exponent = np.floor(np.log2(np.maximum(np.abs(x), float(info.smallest_normal))))
    return np.exp2(exponent - info.nmant)


class StepCheck:
    """The comparisons of one step, judged together (the fractions are over all its arrays)."""

    def __init__(self, lr):
        self.lr, self.elements, self.equal, self.outside = lr, 0, 0, 0

    def close(self, actual, desired, scale, what):
        assert actual.dtype == desired.dtype, what
        a, d = actual.astype(np.float64).ravel(), desired.astype(np.float64).ravel()
        assert np.array_equal(np.isnan(a), np.isnan(d)), what
        finite = ~np.isnan(d)
        a, d, scale = a[finite], d[finite], np.broadcast_to(scale, actual.shape).ravel()[finite]
        spacing = ulp(d, actual.dtype) if actual.dtype != np.float32 else np.abs(d) * 2.0**-22
        error, bound = np.abs(a - d), spacing + 1e-6 * scale
        worst = np.argmax(error - bound - 2 * self.lr) if d.size else 0
        assert np.all(error <= bound + 2 * self.lr), f"{what}: {a[worst]!r} vs reference {d[worst]!r}"
        self.outside += int(np.sum(error > bound))
        if actual.dtype != np.float32:  # a float32 array (master copy, state) keeps the float32 math's rounding
            self.elements += d.size
            self.equal += int(np.sum(a == d))

    def done(self, what):
        if self.elements:
            assert self.equal >= 0.99 * self.elements, f"{what}: only {self.equal} of {self.elements} bit-equal"
            assert self.outside <= 5e-4 * self.elements, f"{what}: {self.outside} elements outside the bound"


def random_arrays(shapes, dtype, rng):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def largest_terms(*arrays):
    return np.max([np.abs(np.asarray(a, dtype=np.float64)) for a in arrays], axis=0)


@pytest.mark.parametrize("layout", LAYOUTS, ids=list(LAYOUTS))
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_each_step_matches_the_reference_in_ulps_of_the_storage_type(case, layout):
    name, kwargs = case
    dtype, options = LAYOUTS[layout]
    rng = np.random.default_rng(7)
    params = random_arrays(SHAPES, dtype, rng)
    opt = getattr(fusedopt, name)(params, **kwargs, **options)
    keys = [b.key for b in opt.spec.buffers]
    hyper = {k: v for k, v in kwargs.items() if k in opt.spec.hyper_names}
    state_dtype = options.get("state_dtype") or ("float32" if options.get("master_weights") else dtype)
    for t in range(4):
        grads = random_arrays(SHAPES, dtype, rng)
        expected = []
        for i, (p, g) in enumerate(zip(params, grads)):
            state = {k: (v if k == "step" else v.copy()) for k, v in opt.state.get(i, {}).items() if k in keys + ["step"]}
            if t == 0:  # the buffers the optimizer makes with a value other than zero, stored rounded
                for b in opt.spec.buffers:
                    initial = opt.spec.initial_value(b, opt.param_groups[0])
                    if initial != 0:
                        state[b.key] = np.full(p.shape, initial, state_dtype)
            master = opt.state[i]["master_param"].copy() if t > 0 and "master_param" in opt.state.get(i, {}) else (
                p.astype(np.float32) if options.get("master_weights") else None)
            before = [np.asarray(p, np.float64)] + [np.asarray(v, np.float64) for k, v in state.items() if k != "step"]
            p_ref = p.copy()
            reference.mixed_step(REFERENCE[name], p_ref, g, state, master=master, tensor_id=i,
                                 rounding_seed=options.get("rounding_seed"), state_keys=keys, state_dtype=state_dtype,
                                 **hyper)
            expected.append((p_ref, state, master, before))
        opt.step(grads)
        check = StepCheck(opt.param_groups[0]["lr"])
        for i, (p_ref, state, master, before) in enumerate(expected):
            scale = largest_terms(*before, p_ref, *[v for k, v in state.items() if k != "step"])
            check.close(params[i], p_ref, scale, f"step {t + 1}: params[{i}]")
            for k in keys:
                if k in state:
                    check.close(opt.state[i][k], state[k], scale, f"step {t + 1}: state[{i}][{k!r}]")
            if master is not None:
                check.close(opt.state[i]["master_param"], master, scale, f"step {t + 1}: master of {i}")
        check.done(f"step {t + 1}")


# --- the conversions, exhaustively --------------------------------------------------------------

def unchanged_by_a_zero_step(params, master=None):
    """An SGD step of lr 0 and zero grads: p − 0·0 is p, so what is written is the load and store."""
    fusedopt.functional.sgd(params, [np.zeros_like(p) for p in params], step=1, lr=0.0, master_params=master)


ISAS = fusedopt.cpu_info()["available_isas"]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bfloat16", "float16"])
def test_every_16_bit_pattern_loads_and_stores_back_unchanged(dtype, isa, restore_runtime):
    _core.set_isa(isa)
    bits = np.arange(2**16, dtype=np.uint32).astype(np.uint16)
    p = bits.copy().view(dtype)
    unchanged_by_a_zero_step([p])
    nan = np.isnan(bits.view(dtype).astype(np.float32))
    assert np.array_equal(p.view(np.uint16)[~nan], bits[~nan])
    assert np.all(np.isnan(p.astype(np.float32))[nan])


def float32_edge_values():
    rng = np.random.default_rng(3)
    random = rng.integers(0, 2**32, size=200_003, dtype=np.uint64).astype(np.uint32)
    halfway = np.arange(0, 2**31, 2**16 - 1, dtype=np.uint64).astype(np.uint32) | 0x8000  # ties and neighbours
    specials = np.array([0, 0x80000000, 1, 0x007FFFFF, 0x00800000, 0x7F7FFFFF, 0x7F7F8000, 0x7F7FFFFF, 0x7F800000,
                         0xFF800000, 0x7FC00000, 0x7F800001, 0x477FF000, 0x477FEFFF, 0x47800000, 0x387FC000,
                         0x33800000, 0x33000000, 0x33000001, 0x3F808000, 0x3F818000], dtype=np.uint32)
    return np.concatenate([random, halfway, halfway ^ 0x80000000, specials]).view(np.float32)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bfloat16", "float16"])
def test_a_master_copy_rounds_to_nearest_even_as_numpy_and_ml_dtypes(dtype, isa, restore_runtime):
    _core.set_isa(isa)
    master = float32_edge_values()
    p = np.zeros(master.shape, dtype)
    unchanged_by_a_zero_step([p], [master])
    with np.errstate(over="ignore"):  # beyond float16's range: inf, as the kernels round
        expected = master.astype(dtype)  # NumPy (float16) and ml_dtypes (bfloat16): round to nearest even
    nan = np.isnan(master)
    assert np.array_equal(p.view(np.uint16)[~nan], expected.view(np.uint16)[~nan])
    assert np.all(np.isnan(p[nan].astype(np.float32)))


# --- stochastic rounding ----------------------------------------------------------------------

def rounded_many_times(x, rounding_seed, draws):
    """bfloat16 roundings of float32 values x, one per step: p = 0 − (−x) through SGD with lr 1."""
    out = np.empty((draws, x.size))
    for step in range(1, draws + 1):
        p = np.zeros(x.shape, BF16)
        fusedopt.functional.sgd([p], [-x], step=step, lr=1.0, rounding_seed=rounding_seed)
        out[step - 1] = p.astype(np.float64)
    return out


def test_stochastic_rounding_is_unbiased_and_nearest_is_not():
    rng = np.random.default_rng(11)
    x = (rng.uniform(1, 2, 2000) * np.exp2(rng.integers(-20, 20, 2000))).astype(np.float32)
    x64 = x.astype(np.float64)
    draws = 400
    spacing = ulp(x64, BF16)
    fraction = (x64 - np.floor(x64 / spacing) * spacing) / spacing  # where x sits between its neighbours
    # each rounding is down or up a spacing apart, up with probability `fraction` when unbiased: the mean
    # of `draws` roundings has standard deviation spacing·√(f(1 − f)/draws); 6 of them bound every element
    sigma = spacing * np.sqrt(fraction * (1 - fraction) / draws)
    stochastic = rounded_many_times(x, 99, draws)
    assert np.all(np.abs(stochastic.mean(axis=0) - x64) <= 6 * sigma + 1e-12 * spacing)
    assert np.all((stochastic == np.floor(x64 / spacing) * spacing) | (stochastic == np.ceil(x64 / spacing) * spacing))
    nearest = rounded_many_times(x, None, 2)[0]
    assert np.mean(np.abs(nearest - x64) > 6 * sigma + 1e-12 * spacing) > 0.5  # the test would see a bias


def test_stochastic_rounding_bits_are_the_references():
    x = np.random.default_rng(5).standard_normal(5001).astype(np.float32)
    p = np.zeros(x.shape, BF16)
    fusedopt.functional.sgd([p], [-x], step=3, lr=1.0, rounding_seed=2**63 + 5)
    fields = reference.rounding_bits(2**63 + 5, 3, 0, x.size)
    assert np.array_equal(p.view(np.uint16), reference.round_bfloat16_stochastic(x, fields[0]))


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_the_reference_philox_gives_random123s_answers(counter, key, expected):
    assert tuple(int(w) for w in reference.philox4x32_10(counter, key)) == expected


# --- the same bits for any thread count and ISA -------------------------------------------------

THREAD_SHAPES = [(200_003,), (7,), (1023,), (0,), (40_000,)]


def mixed_trajectory(name, kwargs, dtype, options, steps=3):
    rng = np.random.default_rng(21)
    params = random_arrays(THREAD_SHAPES, dtype, rng)
    opt = getattr(fusedopt, name)(params, **kwargs, **options)
    for _ in range(steps):
        opt.step(random_arrays(THREAD_SHAPES, dtype, rng))
    return [p.tobytes() for p in params] + [v.tobytes() for s in opt.state.values() for k, v in s.items()
                                            if k != "step"]


IDENTITY_CASES = [c for c in CASES if c[0] in ("Adam", "LAMB", "LARS", "SGD", "NAdam")][::2]
IDENTITY_LAYOUTS = ["bfloat16-stochastic", "float16-master", "bfloat16-float32-state"]


@pytest.mark.parametrize("layout", IDENTITY_LAYOUTS)
@pytest.mark.parametrize("case", IDENTITY_CASES, ids=[case_id(c) for c in IDENTITY_CASES])
def test_one_and_two_threads_and_every_isa_give_identical_bits(case, layout, restore_runtime):
    dtype, options = LAYOUTS[layout]
    fusedopt.set_num_threads(1)
    one = mixed_trajectory(*case, dtype, options)
    fusedopt.set_num_threads(2)
    _core.set_serial_threshold(0)
    assert mixed_trajectory(*case, dtype, options) == one
    for isa in fusedopt.cpu_info()["available_isas"]:
        _core.set_isa(isa)
        assert mixed_trajectory(*case, dtype, options) == one, isa


# --- bad input: a clear error, nothing written ----------------------------------------------------

def adam_lists(dtype=BF16, n=5):
    rng = np.random.default_rng(0)
    return ([rng.standard_normal(n).astype(dtype)], [rng.standard_normal(n).astype(dtype)],
            [np.zeros(n, dtype)], [np.zeros(n, dtype)])


BAD_CALLS = [
    ("master for float32 params", lambda P, G, M, V: (P.__setitem__(0, P[0].astype(np.float32)),
                                                     dict(master_params=[np.zeros(5, np.float32)])),
     ValueError, ["master weights", "float32"]),
    ("float64 master", lambda P, G, M, V: (None, dict(master_params=[np.zeros(5)])), TypeError, ["master_params[0]", "float64"]),
    ("master of the wrong shape", lambda P, G, M, V: (None, dict(master_params=[np.zeros(4, np.float32)])), ValueError,
     ["master_params[0]", "shape"]),
    ("master shares the state's memory", lambda P, G, M, V: (M.__setitem__(0, np.zeros(5, np.float32)),
                                                             dict(master_params=[M[0]])), ValueError, ["shares memory"]),
    ("stochastic rounding of float16", lambda P, G, M, V: (M.__setitem__(0, M[0].astype(np.float16)),
                                                           dict(rounding_seed=1)), ValueError, ["stochastic", "float16"]),
    ("float64 state with bfloat16 params", lambda P, G, M, V: (V.__setitem__(0, np.zeros(5)), {}), TypeError,
     ["exp_avg_sqs[0]", "float64", "bfloat16"]),
    ("a list mixing bfloat16 and float16", lambda P, G, M, V: (
        [P.append(np.zeros(3, BF16)), G.append(np.zeros(3, F16)), M.append(np.zeros(3, BF16)), V.append(np.zeros(3, BF16))],
        {}), TypeError, ["grads[1]", "float16", "bfloat16"]),
    ("negative rounding seed", lambda P, G, M, V: (None, dict(rounding_seed=-3)), ValueError, ["rounding_seed"]),
    ("uint16 bits instead of bfloat16", lambda P, G, M, V: (G.__setitem__(0, G[0].view(np.uint16)), {}), TypeError,
     ["grads[0]", "uint16"]),
]


@pytest.mark.parametrize("name,mutate,error,words", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_mixed_precision_calls_raise_and_change_nothing(name, mutate, error, words):
    P, G, M, V = adam_lists()
    _, options = mutate(P, G, M, V)
    before = [a.copy() for a in P + G + M + V + options.get("master_params", [])]
    with pytest.raises(error) as e:
        fusedopt.functional.adam(P, G, M, V, step=1, **options)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    after = P + G + M + V + options.get("master_params", [])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(after, before))


def test_an_optimizer_refuses_a_master_copy_it_does_not_keep():
    p = np.ones(4, BF16)
    opt = fusedopt.Adam([p])
    opt.step([np.ones(4, BF16)])
    saved = opt.state_dict()
    saved["state"][0]["master_param"] = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=r"master_param.*no master copy"):
        opt.load_state_dict(saved)
    assert "master_param" not in opt.state[0]


def test_a_state_dict_keeps_master_copies_and_state_dtypes():
    rng = np.random.default_rng(1)
    p = rng.standard_normal(50).astype(BF16)
    opt = fusedopt.AdamW([p], lr=1e-2, master_weights=True)
    grads = [[rng.standard_normal(50).astype(BF16)] for _ in range(6)]
    for g in grads[:3]:
        opt.step(g)
    saved = opt.state_dict()
    q = p.copy()
    other = fusedopt.AdamW([q], lr=1e-2, master_weights=True)
    other.load_state_dict(saved)
    assert other.state[0]["master_param"].dtype == np.float32 and other.state[0]["exp_avg"].dtype == np.float32
    for g in grads[3:]:
        opt.step(g)
        other.step(g)
    assert p.tobytes() == q.tobytes()


# --- training: bfloat16 with stochastic rounding tracks float32 -----------------------------------

def least_squares_losses(dtype, rounding_seed=None, steps=2000):
    """SGD on a linear least-squares problem whose weights sit near 1, where a step (lr 5e-3 times a
    gradient of about 0.05) is far below half a bfloat16 spacing there (2^-10 below 1, 2^-8 above)."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((256, 64))
    w_true = 1.0 + 0.05 * rng.standard_normal(64)
    y = x @ w_true
    w = np.ones(64, dtype)
    opt = fusedopt.SGD([w], lr=5e-3, rounding_seed=rounding_seed)
    losses = []
    for _ in range(steps):
        residual = x @ w.astype(np.float64) - y
        losses.append(float(np.mean(residual**2)))
        opt.step([(x.T @ residual / len(y)).astype(dtype)])
    return np.array(losses)


def test_bfloat16_with_stochastic_rounding_tracks_float32_where_nearest_stalls():
    full = least_squares_losses(np.float32)
    nearest = least_squares_losses(BF16)
    stochastic = least_squares_losses(BF16, rounding_seed=0)
    assert full[-1] < 0.05 * full[0]                       # float32 training converges
    assert nearest[-1] > 0.9 * nearest[0]                  # nearest: updates below half a spacing are lost
    assert stochastic[-1] < 0.1 * stochastic[0]            # stochastic rounding follows float32
    assert abs(stochastic[-1] - full[-1]) < 0.05 * full[0]


# --- loss scaling and clipping over 16-bit gradients ---------------------------------------------

@pytest.mark.parametrize("dtype", [BF16, F16], ids=["bfloat16", "float16"])
def test_scaled_step_of_16_bit_grads_is_the_reference_step_of_the_unscaled_clipped_grads(dtype):
    rng = np.random.default_rng(12)
    params = random_arrays(SHAPES, dtype, rng)
    opt = fusedopt.Adam(params, lr=1e-2)
    for t in range(3):
        grads = [(64 * rng.standard_normal(s)).astype(dtype) for s in SHAPES]
        norm = float(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads)))
        factor = min(1.0, 0.5 / (norm / 64 + 1e-6)) / 64  # clip_grad_norm_'s rule on the unscaled grads
        expected = []
        for i, (p, g) in enumerate(zip(params, grads)):
            state = {k: (v if k == "step" else v.copy()) for k, v in opt.state.get(i, {}).items()}
            p_ref = p.copy()
            reference.mixed_step(reference.adam, p_ref, g.astype(np.float64) * factor, state,
                                 state_keys=["exp_avg", "exp_avg_sq"], lr=1e-2)
            expected.append((p_ref, state))
        report = opt.scaled_step(grads, loss_scale=64.0, max_norm=0.5)
        assert not report.skipped and report.total_norm == pytest.approx(norm / 64, rel=1e-12)
        check = StepCheck(1e-2)
        for i, (p_ref, state) in enumerate(expected):
            check.close(params[i], p_ref, largest_terms(p_ref), f"step {t + 1}: params[{i}]")
            for k in ("exp_avg", "exp_avg_sq"):
                check.close(opt.state[i][k], state[k], largest_terms(state[k]), f"step {t + 1}: state[{i}][{k!r}]")
        check.done(f"step {t + 1}")
    grads[1][3] = np.inf
    before = [p.tobytes() for p in params] + [v.tobytes() for s in opt.state.values() for k, v in s.items() if k != "step"]
    assert opt.scaled_step(grads, loss_scale=64.0, max_norm=0.5).skipped
    assert before == [p.tobytes() for p in params] + [v.tobytes() for s in opt.state.values() for k, v in s.items()
                                                       if k != "step"]


def test_the_avx512_bfloat16_paths_with_and_without_vcvtneps2bf16_give_the_same_bits(tmp_path):
    """Where the CPU has AVX512_BF16, bfloat16 stores use VCVTNEPS2BF16 (a vector with a float32
    denormal excepted); FUSEDOPT_NO_AVX512_BF16=1 makes a process take the integer rounding instead."""
    import subprocess
    import sys

    script = tmp_path / "trajectory.py"
    script.write_text(
        "import sys, numpy as np, ml_dtypes, fusedopt\n"
        "bf = ml_dtypes.bfloat16\n"
        "rng = np.random.default_rng(4)\n"
        "edge = np.array([1e-40, -3e-39, 1.0000001, np.nan, np.inf, 3.3895e38], np.float32)\n"
        "params = [rng.standard_normal(s).astype(bf) for s in [(4099,), (33,), (200_003,)]]\n"
        "masters = [np.concatenate([edge, rng.standard_normal(s[0] - 6).astype(np.float32)]) for s in [(4099,), (33,), (200_003,)]]\n"
        "state = [np.zeros_like(p) for p in params]\n"
        "for step in range(1, 4):\n"
        "    grads = [rng.standard_normal(p.shape).astype(bf) for p in params]\n"
        "    fusedopt.functional.adam(params, grads, state, [np.zeros_like(p) for p in params], step=step, lr=1e-2)\n"
        "    fusedopt.functional.sgd(params, [np.zeros_like(p) for p in params], step=1, lr=0.0, master_params=masters)\n"
        "sys.stdout.buffer.write(b''.join(a.tobytes() for a in params + state))\n")
    runs = {}
    for flag in ("0", "1"):
        env = dict(__import__("os").environ)
        env.pop("FUSEDOPT_NO_AVX512_BF16", None)
        if flag == "1":
            env["FUSEDOPT_NO_AVX512_BF16"] = "1"
        runs[flag] = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, check=True,
                                    timeout=120).stdout
    assert len(runs["0"]) > 0 and runs["0"] == runs["1"]
