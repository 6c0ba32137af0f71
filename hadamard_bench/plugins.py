"""Methods and benchmarks from outside the project: plugins.

A plugin is a callable that receives the catalogue and registers into it with the decorators the
built-in modules use (`catalogue.benchmarks[ID].method(...)`, `catalogue.benchmark(...)`). Three
ways to name one, all loaded by `load`:

- an installed package's entry point in the group `hadamard_bench.plugins`;
- `--plugin MODULE[:CALLABLE]` on any verb of the command line;
- `HADAMARD_BENCH_PLUGINS=MODULE[:CALLABLE],...` (the command line adds its --plugin modules here,
  so the worker processes it starts load them too).

CALLABLE defaults to `register`. A plugin that fails to import, raises, or registers an id that
already exists stops the command with a one-line PluginError naming it, before anything is written.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from importlib.metadata import entry_points
from typing import Callable, Iterable

from .errors import BadInput

GROUP = "hadamard_bench.plugins"
ENV_VAR = "HADAMARD_BENCH_PLUGINS"
# The register callables already run in this process, with the catalogue they filled: a plugin
# named twice (installed, and given as --plugin) registers once.
_loaded: set[tuple[int, Callable]] = set()


class PluginError(BadInput):
    """A plugin that cannot be used: one line, naming it."""


def named_in_env() -> list[str]:
    return [p.strip() for p in os.environ.get(ENV_VAR, "").split(",") if p.strip()]


def add_to_env(modules: Iterable[str]) -> None:
    """Name `modules` in HADAMARD_BENCH_PLUGINS, so the processes this one starts load them too."""
    names = named_in_env()
    names += [m for m in modules if m not in names]
    if names:
        os.environ[ENV_VAR] = ",".join(names)


def _from_module(spec: str) -> Callable:
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 -- whatever a plugin raises on import, it is reported in one line
        raise PluginError(f"plugin {spec!r} cannot be imported: {type(exc).__name__}: {exc}") from None
    found = getattr(module, attribute or "register", None)
    if not callable(found):
        raise PluginError(f"plugin {spec!r} has no callable {attribute or 'register'!r} to register its methods")
    return found


def discovered() -> list[tuple[str, Callable[[], Callable]]]:
    """(name, loader) of every installed plugin's entry point and of the modules named in the
    environment: entry points first, each name once."""
    found = [(f"{ep.name} ({ep.value})", ep.load) for ep in entry_points(group=GROUP)]
    found += [(spec, lambda spec=spec: _from_module(spec)) for spec in named_in_env()]
    return found


def _register(catalogue, name: str, register: Callable) -> None:
    before_methods = {(m.benchmark, m.id) for m in catalogue.methods()}
    before_benchmarks = set(catalogue.benchmarks)
    try:
        register(catalogue)
    except Exception as exc:  # noqa: BLE001 -- a duplicate id, a bad declaration, a bug: one line
        raise PluginError(f"plugin {name}: {type(exc).__name__}: {exc}") from None
    for bench_id in set(catalogue.benchmarks) - before_benchmarks:
        catalogue.benchmarks[bench_id].origin = name
    for bench in catalogue.benchmarks.values():
        for method_id, method in list(bench.methods.items()):
            if (bench.id, method_id) not in before_methods:
                bench.methods[method_id] = dataclasses.replace(method, origin=name)


def load(catalogue, modules: Iterable[str] = ()) -> list[str]:
    """Register every discovered plugin, and `modules`, into `catalogue`, each once per process;
    returns the names of those registered now."""
    add_to_env(modules)
    done = []
    for name, loader in discovered():
        try:
            register = loader()
        except PluginError:
            raise
        except Exception as exc:  # noqa: BLE001 -- an entry point whose package fails to import
            raise PluginError(f"plugin {name} cannot be loaded: {type(exc).__name__}: {exc}") from None
        if (id(catalogue), register) in _loaded:
            continue
        _register(catalogue, name, register)
        _loaded.add((id(catalogue), register))
        done.append(name)
    return done


def loaded_catalogue():
    """The built-in catalogue with every plugin registered: what a worker process measures from."""
    from hadamard_impls import catalogue

    load(catalogue)
    return catalogue
