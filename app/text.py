"""Text that came from a database or a file, shown as text and nothing else.

Machine labels and hostnames, run messages, notes, method and benchmark names, and
anything else a bundle, a pytest-benchmark file or a shared team database brings in
are not the dashboard's own words. Streamlit renders Markdown in most of its elements
(images and links, which the browser fetches or follows; GitHub's bare-URL links;
coloured spans and icons such as `:red[...]`; KaTeX formulas between dollars), and
Plotly renders a subset of HTML in its labels. So every such string reaches the page
through one of these functions; the dashboard's own sentences around them stay
Markdown.
"""

from __future__ import annotations

import html
import re
import unicodedata

LIMIT = 300  # characters shown of one stored string; tables and exports keep it whole

# Every ASCII punctuation character: CommonMark lets a backslash escape each of them, and with
# all of them escaped no link, image, emphasis, HTML tag, directive (`:red[`) or formula (`\$`)
# can start.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")


def visible(value, limit: int | None = LIMIT) -> str:
    """One line of at most `limit` characters in which every character shows: format characters
    (zero-width spaces and joiners, right-to-left overrides that reorder what follows) are spelled
    out as ⟨U+202E⟩ rather than acting on the page."""
    text = " ".join(str(value).split())
    text = "".join(f"⟨U+{ord(c):04X}⟩" if unicodedata.category(c) == "Cf" else c for c in text)
    if limit is not None and len(text) > limit:
        text = text[:limit - 1] + "…"
    return text


# Streamlit links bare URLs and e-mail addresses after parsing, in the text itself, where escapes no
# longer show: a word joiner (invisible, never a line break) after `http`/`www` and before `@`
# keeps its patterns (https?://, www., x@y.z) from matching.
_AUTOLINK = re.compile(r"(?i)\b(https?|www)(?=\\[:.])|(?=\\@)")
WORD_JOINER = "\u2060"


def md(value, limit: int | None = LIMIT) -> str:
    """For Markdown elements (st.markdown, caption, info, subheader, radio labels...): the text
    as stored, visible(), every punctuation character escaped and no bare URL left to link."""
    escaped = _PUNCTUATION.sub(r"\\\1", visible(value, limit))
    return _AUTOLINK.sub(lambda m: (m.group(1) or "") + WORD_JOINER, escaped)


def code(value, limit: int | None = LIMIT) -> str:
    """An identifier in a code span, where Markdown is not parsed; one that holds a backtick,
    which would close the span early, falls back to md()."""
    text = visible(value, limit)
    return md(text, None) if "`" in text else f"`{text}`"


def plotly(value) -> str:
    """For Plotly's trace names, hover labels, annotations and tick labels, which render a
    subset of HTML (links included): visible() and HTML-escaped."""
    return html.escape(visible(value, None), quote=False)
