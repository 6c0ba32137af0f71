"""Recurrent cells: gates as Hadamard products over time (catalogue section 3).

The LSTM and GRU gate their state with element-wise products; the plain tanh RNN
has no gate. The `library` backend runs PyTorch's fused nn.LSTM / nn.GRU / nn.RNN
on the very same weights.
"""

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import catalogue

recurrent_cell = catalogue.benchmark(
    "recurrent_cell",
    domain="modulation",
    title="Recurrent cells: gated (LSTM, GRU) against an ungated tanh RNN",
    contract="x (B, T, d) → h (B, T, d)",
    params=("B", "T", "d"),
    sweeps={
        "smoke": [{"B": 2, "T": 4, "d": 8}],
        "quick": [{"B": 32, "T": t, "d": 128} for t in (16, 64, 256)],
        "full": [{"B": 64, "T": t, "d": 512} for t in (64, 256, 1024)],
    },
    make_inputs=lambda s, g: (torch.randn(s["B"], s["T"], s["d"], generator=g),),
    x_param="T",
)


class Recurrence(nn.Module):
    """A recurrence over time; subclasses give the library module and one step."""

    def __init__(self, library: nn.Module):
        super().__init__()
        self.lib = library  # holds the weights the hand-written step uses too

    def gates(self, x, h):  # the input and hidden projections of one step, with their biases
        lib = self.lib
        return F.linear(x, lib.weight_ih_l0, lib.bias_ih_l0), F.linear(h, lib.weight_hh_l0, lib.bias_hh_l0)

    def scan(self, x, step):  # (B, T, d)
        state = self.initial(x)
        outputs = []
        for t in range(x.shape[1]):
            state = step(x[:, t], *state)
            outputs.append(state[0])
        return torch.stack(outputs, dim=1)

    def initial(self, x):
        return (x.new_zeros(x.shape[0], x.shape[2]),)

    def forward(self, x):
        return self.scan(x, self.step)

    def compiled(self):
        return functools.partial(self.scan, step=torch.compile(self.step))

    def forward_library(self, x):
        return self.lib(x)[0]


class LSTM(Recurrence):
    def __init__(self, d: int):
        super().__init__(nn.LSTM(d, d, batch_first=True))

    def initial(self, x):
        zeros = x.new_zeros(x.shape[0], x.shape[2])
        return zeros, zeros

    def step(self, x, h, c):  # (B, d) each
        gi, gh = self.gates(x, h)
        i, f, g, o = (gi + gh).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)  # forget and input gates
        return torch.sigmoid(o) * torch.tanh(c), c  # output gate


class GRU(Recurrence):
    def __init__(self, d: int):
        super().__init__(nn.GRU(d, d, batch_first=True))

    def step(self, x, h):  # (B, d) each
        gi, gh = self.gates(x, h)
        (i_r, i_z, i_n), (h_r, h_z, h_n) = gi.chunk(3, dim=1), gh.chunk(3, dim=1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)  # the reset gate scales the hidden contribution
        return ((1 - z) * n + z * h,)  # the update gate interpolates


class RNNTanh(Recurrence):
    def __init__(self, d: int):
        super().__init__(nn.RNN(d, d, batch_first=True, nonlinearity="tanh"))

    def step(self, x, h):  # (B, d) each
        gi, gh = self.gates(x, h)
        return (torch.tanh(gi + gh),)


def _flops(per_step):
    return lambda s: s["T"] * per_step(s["B"], s["d"])


def _bytes(gates: int):
    return lambda s, item: (2 * s["B"] * s["T"] * s["d"] + gates * 2 * (s["d"] + 1) * s["d"]) * item


_LIBRARY = ("eager", "compile", "library")
_EXPONENTS = {"B": 1, "T": 1, "d": 2}


@recurrent_cell.method(
    "lstm", role="hadamard", cudnn=("library",), backends=_LIBRARY, exponents=_EXPONENTS, bytes=_bytes(4),
    latex=r"c_t = f_t \odot c_{t-1} + i_t \odot g_t,\quad h_t = o_t \odot \tanh(c_t)",
    # two biased 4d-wide products, their sum, three sigmoids and two tanh, three ⊙ and one +.
    flops=_flops(lambda B, d: 16 * B * d * d + 8 * B * d + 4 * B * d + 5 * B * d + 4 * B * d),
)
def lstm(size):
    """cₜ = fₜ * cₜ₋₁ + iₜ * gₜ; hₜ = oₜ * tanh(cₜ): LSTM, Hochreiter & Schmidhuber 1997 (library: nn.LSTM)."""
    return LSTM(size["d"])


@recurrent_cell.method(
    "gru", role="hadamard", cudnn=("library",), backends=_LIBRARY, exponents=_EXPONENTS, bytes=_bytes(3),
    latex=r"h_t = (1 - z_t) \odot n_t + z_t \odot h_{t-1},\quad n_t = \tanh(W_n x_t + r_t \odot U_n h_{t-1})",
    # two biased 3d-wide products; per element: two sums and sigmoids, r⊙, +, tanh, 1 − z, two ⊙, +.
    flops=_flops(lambda B, d: 12 * B * d * d + 6 * B * d + 11 * B * d),
)
def gru(size):
    """hₜ = (1 − zₜ) * nₜ + zₜ * hₜ₋₁: GRU, Cho et al. 2014 (library: nn.GRU)."""
    return GRU(size["d"])


@recurrent_cell.method(
    "rnn_tanh", role="baseline", cudnn=("library",), backends=_LIBRARY, exponents=_EXPONENTS, bytes=_bytes(1),
    latex=r"h_t = \tanh(W x_t + U h_{t-1})",
    flops=_flops(lambda B, d: 4 * B * d * d + 2 * B * d + 2 * B * d),
)
def rnn_tanh(size):
    """hₜ = tanh(Wxₜ + Uhₜ₋₁): the ungated Elman RNN (library: nn.RNN)."""
    return RNNTanh(size["d"])
