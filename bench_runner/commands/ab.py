"""`ab BASE HEAD`: two versions measured in one session, taking turns block by block
(bench_runner.ab), then compared cell by cell as `compare` does, each ratio from the pairs."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from hadamard_bench.vocabulary import counted

from .. import defaults
from . import PROG, UsageError, checked_url, sessions_on, stopped_why
from .flags import (db_flag, fail_on_regression_flag, out_file, out_path, plugin_flag, positive_int, rounds_flag,
                    selected, selection_flags, threshold_flag)

HELP = ("Measure two versions in one session, taking turns block by block: BASE and HEAD are git revisions "
        "of the project (or, with --repo and --plugin, of a plugin's repository), each checked out into a "
        "worktree of its own and imported from there without installing it. Each side runs in a process of "
        "its own, both pinned to the same CPUs; for every cell both time a block in turn, in a random order, "
        "so that whatever the machine does falls on both. Both sides are stored as two runs linked as one "
        "session (`compare`, `gate` and the Diff page pair them; they stay out of the machine's latest "
        "results and its history, being timed in turns on huge pages) and compared as `compare` does: "
        "regression or improvement where the paired interval excludes 1 and the ratio is beyond the "
        "threshold, no change where the whole 90% interval lies within it. `ab HEAD HEAD` is an A/A.")


def add_parser(verbs) -> None:
    p = verbs.add_parser("ab", help="two versions measured in one session, taking turns; then compared",
                         description=HELP)
    p.add_argument("base", metavar="BASE", help="a git revision: the version measured first in the table")
    p.add_argument("head", metavar="HEAD", help="a git revision: the version judged against BASE")
    selection_flags(p, "default: cuda when available, else cpu")
    rounds_flag(p, defaults.AB_ROUNDS)
    p.add_argument("--all-rounds", action="store_true",
                   help="time every cell in every round; by default, from 8 rounds, a cell whose verdict is known "
                        "halfway at stricter levels is not timed again (docs/measurement.md)")
    p.add_argument("--seed", type=positive_int("seed (a whole number)"), help="the session's shuffles (default: fresh)")
    p.add_argument("--repo", metavar="DIR", help="the git repository BASE and HEAD are revisions of (default: this "
                                                 "checkout; with --plugin, the plugin's repository)")
    for side in ("base", "head"):
        p.add_argument(f"--{side}-python", metavar="PATH",
                       help=f"the interpreter of the {side} side (e.g. a venv with another torch; default: this one)")
        p.add_argument(f"--{side}-env", action="append", default=[], metavar="KEY=VALUE",
                       help=f"set this variable in the {side} side's process (repeatable), e.g. OMP_NUM_THREADS=1")
    db_flag(p)
    threshold_flag(p)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.add_argument("--markdown", type=out_file(), metavar="FILE",
                   help="also write the table and its summary to FILE as Markdown")
    fail_on_regression_flag(p, "HEAD")
    p.add_argument("--cell-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="stop a side that has not answered within this long (default: 300)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    plugin_flag(p)


def _env(pairs: list[str], flag: str) -> dict[str, str]:
    out = {}
    for text in pairs:
        key, eq, value = text.partition("=")
        if not eq or not key.strip() or any(c in key for c in " ="):
            raise UsageError(f"{flag} {text!r}: expected KEY=VALUE, e.g. OMP_NUM_THREADS=1")
        out[key.strip()] = value
    return out


def _python(path: str | None, flag: str) -> str:
    if path is None:
        return sys.executable
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        raise UsageError(f"{flag} {path!r} is not an executable interpreter")
    return path


def sides_of(args, worktrees, plugin: str | None) -> list:
    """The two sides the arguments describe, their worktrees made (AbError or UsageError on bad input)."""
    from ..ab import ROOT, Side, resolve

    repo = str(Path(args.repo or ROOT).resolve())
    sides = []
    for name, revision in (("base", args.base), ("head", args.head)):
        commit = resolve(repo, revision)
        path = worktrees.add(name, commit)
        python, env = _python(getattr(args, f"{name}_python"), f"--{name}-python"), _env(
            getattr(args, f"{name}_env"), f"--{name}-env")
        sides.append(Side(name, revision, commit, project=None if plugin else path,
                          plugin_path=path if plugin else None, python=python, env=env))
    return sides


def run(args) -> int:
    from hadamard_bench import plugins
    from hadamard_impls import catalogue
    from results_db import queries

    from .. import ab, comparison, selection, stats, sweep, wording
    from ..executor import InProcess
    from .compare import report, side

    if len(args.plugin) > 1:
        raise UsageError("name one plugin module (--plugin), whose repository --repo is")
    plugin = args.plugin[0] if args.plugin else None
    if plugin and not args.repo:
        raise UsageError("--plugin needs --repo, the plugin's git repository")
    if not args.suite:
        raise UsageError("--suite is required (smoke, quick, full or paper)")
    url = checked_url(args.db)
    try:
        with ab.Worktrees(str(Path(args.repo or ab.ROOT).resolve())) as worktrees:
            sides = sides_of(args, worktrees, plugin)
            if plugin:  # plan the cells with the head's version of the plugin
                from ..side_worker import import_from

                try:
                    import_from(plugin.partition(":")[0], sides[1].plugin_path)
                except Exception as exc:  # noqa: BLE001 -- whatever the plugin raises: one line
                    raise UsageError(f"plugin {plugin!r} cannot be imported from {args.head}: "
                                     f"{type(exc).__name__}: {exc}") from None
                plugins.load(catalogue, [plugin])
            import torch

            sel = selected(args, args.device or (["cuda"] if torch.cuda.is_available() else ["cpu"]))
            cells = selection.plan(catalogue, sel)
            # A side that cannot start is bad input, found before anything is stored; those that
            # can time the first round.
            started = ab.start_sides(sides, args.cell_timeout, os.sched_getaffinity(0), plugin)
            try:
                # A session takes no rounds beyond its own: it stops what its look decides instead (ab.measure).
                policy = dataclasses.replace(defaults.POLICIES[sel.suite], more_rounds=0)
                rounds, seed = args.rounds or defaults.AB_ROUNDS[sel.suite], args.seed or selection.new_seed()
                factory = sessions_on(url)
                look = None if args.all_rounds else ab.look_round(rounds)
                runs = ab.start_runs(factory, catalogue, sel, cells, policy, sides, rounds, seed,
                                     [proc.facts for proc in started], look)
                print(f"ab: runs {runs[0]} ({args.base}) and {runs[1]} ({args.head}), {counted(len(cells), 'cell')} "
                      f"of the {sel.suite} suite, {counted(rounds, 'round')}, taking turns", file=sys.stderr)
                # The devices' ceilings, measured here while the sides wait, once for both: each side's
                # cells then have a roofline fraction, and one timed faster than its device can go (a
                # kernel that skipped its work) is stored `implausible`, as `run` stores it.
                ceilings = sweep.calibrate(factory, runs[0], cells, InProcess(catalogue, policy), shared_with=runs[1:])
                decided = _measure(args, factory, runs, sides, cells, policy, rounds, seed, plugin, started, ceilings,
                                   look)
                if decided:
                    print(f"ab: {counted(len(decided), 'cell')} of {len(cells)} decided after round {look} of {rounds} "
                          f"and timed no further (--all-rounds times every round)", file=sys.stderr)
            finally:
                ab.stop_sides(started)
    except ab.AbError as exc:
        raise UsageError(str(exc)) from None
    with factory() as session:
        before, _, _ = side(session, str(runs[0]))
        after, _, _ = side(session, str(runs[1]))
        base_failed, head_failed = (queries.failures_frame(session, run_id) for run_id in runs)
    changes = comparison.cell_changes(before, after, base_failed, head_failed)
    table = comparison.in_cell_order(comparison.comparison_table(before, after, args.threshold))
    names = f"run {runs[0]} ({args.base})", f"run {runs[1]} ({args.head})"
    if table.empty and not (changes.failed() or len(changes.fixed)):  # at most cells of one side only
        print("\n".join([f"{PROG} ab: no cell ended `ok` on both sides",
                         *(said for _, said in wording.change_notes(changes, *names))]), file=sys.stderr)
        return 1
    looked = (look, rounds) if look else None
    report(table, args.format, *names, args.threshold, changes=changes, look=looked)
    if args.markdown:
        out_path(args.markdown).write_text(markdown(table, changes, *names, args.threshold, looked))
        print(f"wrote {args.markdown}", file=sys.stderr)
    regressed = (len(table) and (table["verdict"] == stats.RUN_WORDS[0]).any()) or changes.failed()
    return 1 if args.fail_on_regression and regressed else 0


def _measure(args, factory, runs, sides, cells, policy, rounds, seed, plugin, started, ceilings, look) -> set:
    from results_db import store
    from tqdm import tqdm

    from .. import ab, worker

    worker.no_semaphore_for_progress_bars()
    with tqdm(total=len(cells) * rounds, unit="cell", disable=args.quiet, dynamic_ncols=True) as bar:
        try:
            decided = ab.measure(factory, runs, sides, cells, policy, rounds, seed, args.cell_timeout, plugin,
                                 on_cell=lambda cell, n: _advance(bar, cell, n), started=started, ceilings=ceilings,
                                 look=look, floor=args.threshold)
        except BaseException as exc:
            stopped = isinstance(exc, KeyboardInterrupt)  # Ctrl-C, or a signal (commands.Stopped)
            with factory() as session, session.begin():
                for run_id in runs:
                    store.finish_run(session, run_id, "interrupted" if stopped else "failed",
                                     stopped_why(exc) if stopped else f"{type(exc).__name__}: {exc}"[:500])
            if stopped:
                print(f"ab: runs {runs[0]} and {runs[1]} interrupted; the cells both sides finished are kept",
                      file=sys.stderr)
            raise
    with factory() as session, session.begin():
        for run_id in runs:
            store.finish_run(session, run_id, "finished")
    return decided


def _advance(bar, cell, rounds: int) -> None:
    """`rounds` of a cell's rounds done, on both sides (more than one: those a cell decided at the
    look will not take): named on the bar as `run` names its cells."""
    bar.set_postfix_str(f"{cell.benchmark}/{cell.method}/{cell.backend}", refresh=False)
    bar.update(rounds)


def markdown(table, changes, before_name: str, after_name: str, threshold: float,
             look: tuple[int, int] | None = None) -> str:
    """The comparison as a Markdown table with its summary, for a pull request's description;
    below it, `changes` (comparison.CellChanges): the cells broken or failed anew on the head side
    (**Failed**), fixed there (**Fixed**), and `ok` on one side with no result on the other (**One
    side only**); `look`, the session's look (wording.look_note)."""
    from .. import wording
    from .compare import summary_lines

    head = f"**{after_name}** against **{before_name}** (paired, threshold {threshold:.0%})\n\n"
    failed = "".join(f"\n**{kind}**: {said}.\n"
                     for kind, said in wording.change_notes(changes, before_name, after_name))
    if table.empty:
        return head + failed.lstrip("\n")
    rows = ["| benchmark | method | backend | size | ratio | 95% interval | verdict |",
            "| --- | --- | --- | --- | --- | --- | --- |"]
    rows += [f"| {r.benchmark} | {r.method} | {r.backend} | {r.size} | {r.ratio:.3f} | "
             f"[{r.ci_low:.3f}, {r.ci_high:.3f}] | {r.verdict} |" for r in table.itertuples()]
    summary = summary_lines(table, {}, None, threshold, look=look)
    return head + "\n".join(rows) + "\n\n" + "\n".join(f"- {line}" for line in summary) + "\n" + failed
