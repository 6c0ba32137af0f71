"""The exactness checks of the gating, masking and efficient-operator methods (recurrent cells,
masked and long convolutions, pruning, low-rank updates, dropout, branch merges, SE gates)."""

import pytest
import torch

from hadamard_impls import catalogue
from hadamard_impls.efficient.elementwise import DROP
from tests.hadamard_impls.test_checks import build, inputs


@pytest.mark.parametrize("method, reference", [("lstm", torch.nn.LSTMCell), ("gru", torch.nn.GRUCell),
                                               ("rnn_tanh", torch.nn.RNNCell)])
def test_the_hand_written_cell_equals_pytorchs_cell_with_copied_weights(method, reference):
    size = {"B": 3, "T": 5, "d": 6}
    module = build("recurrent_cell", method, size)
    cell = reference(6, 6).double()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(module.lib, f"{name}_l0"))
    (x,) = inputs("recurrent_cell", size)
    h = torch.zeros(3, 6, dtype=torch.float64)
    state = (h, h.clone()) if method == "lstm" else h
    expected = []
    with torch.no_grad():
        for t in range(5):
            state = cell(x[:, t], state)
            expected.append(state[0] if method == "lstm" else state)
        torch.testing.assert_close(module(x), torch.stack(expected, dim=1))
        torch.testing.assert_close(module.forward_library(x), torch.stack(expected, dim=1))


def test_partial_conv_with_an_all_ones_mask_equals_conv():
    size = {"B": 2, "C": 3, "H": 7}
    x, _ = inputs("masked_conv", size)
    ones = torch.ones(2, 1, 7, 7, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(build("masked_conv", "partial_conv", size)(x, ones),
                                   build("masked_conv", "conv", size)(x, ones))


def test_partial_conv_ignores_what_is_under_the_hole():
    size = {"B": 1, "C": 2, "H": 6}
    module = build("masked_conv", "partial_conv", size)
    x, mask = inputs("masked_conv", size)
    assert (mask == 0).any()
    scribbled = x + 100 * (1 - mask)  # change only the pixels in the holes
    with torch.no_grad():
        torch.testing.assert_close(module(x, mask), module(scribbled, mask))


@pytest.mark.parametrize("sparsity", [50, 90, 99])
def test_masked_dense_equals_sparse_csr(sparsity):
    size = {"B": 4, "n": 64, "sparsity": sparsity}
    (x,) = inputs("pruned_linear", size)
    masked, sparse = build("pruned_linear", "masked_weight", size), build("pruned_linear", "sparse_csr", size)
    with torch.no_grad():
        torch.testing.assert_close(masked(x), sparse(x))
    density = masked.extra_metrics(x)["density"]
    assert density == pytest.approx(1 - sparsity / 100, abs=1 / 64)
    assert sparse.pruned.values().numel() == round(density * 64 * 64)


@pytest.mark.parametrize("N", [1, 7, 32, 100])
def test_fft_conv_equals_direct_conv(N):
    size = {"B": 2, "C": 3, "N": N}
    (x,) = inputs("long_conv", size)
    with torch.no_grad():
        torch.testing.assert_close(build("long_conv", "fft_conv", size)(x), build("long_conv", "direct_conv", size)(x))


def test_direct_conv_is_the_causal_convolution():
    size = {"B": 1, "C": 1, "N": 5}
    module = build("long_conv", "direct_conv", size)
    (x,) = inputs("long_conv", size)
    h, xs = module.kernel[0], x[0, 0]
    expected = torch.stack([sum(h[s] * xs[t - s] for s in range(t + 1)) for t in range(5)])
    with torch.no_grad():
        torch.testing.assert_close(module(x)[0, 0], expected)


@pytest.mark.parametrize("m, r", [(64, 4), (64, 6), (32, 8), (16, 8)])
def test_loha_reaches_rank_r_squared_while_lora_stays_at_2r(m, r):
    size = {"B": 2, "m": m, "r": r}
    (x,) = inputs("low_rank_update", size)
    loha, lora = build("low_rank_update", "loha", size), build("low_rank_update", "lora", size)
    params = {k: sum(p.numel() for p in mod.parameters()) for k, mod in (("loha", loha), ("lora", lora))}
    assert params["loha"] == params["lora"] == 4 * m * r
    assert loha.extra_metrics(x)["rank"] == min(r * r, m)
    assert lora.extra_metrics(x)["rank"] == min(2 * r, m)
    assert torch.linalg.matrix_rank(loha.delta().detach()) == min(r * r, m)  # the sketch agrees with a full SVD


def test_dropout_mask_keeps_the_expected_mean():
    torch.manual_seed(0)
    n = 1 << 16
    module = build("elementwise", "dropout_mask", {"n": n})
    ones = torch.ones(n, dtype=torch.float64)
    y = module(ones, ones, ones)
    assert set(torch.unique(y).tolist()) == {0.0, 1 / (1 - DROP)}
    sigma = (DROP * (1 - DROP) / n) ** 0.5 / (1 - DROP)  # standard error of the mean
    assert abs(y.mean().item() - 1.0) < 5 * sigma


def test_the_dropout_check_catches_a_wrong_scale():
    from hadamard_impls.efficient.elementwise import dropout_check

    a = torch.ones(1000)
    with pytest.raises(AssertionError):
        dropout_check((a, a, a), a)  # nothing dropped, nothing rescaled


def test_star_and_branch_sum_share_their_branches():
    size = {"tokens": 5, "C": 4, "h": 6}
    (x,) = inputs("branch_merge", size)
    star, total = build("branch_merge", "star", size), build("branch_merge", "branch_sum", size)
    with torch.no_grad():
        a, b = star.W1(x), star.W2(x)
        torch.testing.assert_close(star(x), a * b)
        torch.testing.assert_close(total(x), a + b)


def test_the_se_gate_only_rescales_channels():
    size = {"B": 2, "C": 16, "H": 5}
    (x,) = inputs("channel_gating", size)
    se, block = build("channel_gating", "squeeze_excitation", size), build("channel_gating", "conv_block", size)
    with torch.no_grad():
        ratio = se(x) / block(x)  # (B, C, H, W): one gate value per channel, in (0, 1)
    torch.testing.assert_close(ratio, ratio[:, :, :1, :1].expand_as(ratio))
    assert ((ratio > 0) & (ratio < 1)).all()


def test_every_catalogue_method_has_a_check_here_or_in_part_one():
    assert len(catalogue.methods()) >= 55
