"""What a run measures: a selection (suite, benchmarks, methods, backends, sizes, devices,
dtypes, modes) planned against the catalogue into cells, and each round's shuffled order."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Sequence

from hadamard_bench import vocabulary
from hadamard_bench.errors import BadInput
from hadamard_impls import BACKENDS, SUITES, Catalogue

from .cell import DTYPES, MODES, Cell


class SelectionError(BadInput):
    """A selection that names something the catalogue does not have."""


@dataclass(frozen=True)
class Selection:
    suite: str
    benchmarks: Sequence[str] = ()
    methods: Sequence[str] = ()
    backends: Sequence[str] = ()
    devices: Sequence[str] = ("cpu",)
    dtypes: Sequence[str] = ("float32",)
    modes: Sequence[str] = ("forward",)
    sizes: Sequence[str] = ()  # "n=67108864" or "N=4096,C=512": only the sizes that match one of them

    def as_options(self) -> dict:
        return {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_options(cls, options: dict) -> "Selection":
        """The selection a run stored (as_options), ignoring what is not a selection (a queue target)."""
        return cls(**{k: v for k, v in options.items() if k in cls.__dataclass_fields__})


def _unknown(kind: str, given: Sequence[str], known: Sequence[str]) -> None:
    bad = [g for g in given if g not in known]
    if bad:
        raise SelectionError(f"unknown {kind} {', '.join(map(repr, bad))} (known: {', '.join(known)})")


def plan(catalogue: Catalogue, sel: Selection) -> list[Cell]:
    """Every cell the selection asks for, in run order; raises SelectionError on bad names."""
    _unknown("suite", [sel.suite], SUITES)
    _unknown("benchmark", sel.benchmarks, list(catalogue.benchmarks))
    _unknown("method", sel.methods, sorted({m.id for m in catalogue.methods()}))
    _unknown("backend", sel.backends, list(BACKENDS))
    _unknown("device", sel.devices, vocabulary.DEVICES)
    _unknown("dtype", sel.dtypes, list(DTYPES))
    _unknown("mode", sel.modes, list(MODES))

    wanted = [_size_filter(text) for text in sel.sizes]
    if wanted:
        params = {p for b in catalogue.benchmarks.values() if not sel.benchmarks or b.id in sel.benchmarks
                  for p in b.params}
        _unknown("size parameter", sorted({k for w in wanted for k in w}), sorted(params))

    cells = []
    for bench in catalogue.benchmarks.values():
        if sel.benchmarks and bench.id not in sel.benchmarks:
            continue
        for method in bench.methods.values():
            if sel.methods and method.id not in sel.methods:
                continue
            for backend in method.backends:
                if sel.backends and backend not in sel.backends:
                    continue
                sizes = [s for s in bench.sizes(sel.suite)
                         if not wanted or any(w.items() <= s.items() for w in wanted)]
                for size, device, dtype, mode in itertools.product(sizes, sel.devices, sel.dtypes, sel.modes):
                    cells.append(Cell(bench.id, method.id, backend, tuple(size.items()),
                                      device, dtype, mode))
    if not cells and sel.suite == "paper":
        raise SelectionError("the paper suite holds only "
                             + ", ".join(b.id for b in catalogue.benchmarks.values() if b.sizes("paper")))
    if not cells:
        raise SelectionError("the selection matches no cell: check that the methods belong to the "
                             "benchmarks, offer the backends and have the sizes given "
                             "(see `python -m bench_runner list`)")
    return cells


def _size_filter(text: str) -> dict[str, int]:
    """`N=4096,C=512` → {"N": 4096, "C": 512}."""
    out = {}
    for part in text.split(","):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip().isdigit():
            raise SelectionError(f"size filter {text!r} is not of the form NAME=INT[,NAME=INT...]")
        out[key.strip()] = int(value)
    return out


def catalogue_rows(catalogue: Catalogue) -> tuple[list[dict], list[dict]]:
    benchmarks = [dict(id=b.id, domain=b.domain, title=b.title, contract=b.contract,
                       params=list(b.params), x_param=b.x_param) for b in catalogue.benchmarks.values()]
    methods = [dict(benchmark=m.benchmark, id=m.id, role=m.role, summary=m.summary, latex=m.latex,
                    exponents=dict(m.exponents), backends=list(m.backends), cudnn=list(m.cudnn),
                    against=catalogue.benchmarks[m.benchmark].compared_with(m)) for m in catalogue.methods()]
    return benchmarks, methods


def new_seed() -> int:
    return random.SystemRandom().randrange(1, 2**31)


def round_order(cells: Sequence[Cell], seed: int, round_index: int) -> list[Cell]:
    """The cells in round `round_index`'s order: shuffled reproducibly from (seed, round), with
    the methods and backends of one benchmark, size, device, dtype and mode kept next to each
    other, so that whatever the machine does drifts over a method and its baseline alike."""
    rng = random.Random(f"{seed}:{round_index}")
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.group(), []).append(cell)
    keys = list(groups)
    rng.shuffle(keys)
    order = []
    for key in keys:
        group = list(groups[key])
        rng.shuffle(group)
        order += group
    return order
