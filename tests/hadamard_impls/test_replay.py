"""The triton backend's CUDA-graph replay: when it captures, when it replays, when it
launches directly and says why. Without a GPU a fake capture stands in for the graph;
the real one is checked on a GPU."""

import pytest
import torch
from torch import nn

from hadamard_impls import BACKENDS, catalogue, replay
from hadamard_impls.replay import GraphReplay


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.full((4,), 2.0))

    def forward(self, x):
        return self.w * x


class FakeCapture:
    """Records captures; its 'replay' counts replays and returns a recognisable output."""

    def __init__(self, fail: Exception | None = None):
        self.captured, self.replays, self.fail = [], 0, fail

    def __call__(self, fn, *args):
        if self.fail:
            raise self.fail
        self.captured.append(args)
        output = fn(*args)

        def replay_():
            self.replays += 1
        return replay_, output


def replayed(module, capture, replayable=lambda args: None):
    return GraphReplay(module.forward, module, capture=capture, replayable=replayable)


def test_one_capture_per_set_of_inputs_then_replays():
    module, capture = Scale(), FakeCapture()
    fn = replayed(module, capture)
    x = torch.ones(4)
    first = fn(x)
    assert fn.launch == replay.GRAPH
    assert fn(x) is first and fn(x) is first  # the captured output, rewritten by each replay
    assert len(capture.captured) == 1 and capture.replays == 3
    y = torch.ones(4)  # another tensor at another address: its own graph
    fn(y)
    assert len(capture.captured) == 2


def test_a_moved_parameter_means_a_new_capture():
    module, capture = Scale(), FakeCapture()
    fn, x = replayed(module, capture), torch.ones(4)
    fn(x)
    module.w.data = torch.full((4,), 3.0)  # what module.to() does to a parameter: new storage
    assert torch.equal(fn(x), torch.full((4,), 3.0))
    assert len(capture.captured) == 2


def test_graphs_kept_are_bounded():
    capture = FakeCapture()
    fn = replayed(Scale(), capture)
    inputs = [torch.ones(4) for _ in range(replay.KEEP + 3)]
    for x in inputs:
        fn(x)
    assert len(fn._graphs) <= replay.KEEP


def test_a_failed_capture_launches_directly_for_good_and_says_why():
    capture = FakeCapture(fail=RuntimeError("operation not permitted when stream is capturing\nmore"))
    fn, x = replayed(Scale(), capture), torch.ones(4)
    assert torch.equal(fn(x), torch.full((4,), 2.0))
    assert fn.launch == "direct: capture failed: RuntimeError: operation not permitted when stream is capturing"
    capture.fail = None
    fn(x)
    assert capture.captured == []  # not tried again for the same inputs


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU's reason")
def test_off_a_gpu_and_with_gradients_calls_run_directly():
    module, capture = Scale(), FakeCapture()
    fn = GraphReplay(module.forward, module, capture=capture)
    x = torch.ones(4)
    with torch.no_grad():
        assert torch.equal(fn(x), torch.full((4,), 2.0))
    assert fn.launch == "direct: not on a CUDA device"
    out = fn(x)
    assert fn.launch == "direct: gradients are being recorded" and out.requires_grad
    assert capture.captured == []


def test_the_triton_backend_replays_the_methods_triton_forward():
    method = next(m for m in catalogue.methods() if "triton" in m.backends)
    module = method.build({"n": 8} if method.benchmark == "elementwise" else
                          {p: 4 for p in catalogue.benchmarks[method.benchmark].params})
    fn = BACKENDS["triton"].prepare(module)
    assert isinstance(fn, GraphReplay) and fn.direct == module.forward_triton


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_real_graph_replays_the_call_on_new_input_values():
    module = Scale().cuda()
    fn = GraphReplay(module.forward, module)
    x = torch.ones(4, device="cuda")
    with torch.no_grad():
        fn(x)
        assert fn.launch == replay.GRAPH
        x.fill_(5.0)  # same tensor, new values: the graph reads them where they are
        assert torch.equal(fn(x), torch.full((4,), 10.0, device="cuda"))
