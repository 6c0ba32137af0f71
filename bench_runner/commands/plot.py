"""`plot`: a benchmark's chart, as the Compare page draws it, written to a file (SVG, PNG or a
self-contained HTML page) for a paper or a report, without opening the dashboard."""

from __future__ import annotations

from pathlib import Path

from hadamard_bench.vocabulary import METRICS, counted

from . import UsageError, existing_db
from .flags import db_flag, out_file, out_path

FORMATS = (".svg", ".png", ".html")


def add_parser(verbs) -> None:
    p = verbs.add_parser(
        "plot", help="write a benchmark's chart to an SVG, PNG or HTML file",
        description="Draw one benchmark's methods against a size parameter, as the Compare page does (the "
                    "latest successful result of each cell, or one run's), and write it to FILE: .svg and .png "
                    "are drawn in the system's Chromium, .html is interactive and self-contained. Context flags "
                    "left out take the first value with results (float32 and forward when present).")
    p.add_argument("--benchmark", required=True, metavar="ID")
    p.add_argument("--metric", choices=[m for m in METRICS if m != "speedup"], default="time_median_s")
    p.add_argument("--out", required=True, type=out_file(), metavar="FILE",
                   help="where to write: .svg, .png or .html; missing folders are made")
    p.add_argument("--run", type=int, metavar="RUN", help="only this run's results (default: each cell's latest)")
    p.add_argument("--method", action="append", default=[], metavar="ID", help="only these methods (repeatable)")
    p.add_argument("--backend", action="append", default=[], metavar="NAME", help="only these backends (repeatable)")
    p.add_argument("--machine", metavar="LABEL")
    p.add_argument("--device", metavar="NAME")
    p.add_argument("--dtype", metavar="NAME")
    p.add_argument("--mode", metavar="NAME")
    p.add_argument("--x", metavar="PARAM", help="the size parameter on the x-axis (default: the benchmark's own)")
    p.add_argument("--width", type=int, default=1200, help="image width in pixels (default: 1200)")
    p.add_argument("--height", type=int, default=700, help="image height in pixels (default: 700)")
    db_flag(p)


def _pick(rows, column: str, wanted: str | None, prefer: str | None = None):
    options = sorted(rows[column].dropna().unique())
    if wanted is not None and wanted not in options:
        raise UsageError(f"no results with {column} {wanted!r} (there are: {', '.join(options)})")
    return wanted or (prefer if prefer in options else options[0])


def run(args) -> int:
    from app import charts, shaping
    from results_db import queries

    out = Path(args.out)
    if out.suffix.lower() not in FORMATS:
        raise UsageError(f"--out {args.out!r} must end in {', '.join(FORMATS)}")
    sessions = existing_db(args.db)
    with sessions() as session:
        # Each cell's latest on each machine, from plain runs (as the Compare page draws it), or one run's.
        results = queries.results_frame(session, benchmark=args.benchmark, run_id=args.run, latest=args.run is None)
        catalogue = queries.catalogue_frame(session)
    rows = shaping.add_derived(shaping.latest_ok(results))
    if rows.empty:
        raise UsageError(f"no successful results of {args.benchmark!r}"
                         + (f" in run {args.run}" if args.run else ""))
    context = {}
    for column, wanted, prefer in (("machine", args.machine, None), ("device", args.device, None),
                                   ("dtype", args.dtype, "float32"), ("mode", args.mode, "forward")):
        context[column] = _pick(rows, column, wanted, prefer)
        rows = rows[rows[column] == context[column]]
    for column, wanted in (("method", args.method), ("backend", args.backend)):
        if wanted:
            missing = set(wanted) - set(rows[column])
            if missing:
                raise UsageError(f"no results for {column} {', '.join(sorted(missing))}")
            rows = rows[rows[column].isin(wanted)]
    if args.metric not in rows or rows[args.metric].isna().all():
        raise UsageError(f"these results have no {args.metric} (energy needs `run --energy`)")
    params = shaping.varying_params(rows) or shaping.size_params(rows)
    default_x = catalogue.loc[catalogue["benchmark"] == args.benchmark, "x_param"]
    x = args.x or (default_x.iloc[0] if len(default_x) and default_x.iloc[0] in params else params[0])
    if x not in params:
        raise UsageError(f"--x {x!r} is not a size parameter here ({', '.join(params)})")
    fixed = {p: rows[f"size_{p}"].mode().iloc[0] for p in params if p != x}  # the commonest value of the others
    shown = shaping.hold_fixed(rows, x, fixed)
    label, unit = METRICS[args.metric]
    held = ", ".join(f"{p}={v}" for p, v in fixed.items())
    figure = charts.scaling_chart(shown, f"size_{x}", args.metric, x_title=x, y_title=f"{label} ({unit})",
                                  error="time_iqr_s" if args.metric == "time_median_s" else None)
    figure.update_layout(title=f"{args.benchmark}: {label.lower()} · " + " · ".join(map(str, context.values()))
                         + (f" · {held}" if held else ""))
    out = out_path(args.out)
    if out.suffix.lower() == ".html":
        out.write_text(figure.to_html(include_plotlyjs=True), encoding="utf-8")
    else:
        try:
            out.write_bytes(charts.image(figure, out.suffix.lower()[1:], args.width, args.height))
        except charts.ChartImageError as exc:
            raise UsageError(str(exc)) from None
    print(f"wrote {out} ({counted(len(shown), 'point')}, {counted(shown['method'].nunique(), 'method')})")
    return 0
