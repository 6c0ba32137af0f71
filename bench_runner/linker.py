"""The linker torch.compile's CPU kernels are built with: lld or gold, where the machine has one.

Inductor builds each CPU kernel as a shared library with g++, linked against libtorch. GNU ld,
g++'s default, reads libtorch_cpu (over 400 MB) for every kernel to find the few symbols it
takes from there: 0.29 s of a kernel's 0.84 s in g++ on a 2-vCPU VM, where gold took 0.09
(docs/notes/2026-12-03-where-a-cold-compile-goes.md). So a process that runs cells has Inductor
call g++ through a two-line script that adds `-fuse-ld=gold` (or lld). The compiled code is
the same: over the 244 kernels of the quick suite's compiled cells, the instructions of every
kernel function matched once addresses were set aside (2026-12-03); only where the linker
places them differs.

Inductor tells gcc from clang by the compiler's name (a path ending in g++ is gcc) and keeps
the compiler's path in its cache keys, so the script is named g++ and stays at one path: every
process of a run, and every later run, finds the code the others built. That path is in
Inductor's default folder (torchinductor_<user> in the temporary folder), whatever cache folder
a run chooses (TORCHINDUCTOR_CACHE_DIR), because Inductor keeps its precompiled headers there,
one per compiler path: a script in each cache folder had each new folder build its own, 6-7 s of
g++ and 155 MB on a 2-vCPU VM. Nothing changes where the user chose a compiler (CXX), where g++
is missing, or where neither linker links a test library.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

LINKERS = ("lld", "gold")  # the faster first


def _script(gxx: str, linker: str) -> str:
    return f'#!/bin/sh\n# Written by Hadamard Bench (bench_runner/linker.py): g++ linking with {linker}.\n' \
           f'exec {shlex.quote(gxx)} -fuse-ld={linker} "$@"\n'


def _links(gxx: str, linker: str) -> bool:
    """Whether g++ builds a shared library with `linker` here."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder, "probe.cpp")
        source.write_text("int probe() { return 1; }\n")
        try:
            done = subprocess.run([gxx, f"-fuse-ld={linker}", "-shared", "-fPIC", str(source), "-o",
                                   str(Path(folder, "probe.so"))], capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode == 0


INDUCTOR_CACHE_RULE = "torch._inductor.runtime.cache_dir_utils"  # Inductor's cache folders, in a module of their own


@functools.cache
def _inductor_cache_rule():
    """Inductor's own module of cache_dir() and default_cache_dir(), loaded from its file where the
    process has not imported Inductor: importing it by name runs torch._inductor's package first,
    which imports Dynamo (1.5 s on a 2-vCPU VM), a price a run of eager cells would pay only to
    name its linker. The module imports nothing of torch's but torch._environment."""
    if INDUCTOR_CACHE_RULE in sys.modules:
        return sys.modules[INDUCTOR_CACHE_RULE]
    import torch

    path = Path(torch.__file__).parent.joinpath(*INDUCTOR_CACHE_RULE.split(".")[1:]).with_suffix(".py")
    spec = importlib.util.spec_from_file_location("hadamard_bench_inductor_cache_rule", path)
    if spec is None or not path.is_file():  # another torch's layout: import it as Inductor does
        return importlib.import_module(INDUCTOR_CACHE_RULE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def inductor_cache() -> Path:
    """Inductor's cache folder (TORCHINDUCTOR_CACHE_DIR, else torchinductor_<user> in the
    temporary folder), made if missing, as Inductor finds it."""
    return Path(_inductor_cache_rule().cache_dir())


def _folder() -> Path:
    """Where the script is written: beside Inductor's precompiled headers, not in the cache folder."""
    return Path(_inductor_cache_rule().default_cache_dir()) / "hadamard_bench" / "link"


def wrapper() -> Path | None:
    """The g++ script that links with the faster linker, in Inductor's default folder, written if
    missing; None where none applies (the user's CXX, no g++, not Linux, no linker that works)."""
    if os.environ.get("CXX") or sys.platform != "linux":
        return None
    return _wrapper_in(_folder())


@functools.cache  # a probe link is a tenth of a second: once per process and folder
def _wrapper_in(folder: Path) -> Path | None:
    gxx = shutil.which("g++")
    if gxx is None:
        return None
    for linker in LINKERS:
        if shutil.which(f"ld.{linker}") is None:
            continue
        path = folder / linker / "g++"
        try:
            if path.read_text() == _script(gxx, linker):
                return path
        except OSError:
            pass
        if _links(gxx, linker):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                # Written whole, then renamed: the processes of a run may write it at once.
                partial = path.with_name(f"g++.{os.getpid()}")
                partial.write_text(_script(gxx, linker))
                partial.chmod(0o755)
                os.replace(partial, path)
            except OSError:  # a cache folder it cannot write to: g++ as it is
                return None
            return path
    return None


def name() -> str:
    """The linker this machine's kernels are linked with (`ld`: g++'s default), as the run's
    provenance and the compile-ahead ledger name it."""
    found = wrapper()
    return found.parent.name if found else "ld"


def use_faster_linker() -> None:
    """Have Inductor build this process's CPU kernels with wrapper(), where there is one."""
    found = wrapper()
    if found is not None:
        import torch._inductor.config

        torch._inductor.config.cpp.cxx = (None, str(found))
