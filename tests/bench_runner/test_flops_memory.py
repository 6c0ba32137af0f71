import pytest
import torch

from bench_runner.flops import count_flops
from bench_runner.memory import profile_call


def test_a_hadamard_product_of_n_elements_counts_n_flops():
    a, b = torch.randn(1000), torch.randn(1000)
    assert count_flops(lambda: a * b) == 1000


def test_matrix_products_count_2mkn():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_flops(lambda: a @ b) == 2 * 8 * 16 * 4


def test_copies_do_no_arithmetic():
    a = torch.randn(100, 100)
    assert count_flops(lambda: a.t().contiguous()) == 0


def test_softmax_counts_five_per_element():
    a = torch.randn(10, 20)
    assert count_flops(lambda: a.softmax(-1)) == 5 * 200


def _cpu_peak_of(call) -> int | None:
    return profile_call(call, torch.device("cpu")).peak_bytes


def test_cpu_peak_memory_sees_tensor_allocations():
    a = torch.randn(1 << 18)
    # (a * 2) and its sine are both alive at the peak: two 1 MiB float32 buffers.
    peak = _cpu_peak_of(lambda: (a * 2).sin())
    assert peak == pytest.approx(2 * 4 * (1 << 18), rel=0.01)
    assert _cpu_peak_of(lambda: None) == 0


def test_freeing_older_tensors_does_not_hide_the_calls_own_peak():
    old = [torch.randn(1 << 18) for _ in range(2)]  # one for each profiled call

    def call():
        old.pop()  # frees a 1 MiB block allocated before the measurement
        return torch.randn(1 << 18) * 2  # then allocates two of its own

    peak = _cpu_peak_of(call)
    assert peak == pytest.approx(2 * 4 * (1 << 18), rel=0.01)


@pytest.mark.parametrize("script, expected, profiles", [
    ([4096], 4096, 1),  # a peak on the first record: one profile is enough
    ([0, 4096], 4096, 2),  # an empty record (the profiler's occasional blank): profiled again
    ([0, 0], 0, 2),  # a call that allocates nothing reads 0 twice
    ([0, None], None, 2),  # a profiler that cannot tell
])
def test_the_call_is_profiled_again_only_when_the_first_record_is_empty(monkeypatch, script, expected, profiles):
    from bench_runner import memory

    readings = iter(script)
    taken = []
    monkeypatch.setattr(memory, "_cpu_peak", lambda prof: taken.append(prof) or next(readings))
    assert _cpu_peak_of(lambda: None) == expected
    assert len(taken) == profiles


def test_one_profile_gives_a_calls_peak_and_the_kernels_its_dispatchers_chose(monkeypatch):
    from bench_runner import kernels, memory

    q = k = v = torch.randn(1, 2, 64, 16)
    profiles = []
    profiled = memory.profiled
    monkeypatch.setattr(memory, "profiled", lambda fn, **options: profiles.append(options) or profiled(fn, **options))
    call = memory.profile_call(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v),
                               torch.device("cpu"))
    assert profiles == [{"profile_memory": True}]
    assert kernels.chosen(call.ops) == ["sdpa: flash (CPU)"]
    assert call.peak_bytes >= q.numel() * 4  # at least the output
    assert kernels.chosen(memory.profile_call(lambda: q * k, torch.device("cpu")).ops) == []
