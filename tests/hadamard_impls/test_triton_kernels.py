"""The Triton kernels against plain PyTorch, forward and backward.

Without a GPU they run in Triton's interpreter (tests/conftest.py sets
TRITON_INTERPRET=1), so the same kernel code is checked on every machine. Sizes are
chosen off the block sizes: 3001 elements against blocks of 1024, 600 tokens against
chunks of 256 and tiles of 32, 200 channels against tiles of 128.
"""

import os

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton", reason="Triton is not installed")
if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("no GPU and TRITON_INTERPRET is not 1", allow_module_level=True)

from hadamard_impls import catalogue  # noqa: E402
from hadamard_impls import kernels as K  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TRITON_METHODS = [m for m in catalogue.methods() if "triton" in m.backends]


def leaves(*shapes, scale=1.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(scale * torch.randn(*s, generator=g)).to(DEVICE).requires_grad_(True) for s in shapes]


def run(fn, inputs, seed=1):
    """fn's output and the gradients of every input for one random upstream gradient."""
    xs = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*xs)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed)).to(out.device, out.dtype)
    out.backward(grad)
    return out.detach(), [x.grad for x in xs]


def assert_same(fused, reference, inputs, rtol=1e-4, atol=1e-5):
    out, grads = run(fused, inputs)
    expected, expected_grads = run(reference, inputs)
    torch.testing.assert_close(out, expected, rtol=rtol, atol=atol)
    for i, (got, want) in enumerate(zip(grads, expected_grads)):
        torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=lambda m: f"gradient {i}: {m}")


def test_the_kernels_are_compared_at_all():
    # A fused op that ignored its second operand must fail: the comparison has teeth.
    a, b = leaves((3001,), (3001,))
    with pytest.raises(AssertionError):
        assert_same(lambda a, b: K.hadamard(a, a), lambda a, b: a * b, [a, b])


def test_hadamard_forward_and_backward():
    assert_same(K.hadamard, lambda a, b: a * b, leaves((3001,), (3001,)))


def test_hadamard_in_bfloat16_rounds_once():
    a, b = (t.detach().to(torch.bfloat16) for t in leaves((3001,), (3001,)))
    # Compiled Triton rounds float32 to bfloat16 to nearest, as eager does: bit-equal. The
    # interpreter truncates instead, so there one bfloat16 step (2⁻⁷ relative) is allowed.
    rtol = 2**-7 if os.environ.get("TRITON_INTERPRET") == "1" else 0.0
    torch.testing.assert_close(K.hadamard(a, b), a * b, rtol=rtol, atol=0)


def test_hadamard_chain_forward_and_backward():
    assert_same(K.hadamard_chain, lambda a, b, c: a * torch.sigmoid(b) + c, leaves((3001,), (3001,), (3001,)))


@pytest.mark.parametrize("activation, act", [("silu", F.silu), ("gelu", F.gelu), ("sigmoid", torch.sigmoid)])
def test_gated_activations_forward_and_backward(activation, act):
    assert_same(lambda g, u: K.gated(g, u, activation), lambda g, u: act(g) * u,
                leaves((3, 517), (3, 517), scale=3.0))


def _linear_pair(C, hidden, bias, seed=3):
    torch.manual_seed(seed)
    return [torch.nn.Linear(C, hidden, bias=bias).to(DEVICE) for _ in range(2)]


@pytest.mark.parametrize("activation, act", [("silu", F.silu), ("gelu", F.gelu), ("sigmoid", torch.sigmoid)])
@pytest.mark.parametrize("bias", [False, True])
def test_dual_gemm_gated_linear_forward_and_backward(activation, act, bias):
    # 45 tokens, 50 channels, 70 hidden: off the interpreter's 32×32×16 tiles on every axis.
    gate, up = _linear_pair(50, 70, bias)
    x = leaves((3, 15, 50))[0]
    params = [p for m in (gate, up) for p in m.parameters()]
    out = K.gated_linear(x, gate, up, activation)
    want = act(gate(x)) * up(x)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-5)
    with torch.no_grad():  # inference stores no pre-activations: another specialisation of the kernel
        torch.testing.assert_close(K.gated_linear(x, gate, up, activation), want, rtol=1e-4, atol=1e-5)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(4)).to(DEVICE)
    got = torch.autograd.grad(out, [x, *params], grad)
    expected = torch.autograd.grad(want, [x, *params], grad)
    for i, (g, w) in enumerate(zip(got, expected)):
        torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-4, msg=lambda m: f"gradient {i}: {m}")


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                    reason="Triton's interpreter multiplies bfloat16 tiles wrongly in tl.dot (a 16×16 product "
                           "comes out 1e10 off); on a GPU this runs")
def test_dual_gemm_in_bfloat16():
    gate, up = (m.to(torch.bfloat16) for m in _linear_pair(64, 96, bias=False))
    x = leaves((40, 64))[0].detach().to(torch.bfloat16)
    with torch.no_grad():
        out = K.gated_linear(x, gate, up, "silu")
        want = F.silu(gate(x).float()) * up(x).float()
    assert out.dtype == torch.bfloat16 and out.shape == (40, 96)
    torch.testing.assert_close(out.float(), want, rtol=2e-2, atol=2e-2)


def test_dual_gemm_refuses_projections_of_two_shapes():
    gate, up = torch.nn.Linear(8, 5), torch.nn.Linear(8, 6)
    with pytest.raises(ValueError, match="one shape"):
        K.gated_linear(torch.zeros(2, 8), gate, up, "silu")


def test_ccp_step_forward_and_backward():
    assert_same(K.ccp_step, lambda u, x: u * x + x, leaves((5, 333), (5, 333)))


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 2, 40, 40)])
def test_film_forward_and_backward(shape):
    B, C = shape[:2]
    assert_same(K.film, lambda x, g, b: g[:, :, None, None] * x + b[:, :, None, None],
                leaves(shape, (B, C), (B, C)), rtol=1e-4, atol=1e-4)


def test_film_refuses_mismatched_modulation():
    x, g = leaves((2, 3, 4, 4), (3, 2))
    with pytest.raises(ValueError, match="γ and β"):
        K.film(x, g, g)


def _heads(t, H):  # (B, N, H·D) → a strided (B, H, N, D) view, as HeadProjections.split makes
    B, N, C = t.shape
    return t.view(B, N, H, C // H).transpose(1, 2)


@pytest.mark.parametrize("B, H, N, D", [(2, 3, 600, 40), (1, 1, 70, 200)])
def test_weighted_pool_reads_strided_views_forward_and_backward(B, H, N, D):
    def fused(a, b, w):
        return K.pool(_heads(a, H), _heads(b, H), w.expand(B, H, N))

    def reference(a, b, w):
        return torch.einsum("hn,bhnd->bhd", w, _heads(a, H) * _heads(b, H))

    assert_same(fused, reference, leaves((B, N, H * D), (B, N, H * D), (H, N)), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("layout", ["heads", "tokens"])
def test_weighted_gate_forward_and_backward(layout):
    B, H, N, D = 2, 3, 300, 40

    def fused(q, w, m):
        return K.gate(_heads(q, H), m, w=w.expand(B, H, N), layout=layout)

    def reference(q, w, m):
        return _heads(q, H) * (w[None, :, :, None] * m[:, :, None, :])

    assert_same(fused, reference, leaves((B, N, H * D), (H, N), (B, H, D)), rtol=1e-4, atol=1e-3)


def test_sigmoid_gate_forward_and_backward():
    assert_same(lambda q, m: K.gate(q, m, activation="sigmoid"),
                lambda q, m: torch.sigmoid(q) * m[:, :, None, :], leaves((2, 1, 300, 200), (2, 1, 200)))


def test_gate_refuses_weights_with_the_sigmoid():
    q, m, w = leaves((1, 1, 4, 4), (1, 1, 4), (1, 1, 4))
    with pytest.raises(ValueError, match="identity"):
        K.gate(q, m, w=w, activation="sigmoid")


@pytest.mark.parametrize("scale", [1.0, 30.0])  # 30: exp would overflow without the running maximum
def test_softmax_pool_forward_and_backward(scale):
    def fused(k, v):
        return K.softmax_pool(k, v)

    def reference(k, v):
        return (k.softmax(dim=2) * v).sum(dim=2)

    k, v = leaves((2, 1, 600, 200), (2, 1, 600, 200))
    with torch.no_grad():
        k.mul_(scale)
    assert_same(fused, reference, [k, v], rtol=1e-4, atol=1e-4)


def test_fm_interaction_forward_and_backward():
    assert_same(K.fm_interaction, lambda s, q: 0.5 * (s * s - q).sum(dim=1), leaves((7, 150), (7, 150)),
                atol=1e-4)


# Each method's whole module, on sizes off the kernels' blocks: the triton forward and every
# gradient (inputs and weights) against the eager forward in float64.
ODD_SIZES = {
    "elementwise": {"n": 3001},
    "gated_ffn": {"tokens": 37, "C": 48},
    "polynomial_layer": {"B": 5, "d": 33, "degree": 3},
    "conditioning": {"B": 2, "C": 5, "H": 9, "dc": 3},
    "pairwise_interactions": {"B": 6, "n": 21, "k": 5},
    "spatial_mixing": {"B": 2, "C": 12, "H": 7},
    "token_mixing": {"B": 2, "N": 300, "C": 40, "H": 2},
}


@pytest.mark.compile_matrix  # each kernel is tested above; the catalogue tests run one Triton method per benchmark
@pytest.mark.parametrize("method", TRITON_METHODS, ids=lambda m: m.id)
def test_every_triton_method_matches_eager_forward_and_backward(method):
    bench = catalogue.benchmarks[method.benchmark]
    size = ODD_SIZES[method.benchmark]
    torch.manual_seed(0)
    module = method.build(size).to(DEVICE)
    reference = method.build(size).to(DEVICE, torch.float64)
    reference.load_state_dict({k: v.to(torch.float64) for k, v in module.state_dict().items()})
    inputs = bench.inputs(size, DEVICE, torch.float32)

    out, grads = run(module.forward_triton, inputs)
    expected, expected_grads = run(reference.forward, [t.to(torch.float64) for t in inputs])
    torch.testing.assert_close(out.double(), expected, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, expected_grads):
        if want is None:  # an input the formula does not read (hadamard's c)
            assert got is None
            continue
        torch.testing.assert_close(got.double(), want, rtol=1e-3, atol=1e-4)

    if not list(module.parameters()):
        return
    # The weights' gradients, through the same upstream gradient.
    for m in (module, reference):
        m.zero_grad(set_to_none=True)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    module.forward_triton(*inputs).backward(grad)
    reference(*(t.to(torch.float64) for t in inputs)).backward(grad.double())
    for (name, p), q in zip(module.named_parameters(), reference.parameters()):
        assert p.grad is not None, f"{method.id}: no gradient for {name}"
        torch.testing.assert_close(p.grad.double(), q.grad, rtol=1e-3, atol=1e-4, msg=lambda m: f"{name}: {m}")
