"""Generated sections of the docs pages: a benchmark script rewrites only the text between
its two markers, so the prose around a table stays hand-written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}: start -->", f"<!-- {name}: end -->"


def write_section(doc: Path, name: str, body: str, heading: str = "") -> None:
    """Put `body` between `name`'s markers in `doc`, appending the section (after `heading`)
    when the page does not have it yet."""
    start, end = markers(name)
    section = f"{start}\n{body.strip()}\n{end}"
    text = doc.read_text() if doc.exists() else ""
    if start in text and end in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + ("\n\n" + heading.strip() if heading else "") + "\n\n" + section + "\n"
    doc.write_text(text)
    print(f"wrote {doc}", file=sys.stderr)


def current_commit(root: Path) -> str:
    """The short hash of the checkout at `root` that a table is measured at ("unknown" outside git)."""
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                          text=True).stdout.strip() or "unknown"
