"""Self-contained HTML reports logged as MLflow artifacts (no external assets).

A report is a title plus sections; helpers render the pieces jobs produce: the OPE
table with intervals and diagnostics, tuning trials, and matplotlib figures (inlined
as PNG). Open ``report.html`` from the run's Artifacts tab in the MLflow UI.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from looper_common.decision_science.ope import OPEResult

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1100px}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}.meta{color:#666;font-size:.85em}
.good{color:#0a7d28}.bad{color:#b3261e}img{max-width:100%}
"""


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return html.escape(str(value))


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> str:
    """An HTML table of ``rows`` (dicts), in ``columns`` order."""
    if not rows:
        return "<p>(none)</p>"
    columns = list(columns or rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def figure(fig) -> str:
    """A matplotlib figure inlined as a PNG ``<img>``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def ope_section(result: OPEResult, *, estimator: str = "dr") -> str:
    """The OPE table: every policy and estimator with its interval, lift and diagnostics."""
    level = f"{100 * (1 - result.alpha):.0f}%"
    note = (f"<p class='meta'>{result.n:,} logged decisions; {level} bootstrap intervals from "
            f"{result.n_bootstrap} resamples; weight clip {result.clip or 'none'}; lifts are over "
            f"<b>{html.escape(str(result.baseline))}</b>, paired.</p>")
    rows = [
        {**row, "interval": f"{row['lower']:.4f} .. {row['upper']:.4f}",
         "lift interval": "" if row["lift_lower"] is None else f"{row['lift_lower']:+.4f} .. {row['lift_upper']:+.4f}"}
        for row in result.table()
    ]
    cols = ["policy", "estimator", "value", "interval", "std_error", "lift", "lift interval", "ess", "max_weight"]
    return note + table(rows, cols)


def html_report(title: str, sections: Iterable[tuple[str, str]], meta: Mapping[str, object] | None = None) -> str:
    """A whole HTML page: ``sections`` are (heading, inner HTML) pairs."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    facts = " · ".join(f"{html.escape(str(k))}: {html.escape(str(v))}" for k, v in (meta or {}).items())
    body = "".join(f"<h2>{html.escape(h)}</h2>{inner}" for h, inner in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='meta'>{facts} · generated {stamp}</p>{body}</body></html>")
