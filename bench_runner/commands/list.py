"""`list`: the catalogue, every benchmark with its methods and backends; `--format markdown`
writes the catalogue's documentation page (docs/catalogue.md is its output)."""

from __future__ import annotations

import json
import sys

from .flags import catalogue_with_plugins, plugin_flag


def add_parser(verbs) -> None:
    p = verbs.add_parser("list", help="show the catalogue: benchmarks, methods, backends",
                         description="Show the catalogue: every benchmark with its methods. --format markdown "
                                     "writes the catalogue's documentation page (docs/catalogue.md is its output).")
    p.add_argument("--format", choices=["table", "json", "markdown"], default="table")
    plugin_flag(p)


def run(args) -> int:
    from ..selection import catalogue_rows

    catalogue = catalogue_with_plugins(args)
    if args.format == "json":
        benchmarks, methods = catalogue_rows(catalogue)
        print(json.dumps({"benchmarks": benchmarks, "methods": methods}, indent=2))
        return 0
    if args.format == "markdown":
        from ..catalogue_doc import document

        sys.stdout.write(document(catalogue))
        return 0
    width = max(len(m.id) for m in catalogue.methods())
    for bench in catalogue.benchmarks.values():
        origin = f"  (from plugin {bench.origin})" if bench.origin else ""
        print(f"{bench.id}  [{bench.domain}]  {bench.contract}  sizes: {', '.join(bench.params)}{origin}")
        for m in bench.methods.values():
            origin = f"  (from plugin {m.origin})" if m.origin and m.origin != bench.origin else ""
            print(f"  {m.id:<{width}}  {m.role:<9}  {','.join(m.backends):<22}  {m.summary}{origin}")
    return 0
