"""torch.compile's CPU kernels linked with lld or gold where the machine has one: the g++ script
that does it, where it applies, and a kernel built through it."""

import getpass
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench_runner import linker

FASTER = next((name for name in linker.LINKERS if shutil.which(f"ld.{name}")), None)
needs_one = pytest.mark.skipif(FASTER is None or shutil.which("g++") is None,
                               reason="neither ld.lld nor ld.gold (or no g++) on this machine")


@pytest.fixture(autouse=True)
def own_folders(tmp_path, monkeypatch):
    """A cache folder and a temporary folder (where Inductor's default folder, and so the script, is) of its own."""
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    monkeypatch.delenv("CXX", raising=False)
    linker._wrapper_in.cache_clear()
    yield
    linker._wrapper_in.cache_clear()


def _link_folder(tmp_path):
    return tmp_path / "tmp" / f"torchinductor_{getpass.getuser()}" / "hadamard_bench" / "link"


@needs_one
def test_the_script_is_named_g_plus_plus_and_links_with_the_faster_linker(tmp_path):
    from torch._inductor import cpp_builder

    path = linker.wrapper()
    assert path == _link_folder(tmp_path) / FASTER / "g++"
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
    TORCHINDUCTOR_CACHE_DIR set, and the script sits in the folder of Inductor's precompiled headers."""
    script = """
import os, sys
from pathlib import Path
from bench_runner import linker
ours, name, script = linker.inductor_cache(), linker.name(), linker._folder()
print("torch._dynamo" in sys.modules, "torch._inductor" in sys.modules)
from torch._inductor.runtime.cache_dir_utils import cache_dir
from torch._inductor.codecache import _HEADER_DIR
print(str(ours) == cache_dir(), script.parent.parent == Path(_HEADER_DIR).parent, name)
"""
    for env in ({"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "set")}, {"TMPDIR": str(tmp_path / "tmp")}):
        (tmp_path / "tmp").mkdir(exist_ok=True)
        environ = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"} | env
        done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[2], env=environ,
                              capture_output=True, text=True, timeout=120)
        assert done.stdout.split()[:4] == ["False", "False", "True", "True"], done.stderr
        assert done.stdout.split()[4] in (*linker.LINKERS, "ld")


def test_without_a_linker_that_links_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(linker, "_links", lambda gxx, name: False)
    assert linker.wrapper() is None
    assert not _link_folder(tmp_path).exists()


@needs_one
def test_a_folder_it_cannot_write_to_leaves_g_plus_plus_as_it_is(tmp_path):
    _link_folder(tmp_path).parent.mkdir(parents=True)
    _link_folder(tmp_path).write_text("a file where the folder would be")
    assert linker.wrapper() is None and linker.name() == "ld"


SILU = "lambda a, b: torch.nn.functional.silu(a) * b"
COMPILE = f"""
import torch
from bench_runner import linker

linker.use_faster_linker()
f, a, b = torch.compile({SILU}), torch.randn(1000), torch.randn(1000)
print(torch.allclose(f(a, b), ({SILU})(a, b)))
"""


def _linked_by_the_faster_linker(folder):
    """Every shared library Inductor built in the cache folder carries the faster linker's mark:
    gold leaves a section of its own; lld signs the .comment section."""
    built = list(folder.rglob("*.so"))
    marks = {str(p): subprocess.run(["readelf", "-W", "-S", "-p", ".comment", str(p)], capture_output=True,
                                    text=True).stdout for p in built}
    mark = ".note.gnu.gold-version" if FASTER == "gold" else "Linker: LLD"
    return built and all(mark in text for text in marks.values()), marks


@needs_one
@pytest.mark.slow
def test_kernels_are_linked_by_the_faster_linker_and_a_second_cache_folder_builds_no_header(tmp_path, monkeypatch):
    """A compiled function gives the right answer, and every shared library Inductor built for
    it carries the faster linker's mark. Compiled again in a process with another cache folder,
    it finds the precompiled header the first built: each new folder once built its own (6-7 s of
    g++ and 155 MB on a 2-vCPU VM)."""
    import torch
    import torch._inductor.config
    from torch._inductor import codecache

    # Inductor's precompiled headers in this test's default folder, where a process started with
    # TMPDIR set to it keeps them (Inductor fixed the folder as this process imported it).
    headers = _link_folder(tmp_path).parent.parent / "precompiled_headers"
    monkeypatch.setattr(codecache, "_HEADER_DIR", str(headers))
    monkeypatch.setattr(codecache, "_HEADER_LOCK_DIR", str(headers / "locks"))
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", torch._inductor.config.cpp.cxx)  # put back after
    codecache._precompile_header.cache_clear()
    linker.use_faster_linker()
    torch._dynamo.reset()
    silu = eval(SILU, {"torch": torch})
    f, a, b = torch.compile(silu), torch.randn(1000), torch.randn(1000)
    assert torch.allclose(f(a, b), silu(a, b))
    codecache._precompile_header.cache_clear()  # its paths are this test's
    first = sorted(p.name for p in headers.glob("*.gch"))
    assert first
    linked, marks = _linked_by_the_faster_linker(tmp_path / "inductor")
    assert linked, marks

    done = subprocess.run([sys.executable, "-c", COMPILE], cwd=Path(__file__).resolve().parents[2],
                          env=os.environ | {"TMPDIR": str(tmp_path / "tmp"),
                                            "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "second")},
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.split() == ["True"], done.stderr
    assert sorted(p.name for p in headers.glob("*.gch")) == first
    linked, marks = _linked_by_the_faster_linker(tmp_path / "second")
    assert linked, marks
