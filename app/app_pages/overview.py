"""Overview: the catalogue by survey domain, with the latest headline per benchmark."""

import streamlit as st

from app import data, judging, text, widgets
from hadamard_bench.vocabulary import DOMAINS

DOMAIN_TITLES = DOMAINS

url = data.db_url()
st.title("Hadamard Bench")
st.caption("What does a Hadamard-product primitive really cost against the operator it replaces, "
           "on this hardware, as the problem grows?")


@st.fragment(run_every=2)
def progress():
    runs = data.load_run_progress(url)
    active = judging.active_runs(runs)
    for run in active.itertuples():
        st.progress(run.cells_done / max(run.cells_total, 1),
                    text=f"Run {run.run_id} ({text.md(run.suite)} suite on {text.md(run.machine)}): "
                         f"{run.cells_done} of {run.cells_total} cells")
    data.refresh_on_progress(runs)


progress()
catalogue = data.load_catalogue(url)
local = data.local_catalogue()
results = data.load_latest(url)

if results.empty:  # the catalogue itself is always there: the dashboard lays the code's over the database
    sessions_only = data.load_runs(url)["paired_with"].notna().any()
    st.info(("No plain run has results yet: the `ab` sessions here are compared on the Diff page, and a "
             "machine's own figures come from `run`. " if sessions_only else "No results yet. ")
            + "Start a sweep with `python -m bench_runner run --suite quick` "
            "(`make run` starts one by itself on an empty database); results appear here as they land.")
    st.stop()

headlines = data.load_headlines(url)
st.caption(f"{data.load_result_count(url):,} stored results · {len(results):,} cells · database {text.code(url)}")
widgets.failed_since_warning(url)  # the page shows each cell's latest `ok` result
reference = data.load_reference_machines(url)
if reference:
    st.caption(f"Shipped reference results: {', '.join(map(text.md, reference))} (results/reference/). Their headlines stand "
               "beside yours below; Compare draws them beside your own runs under *Beside it*.")

for family, in_family in catalogue.groupby("domain", sort=False):
    st.header(DOMAIN_TITLES.get(family) or text.md(family))
    for bench, methods in in_family.groupby("benchmark", sort=False):
        first = methods.iloc[0]
        with st.container(border=True):
            if bench in local.benchmarks:
                st.subheader(f"`{bench}`: {first.title}")
                st.caption(f"{first.contract} · sizes {', '.join(first.params)}")
            else:  # from a bundle or a plugin this catalogue lacks: its own text is not shown
                st.subheader(text.code(bench))
                st.caption("Not in this installation's catalogue: shown by its id.")
            for h in headlines[headlines["benchmark"] == bench].itertuples():
                st.markdown(judging.headline_text(h)
                            + (" · :orange[noisy: a timing spread over 10% within or between rounds]"
                               if h.noisy else ""))
            table = methods[["method", "role", "summary", "exponents", "backends"]].rename(
                columns={"summary": "formula and paper", "exponents": "time exponent"})
            table["time exponent"] = table["time exponent"].map(
                lambda e: ", ".join(f"{k}^{v:g}" for k, v in e.items()))
            table["backends"] = table["backends"].map(", ".join)
            st.dataframe(table, hide_index=True, width="stretch")
            for m in methods.itertuples():
                if (bench, m.method) not in local.methods:  # LaTeX only from the code's own catalogue
                    continue
                name = m.method.replace("_", r"\_")
                st.latex(rf"\texttt{{{name}}}:\quad {m.latex}")
