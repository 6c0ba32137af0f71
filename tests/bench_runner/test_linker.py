"""torch.compile's CPU kernels linked with lld or gold where the machine has one: the g++ script
that does it, where it applies, and a kernel built through it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench_runner import linker

FASTER = next((name for name in linker.LINKERS if shutil.which(f"ld.{name}")), None)
needs_one = pytest.mark.skipif(FASTER is None or shutil.which("g++") is None,
                               reason="neither ld.lld nor ld.gold (or no g++) on this machine")


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    monkeypatch.delenv("CXX", raising=False)
    linker._wrapper_in.cache_clear()
    yield
    linker._wrapper_in.cache_clear()


@needs_one
def test_the_script_is_named_g_plus_plus_and_links_with_the_faster_linker(tmp_path):
    from torch._inductor import cpp_builder

    path = linker.wrapper()
    assert path == tmp_path / "inductor" / "hadamard_bench" / "link" / FASTER / "g++"
    assert os.access(path, os.X_OK)
    # Inductor tells gcc from clang by the name: a script it took for another compiler would
    # get another compiler's flags.
    assert cpp_builder._is_gcc(str(path)) and not cpp_builder._is_clang(str(path))
    assert f"-fuse-ld={FASTER}" in path.read_text()
    assert linker.name() == FASTER
    # It compiles and links as g++ does.
    source = tmp_path / "one.cpp"
    source.write_text("int one() { return 1; }\n")
    done = subprocess.run([str(path), "-shared", "-fPIC", str(source), "-o", str(tmp_path / "one.so")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@needs_one
def test_a_later_process_reuses_the_script_without_probing_again(monkeypatch):
    first = linker.wrapper()
    linker._wrapper_in.cache_clear()
    monkeypatch.setattr(linker, "_links", lambda gxx, name: pytest.fail("probed again"))
    assert linker.wrapper() == first


def test_the_users_compiler_is_left_alone(monkeypatch):
    import torch._inductor.config

    monkeypatch.setenv("CXX", "clang++")
    before = torch._inductor.config.cpp.cxx
    assert linker.wrapper() is None and linker.name() == "ld"
    linker.use_faster_linker()
    assert torch._inductor.config.cpp.cxx == before


def test_the_cache_folder_is_inductors_own_and_naming_the_linker_imports_neither_dynamo_nor_inductor(tmp_path):
    """Every run names its linker; a run of eager cells once imported Inductor (and Dynamo with
    it, 1.5 s) for that alone. Both ways of finding the folder agree, with and without
    TORCHINDUCTOR_CACHE_DIR set."""
    script = """
import os, sys
from bench_runner import linker
ours, name = linker.inductor_cache(), linker.name()
print("torch._dynamo" in sys.modules, "torch._inductor" in sys.modules)
from torch._inductor.runtime.cache_dir_utils import cache_dir
print(str(ours) == cache_dir(), name)
"""
    for env in ({"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "set")}, {"TMPDIR": str(tmp_path / "tmp")}):
        (tmp_path / "tmp").mkdir(exist_ok=True)
        environ = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"} | env
        done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], env=environ,
                              capture_output=True, text=True, timeout=120)
        assert done.stdout.split()[:3] == ["False", "False", "True"], done.stderr
        assert done.stdout.split()[3] in (*linker.LINKERS, "ld")


def test_without_a_linker_that_links_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(linker, "_links", lambda gxx, name: False)
    assert linker.wrapper() is None
    assert not (tmp_path / "inductor" / "hadamard_bench" / "link").exists()


@needs_one
def test_a_cache_folder_it_cannot_write_to_leaves_g_plus_plus_as_it_is(tmp_path):
    (tmp_path / "inductor" / "hadamard_bench").mkdir(parents=True)
    (tmp_path / "inductor" / "hadamard_bench" / "link").write_text("a file where the folder would be")
    assert linker.wrapper() is None and linker.name() == "ld"


@needs_one
@pytest.mark.slow
def test_a_compiled_kernel_is_linked_by_the_faster_linker(tmp_path, monkeypatch):
    """A compiled function gives the right answer, and every shared library Inductor built for
    it carries the faster linker's mark."""
    import torch
    import torch._inductor.config

    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", torch._inductor.config.cpp.cxx)  # put back after
    linker.use_faster_linker()
    torch._dynamo.reset()
    f = torch.compile(lambda a, b: torch.nn.functional.silu(a) * b)
    a, b = torch.randn(1000), torch.randn(1000)
    assert torch.allclose(f(a, b), torch.nn.functional.silu(a) * b)
    built = [p for p in (tmp_path / "inductor").rglob("*.so") if "precompiled" not in str(p)]
    assert built
    # gold leaves a section of its own; lld signs the .comment section.
    marks = {str(p): subprocess.run(["readelf", "-W", "-S", "-p", ".comment", str(p)], capture_output=True,
                                    text=True).stdout for p in built}
    mark = ".note.gnu.gold-version" if FASTER == "gold" else "Linker: LLD"
    assert all(mark in text for text in marks.values()), marks
