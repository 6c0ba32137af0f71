"""A database filled from a hostile bundle and a hostile pytest-benchmark file: every string
they carry (machine label and hostname, run message, benchmark and method ids, titles,
formulas) holds Markdown images and links, HTML, KaTeX macros that fetch or link, bare URLs,
Streamlit colour and icon directives, right-to-left and zero-width characters, and one
10,000-character string. Every URL points at HOST, a name that never resolves (.invalid), so
any attempt to fetch one shows in the browser's requests without leaving the machine."""

from __future__ import annotations

import copy
import json
import re

from sqlalchemy.orm import sessionmaker

import results_db
from results_db import bundle, bundle_format, pytest_bench
from tests.conftest import seed

HOST = "tracker.invalid"
IMAGE = f"![pixel](http://{HOST}/md.png)"
LINK = f"[click me](http://{HOST}/link)"
HTML = f"<img src='http://{HOST}/html.png'><a href='http://{HOST}/a'>a</a><script>alert(1)</script>"
LATEX = rf"$\href{{http://{HOST}/tex}}{{x}}$ $$\includegraphics{{http://{HOST}/g.png}}$$"
BIDI = "\u202egnp.exe\u200b\u2066"
BARE = f"www.{HOST} http://{HOST}/bare"
DIRECTIVES = ":red[red] :material/warning:"
EVERYTHING = " ".join([IMAGE, LINK, HTML, LATEX, BIDI, BARE, DIRECTIVES])
LONG = "A" * 10_000

BENCH = f"tm{IMAGE}"[:64]  # ids are kept to 64 characters by the bundle's checks
METHOD = f"p{LINK}"[:64]
BASELINE = f"s<img src='http://{HOST}/i'>"[:64]
RENAMED = {"token_mixing": BENCH, "poly_sa": METHOD, "softmax_attention": BASELINE}


def _rename(value):
    return RENAMED.get(value, value) if isinstance(value, str) else value


def hostile_bundle(clean_url: str) -> dict:
    """The seeded token_mixing runs, exported, with every string made hostile."""
    with sessionmaker(results_db.open_engine(clean_url))() as session:
        data = copy.deepcopy(bundle.export_bundle(session))
    for run in data["runs"]:
        # Each field as long as the bundle's checks allow: 200 for a label, 10,000 for a message.
        run["machine"].update(key="hostile", label=(BIDI + IMAGE + " " + LINK + " " + HTML)[:200],
                              hostname=(HTML + BIDI)[:64], cpu_model=IMAGE, gpu_name=LINK, torch_version=DIRECTIVES)
        run["message"] = (EVERYTHING + LONG)[:10_000]
        for result in run["results"]:
            for field in ("benchmark", "method"):
                result[field] = _rename(result[field])
            result["message"] = LINK
    cat = data["catalogue"]
    for b in cat["benchmarks"]:
        b.update(id=_rename(b["id"]), title=(IMAGE + LONG)[:200], contract=HTML[:200], domain="high_order")
    for m in cat["methods"]:
        m.update(benchmark=_rename(m["benchmark"]), id=_rename(m["id"]), summary=(LINK + LONG)[:10_000],
                 latex=(LATEX + LONG)[:10_000],
                 against=[_rename(a) for a in m.get("against") or []])
    return data


def hostile_pytest_benchmark() -> dict:
    stats = {"median": 1e-3, "iqr": 1e-5, "min": 9e-4, "max": 2e-3, "mean": 1e-3, "stddev": 1e-5,
             "rounds": 5, "iterations": 1, "ops": 1000.0, "data": [1e-3] * 5}
    return {"machine_info": {"node": HTML + BIDI, "processor": IMAGE, "system": "Linux", "release": LINK,
                             "python_version": "3.11", "cpu": {"brand_raw": EVERYTHING, "count": 2}},
            "commit_info": {"id": "abc" + LINK, "dirty": False},
            "datetime": "2026-11-29T10:00:00+00:00", "version": "5.1.0",
            "benchmarks": [{"name": f"test_x[{IMAGE}]", "fullname": f"tests/{LINK}::test_x", "group": BENCH,
                            "params": {"n": 4096, "k": r"$\href{x}{y}$"}, "stats": stats},
                           {"name": "test_y" + BIDI, "fullname": f"tests/{IMAGE}.py::test_y", "group": None,
                            "params": None, "stats": stats}]}


def fill(url: str, clean_url: str) -> None:
    """Into `url`: the code's catalogue (as the dashboard lays it), the hostile bundle and the
    hostile pytest-benchmark file, through the same imports the CLI and dashboard use."""
    seed(clean_url)
    data = bundle_format.parse(json.dumps(hostile_bundle(clean_url)))
    with sessionmaker(results_db.open_engine(url))() as session, session.begin():
        bundle.import_bundle(session, data, source="hostile.json")
        pytest_bench.import_file(session, hostile_pytest_benchmark(), source="hostile-pytest.json")


# What no Markdown element may hold: one of the hostile constructs with its punctuation left bare.
UNESCAPED = re.compile(r"(?<!\\)!(?<!\\)\[|(?<!\\)\]\((?!\\)|(?<!\\)<(img|a |script)|(?<!\\)\$|"
                       + re.escape(HOST) + "|(?<!\\\\):red(?<!\\\\)\\[")
INVISIBLE = re.compile("[\u202e\u200b\u2066]")
