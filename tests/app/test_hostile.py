"""Imported text stays text: a hostile bundle and a hostile pytest-benchmark file render on
every page with no Markdown, HTML, link, image, directive or formula made from them, and no
format character acting on the page (AppTest here; the browser test checks the requests)."""

import re

import pytest

from app import text
from tests.app.hostile import BENCH, HOST, INVISIBLE, LATEX, UNESCAPED, fill
from tests.app.test_pages import PAGES, render

CODE_SPAN = re.compile(r"`[^`]*`")  # Markdown is not parsed inside one


@pytest.fixture
def hostile_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    fill(url, f"sqlite:///{tmp_path / 'clean.db'}")
    return url


def shown_markdown(at) -> list[str]:
    """Every string the page hands to Streamlit's Markdown renderer, code spans taken out."""
    values = [e.value for kind in ("markdown", "caption", "info", "warning", "error", "success", "title",
                                   "header", "subheader") for e in at.get(kind)]
    values += [w.label for kind in ("selectbox", "multiselect", "radio", "button", "text_input", "select_slider")
               for w in at.get(kind)]
    values += [e.proto.label for e in at.get("metric")]
    return [CODE_SPAN.sub("", str(v)) for v in values]


def plain_options(at) -> list[str]:
    return [str(o) for kind in ("selectbox", "multiselect") for w in at.get(kind) for o in w.options]


@pytest.mark.parametrize("page", [*PAGES, "app_pages/claims.py"])
def test_hostile_text_renders_as_text_on_every_page(hostile_db, monkeypatch, page):
    at = render(hostile_db, monkeypatch, page)
    for value in shown_markdown(at):
        assert not UNESCAPED.search(value), value[:300]
        assert not INVISIBLE.search(value), value[:300]
    for option in plain_options(at):  # plain text, but a right-to-left override would still reorder it
        assert not INVISIBLE.search(option), option[:300]
    for formula in at.get("latex"):  # LaTeX only from the code's own catalogue
        assert HOST not in formula.value and "href" not in formula.value


def test_the_overview_shows_the_unknown_benchmark_by_id_and_none_of_its_text(hostile_db, monkeypatch):
    at = render(hostile_db, monkeypatch)
    subheaders = [s.value for s in at.subheader]
    assert text.code(BENCH) in subheaders
    captions = " ".join(c.value for c in at.caption)
    assert "Not in this installation's catalogue" in captions
    assert "AAAAAAAAAA" not in " ".join(subheaders) + captions  # its 10,000-character title is not shown
    assert not any(LATEX[:10] in f.value for f in at.get("latex"))
    # Its machine label is shown, escaped, cut to a readable length.
    headline = " ".join(m.value for m in at.markdown)
    assert text.md("![pixel]") in headline and text.md("\u202e") in headline


def test_md_escapes_every_construct_and_keeps_the_words():
    shown = text.md("**bold** [a](http://x.invalid) $x$ :red[r] <b> www.y.invalid me@z.invalid")
    joiner = text.WORD_JOINER  # Streamlit links bare URLs after parsing: http, www and @ are kept apart
    assert shown == (r"\*\*bold\*\* \[a\]\(http" + joiner + r"\:\/\/x\.invalid\) \$x\$ \:red\[r\] \<b\> www"
                     + joiner + r"\.y\.invalid me" + joiner + r"\@z\.invalid")


def test_visible_spells_out_format_characters_and_cuts_long_text():
    assert text.visible("a\u202eb\u200bc\n\nd") == "a⟨U+202E⟩b⟨U+200B⟩c d"
    assert text.visible("x" * 10_000) == "x" * (text.LIMIT - 1) + "…"
    assert text.code("ok_id") == "`ok_id`" and text.code("a`b") == r"a\`b"


def test_plotly_text_escapes_the_html_plotly_would_draw():
    """Plotly draws a subset of HTML in trace names, labels and annotations, links among them, and
    drops the rest (the hostile bundle's <img> ids draw nothing either way); stored text reaches it
    escaped, its format characters spelled out."""
    shown = text.plotly(f"m<a href='http://{HOST}/a'>a</a> <b>b</b>\u202e & x")
    assert shown == f"m&lt;a href='http://{HOST}/a'&gt;a&lt;/a&gt; &lt;b&gt;b&lt;/b&gt;⟨U+202E⟩ &amp; x"
