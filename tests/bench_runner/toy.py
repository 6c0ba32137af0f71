"""A small catalogue built to fail in every way a cell can, for the runner's tests.

`toy` fails politely (exceptions, allocation failures, wrong results); `toy_crash`
kills or hangs its process and must only ever run in a worker.
"""

import os
import signal
import time

import torch
from torch import nn

from bench_runner.defaults import TimingPolicy
from hadamard_impls import Catalogue

FAST = TimingPolicy(warmup_s=0.0, min_block_s=0.0, budget_s=0.0, min_samples=2)


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, a):
        return a * self.factor


class Raises(nn.Module):
    def forward(self, a):
        raise ValueError("this method is broken on purpose")


class Exhausts(nn.Module):
    def forward(self, a):
        return torch.empty(1 << 60, dtype=torch.uint8)  # an exabyte: no allocator can give it


class Drifts(nn.Module):
    """Differs from its own float64 reference only in low precision: the check must catch it."""

    def forward(self, a):
        return a + (1.0 if a.dtype != torch.float64 else 0.0)


class Segfaults(nn.Module):
    def forward(self, a):
        os.kill(os.getpid(), signal.SIGSEGV)


class Hangs(nn.Module):
    """Sleeps; at n = 16 (no sweep's size) deaf to SIGINT too, as a process in a native call is,
    and says so by creating the file $TOY_DEAF_MARK names."""

    def forward(self, a):
        if a.numel() == 16:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            if os.environ.get("TOY_DEAF_MARK"):
                open(os.environ["TOY_DEAF_MARK"], "w").close()
        time.sleep(3600)


class Killed(nn.Module):
    """What the kernel's out-of-memory killer does to a process."""

    def forward(self, a):
        os.kill(os.getpid(), signal.SIGKILL)


# What every toy method declares but its module and role.
TOY_METHOD = dict(latex="y", flops=lambda s: s["n"], bytes=lambda s, i: 2 * s["n"] * i, exponents={"n": 1},
                  backends=("eager",))


def toy_catalogue() -> Catalogue:
    cat = Catalogue()
    bench = cat.benchmark("toy", domain="efficient", title="toy", contract="a (n,) → (n,)", params=("n",),
                          sweeps={s: [{"n": 8}, {"n": 16}] for s in ("smoke", "quick", "full")},
                          make_inputs=lambda s, g: (torch.randn(s["n"], generator=g),))
    _add(bench, [("double", lambda: Scale(2.0), "hadamard"), ("raises", Raises, "baseline"),
                 ("exhausts", Exhausts, "baseline"), ("drifts", Drifts, "baseline")])
    crash = cat.benchmark("toy_crash", domain="efficient", title="toy that crashes", contract="a (n,) → (n,)",
                          params=("n",), sweeps={s: [{"n": 8}] for s in ("smoke", "quick", "full")},
                          make_inputs=lambda s, g: (torch.randn(s["n"], generator=g),))
    _add(crash, [("double", lambda: Scale(2.0), "hadamard"), ("segfaults", Segfaults, "baseline"),
                 ("hangs", Hangs, "baseline"), ("killed", Killed, "baseline")])
    return cat


def _add(bench, methods) -> None:
    for name, module, role in methods:
        def build(size, module=module):
            """A toy method for the runner's tests."""
            return module()
        bench.method(name, role=role, **TOY_METHOD)(build)


