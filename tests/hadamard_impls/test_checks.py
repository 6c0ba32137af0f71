"""The exactness and property checks each method must pass (polynomial layers, pairwise
interactions, causal token mixing, fusion, conditioning), as assertions."""

import pytest
import torch

from bench_runner.cell import process_settings
from hadamard_impls import BACKENDS, catalogue
from tests.hadamard_impls.cases import backend_cases

torch.set_default_dtype(torch.float32)


def build(benchmark: str, method: str, size: dict, seed: int = 0, dtype=torch.float64):
    """Methods built from the same seed share their projection weights."""
    torch.manual_seed(seed)
    return catalogue.benchmarks[benchmark].methods[method].build(size).to(dtype)


def inputs(benchmark: str, size: dict, dtype=torch.float64):
    return catalogue.benchmarks[benchmark].inputs(size, "cpu", dtype)


@pytest.mark.parametrize("method", ["ccp", "ncp"])
@pytest.mark.parametrize("degree", [2, 3, 5])
def test_a_polynomial_layer_has_exactly_its_degree(method, degree):
    """With β = 0, y(αz) is a polynomial in α of degree N: fit N + 2 points and read the coefficients."""
    size = {"B": 3, "d": 6, "degree": degree}
    module = build("polynomial_layer", method, size)
    with torch.no_grad():
        module.C.bias.zero_()
        (z,) = inputs("polynomial_layer", size)
        alphas = torch.linspace(-1.5, 1.5, degree + 2, dtype=torch.float64)
        ys = torch.stack([module(a * z) for a in alphas]).reshape(degree + 2, -1)  # (N+2, B·d)
    vandermonde = alphas[:, None] ** torch.arange(degree + 2, dtype=torch.float64)
    coeffs = torch.linalg.solve(vandermonde, ys)  # row p: the α^p coefficient of every output
    scale = coeffs.abs().max()
    assert coeffs[0].abs().max() < 1e-9 * scale  # no constant term
    assert coeffs[degree + 1].abs().max() < 1e-9 * scale  # nothing above degree N
    assert coeffs[degree].abs().max() > 1e-3 * scale  # and degree N itself is there


def test_the_mlp_baseline_is_not_a_polynomial_of_low_degree():
    size = {"B": 3, "d": 6, "degree": 2}
    module = build("polynomial_layer", "mlp_relu", size)
    (z,) = inputs("polynomial_layer", size)
    with torch.no_grad():
        # ReLU networks are positively homogeneous: y(αz) − β is linear in α > 0, whatever the depth.
        y1, y2 = module(z) - module.C.bias, module(2 * z) - module.C.bias
    torch.testing.assert_close(y2, 2 * y1)


def test_ccp_and_mlp_have_equal_parameters_when_d_equals_k():
    size = {"B": 1, "d": 32, "degree": 4}
    count = {m: sum(p.numel() for p in build("polynomial_layer", m, size).parameters()) for m in ("ccp", "mlp_relu")}
    assert count["ccp"] == count["mlp_relu"]


def test_fm_identity_equals_the_explicit_pair_sum():
    size = {"B": 5, "n": 20, "k": 4}
    (x,) = inputs("pairwise_interactions", size)
    with torch.no_grad():
        torch.testing.assert_close(build("pairwise_interactions", "fm", size)(x),
                                   build("pairwise_interactions", "fm_pairwise", size)(x))


def test_the_explicit_pair_sum_is_what_it_says():
    size = {"B": 2, "n": 5, "k": 3}
    module = build("pairwise_interactions", "fm_pairwise", size)
    (x,) = inputs("pairwise_interactions", size)
    V = module.V
    expected = sum(V[i] @ V[j] * x[:, i] * x[:, j] for i in range(5) for j in range(i + 1, 5))
    with torch.no_grad():
        torch.testing.assert_close(module.interactions(x), expected)


CAUSAL = {"B": 2, "N": 24, "C": 16, "H": 2}


def test_the_hadamard_mask_equals_the_additive_mask_and_sdpa_causal():
    (x,) = inputs("causal_token_mixing", CAUSAL)
    with torch.no_grad():
        outs = {m: build("causal_token_mixing", m, CAUSAL)(x)
                for m in ("hadamard_mask_attention", "additive_mask_attention", "sdpa_causal")}
    torch.testing.assert_close(outs["hadamard_mask_attention"], outs["additive_mask_attention"])
    torch.testing.assert_close(outs["hadamard_mask_attention"], outs["sdpa_causal"])


def test_causal_methods_do_not_look_ahead():
    (x,) = inputs("causal_token_mixing", CAUSAL)
    later = x.clone()
    later[:, 10:] += 1.0  # change only tokens 10 and after
    for method in catalogue.benchmarks["causal_token_mixing"].methods:
        module = build("causal_token_mixing", method, CAUSAL)
        with torch.no_grad():
            a, b = module(x), module(later)
        torch.testing.assert_close(a[:, :10], b[:, :10], msg=method)
        assert not torch.allclose(a[:, 10:], b[:, 10:]), method


def test_parallel_linear_attention_equals_the_recurrent_form():
    (x,) = inputs("causal_token_mixing", CAUSAL)
    with torch.no_grad():
        torch.testing.assert_close(build("causal_token_mixing", "linear_attention_parallel", CAUSAL)(x),
                                   build("causal_token_mixing", "linear_attention_recurrent", CAUSAL)(x))


def test_recurrent_linear_attention_is_a_running_sum():
    """The prefix-sum implementation against the recurrence written as a loop."""
    size = {"B": 1, "N": 6, "C": 4, "H": 1}
    module = build("causal_token_mixing", "linear_attention_recurrent", size)
    (x,) = inputs("causal_token_mixing", size)
    from hadamard_impls.layers import elu_feature_map

    with torch.no_grad():
        q, k, v = module.split(x)
        q, k = elu_feature_map(q)[0, 0], elu_feature_map(k)[0, 0]
        S, z, ys = torch.zeros(4, 4, dtype=x.dtype), torch.zeros(4, dtype=x.dtype), []
        for n in range(6):
            S, z = S + torch.outer(k[n], v[0, 0, n]), z + k[n]
            ys.append((q[n] @ S) / (q[n] @ z))
        expected = module.merge(torch.stack(ys)[None, None])
        torch.testing.assert_close(module(x), expected)


BIMODAL = {"B": 4, "d": 16, "k": 4, "o": 8}


def test_mlb_is_a_bilinear_map_of_cp_rank_k():
    module = build("bimodal_fusion", "mlb", BIMODAL)
    module.act = lambda t: t  # the bilinear core, without the tanh nonlinearity
    x, q = inputs("bimodal_fusion", BIMODAL)
    U, V, P = module.U.weight, module.V.weight, module.P.weight  # (k, d), (k, d), (o, k)
    W = torch.einsum("or,ri,rj->oij", P, U, V)  # Σ_r P[o, r] · u_r ⊗ v_r
    with torch.no_grad():
        torch.testing.assert_close(module(x, q), torch.nn.functional.bilinear(x, q, W))
    ranks = torch.linalg.matrix_rank(W.detach())
    assert (ranks == BIMODAL["k"]).all()  # each slice: rank k < d


def test_mcb_equals_the_count_sketch_of_the_outer_product():
    module = build("bimodal_fusion", "mcb", BIMODAL)
    x, q = inputs("bimodal_fusion", BIMODAL)
    sx, sq = module.sketch_x, module.sketch_q
    D = BIMODAL["o"]
    expected = torch.zeros(BIMODAL["B"], D, dtype=torch.float64)
    for i in range(BIMODAL["d"]):
        for j in range(BIMODAL["d"]):
            bucket = (sx.h[i] + sq.h[j]) % D
            expected[:, bucket] += sx.s[i] * sq.s[j] * x[:, i] * q[:, j]
    with torch.no_grad():
        torch.testing.assert_close(module(x, q), expected)


def test_film_is_an_affine_map_per_channel():
    size = {"B": 2, "C": 3, "H": 4, "dc": 5}
    module = build("conditioning", "film", size)
    x, c = inputs("conditioning", size)
    with torch.no_grad():
        y = module(x, c)
        gamma, beta = module.gamma(c), module.beta(c)
    torch.testing.assert_close(y[1, 2], gamma[1, 2] * x[1, 2] + beta[1, 2])


# Every backend against its method's float64 reference, forward and backward.
@pytest.mark.parametrize("method, backend", backend_cases())
def test_backend_gradients_match_the_reference(method, backend):
    bench = catalogue.benchmarks[method.benchmark]
    size = bench.sizes("smoke")[0]
    torch.manual_seed(0)
    module = method.build(size)
    torch.manual_seed(0)
    reference = method.build(size).to(torch.float64)
    if backend == "compile":
        torch._dynamo.reset()
        # Built with the settings the runner's cells set (Inductor's cache key holds them, the
        # linker among them), so a benchmark's first method, compiled by its train cell in
        # test_catalogue, is found in the cache here (or there) instead of being compiled twice.
        process_settings()
    fn = BACKENDS[backend].prepare(module)

    def grads(f, mod, dtype):
        xs = [t.requires_grad_(True) if t.is_floating_point() else t for t in bench.inputs(size, "cpu", dtype)]
        out = f(*xs)
        out.backward(torch.ones_like(out))
        leaves = [t for t in xs if t.requires_grad] + [p for p in mod.parameters() if p.requires_grad]
        return out.detach(), [t.grad if t.grad is not None else torch.zeros_like(t) for t in leaves]

    out, got = grads(fn, module, torch.float32)
    if method.check is not None:  # random output: y = a ⊙ (mask / (1 − p)), so ∂y/∂a · a = y
        a = bench.inputs(size, "cpu", torch.float32)[0]
        torch.testing.assert_close(got[0] * a, out)
        return
    ref_out, expected = grads(reference, reference, torch.float64)
    torch.testing.assert_close(out.double(), ref_out, rtol=1e-3, atol=1e-3)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.double(), e, rtol=1e-3, atol=1e-3)
