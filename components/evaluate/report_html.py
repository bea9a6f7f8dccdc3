"""The evaluation report as one self-contained HTML page (plots embedded as base64 PNG)."""

import base64
from html import escape

from components.evaluate.report_content import PROMPT_COLUMN, ReportContent, format_number

TITLE = "RLHF evaluation: base vs tuned policy"

STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.35em 0.6em; vertical-align: top; text-align: left; }
th { background: #f2f4f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.samples td.text { white-space: pre-wrap; word-break: break-word; max-width: 28em; }
tr.better-tuned td.tuned, tr.better-base td.base { background: #eefbea; }
.note { background: #fff7e0; border-left: 4px solid #f0b400; padding: 0.5em 0.8em; margin: 0.5em 0; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure { margin: 0; } .plots img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; }
"""


def _table(header: list[str], rows: list[list[str]], numeric_from: int = 1, css_class: str = "") -> str:
    """A table of already-formatted cells; columns from `numeric_from` on are right-aligned."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{escape(c)}</td>' if i >= numeric_from else f"<td>{escape(c)}</td>"
            for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    class_attribute = f' class="{css_class}"' if css_class else ""
    return f"<table{class_attribute}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _samples_table(content: ReportContent) -> str:
    gold, rm, rule = content.has_gold, content.has_reward_model, content.has_accuracy
    header = ["#", PROMPT_COLUMN, "Base response", "Tuned response"]
    if rm:
        header += ["Base reward", "Tuned reward"]
    if rule:
        header += ["Base rule reward", "Tuned rule reward"]
    if gold:
        header += ["Base gold", "Tuned gold"]
    rows = []
    for number, row in enumerate(content.rows, start=1):
        preferred = row.preferred(by_reward_model=rm)
        better = f"better-{preferred}" if preferred != "tie" else "tie"
        cells = [
            f'<td class="num">{number}</td>',
            f'<td class="text">{escape(row.prompt)}</td>',
            f'<td class="text base">{escape(row.base_response)}</td>',
            f'<td class="text tuned">{escape(row.tuned_response)}</td>',
        ]
        pairs = ([(row.base_reward, row.tuned_reward)] if rm else []) + (
            [(row.base_rule_reward, row.tuned_rule_reward)] if rule else []) + (
            [(row.base_gold, row.tuned_gold)] if gold else [])
        for base_value, tuned_value in pairs:
            cells += [
                f'<td class="num">{escape(format_number(base_value))}</td>',
                f'<td class="num">{escape(format_number(tuned_value))}</td>',
            ]
        rows.append(f'<tr class="{better}">{"".join(cells)}</tr>')
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f'<table class="samples"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _plots(content: ReportContent) -> str:
    if not content.plots:
        return "<p>No training logs with scalar curves were found.</p>"
    figures = []
    for plot in content.plots:
        data = base64.b64encode(plot.png).decode("ascii")
        curve = plot.curve
        caption = (f"{curve.title}: {len(curve.values)} points, final value "
                   f"{format_number(curve.values[-1])} at step {curve.steps[-1]}")
        figures.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(curve.title)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>"
        )
    return f'<div class="plots">{"".join(figures)}</div>'


def render_html(content: ReportContent) -> str:
    """The whole report; every text from data or models is HTML-escaped."""
    comparison = _table(["Metric", "Base", "Tuned"], [list(r) for r in content.policy_comparison()])
    singles = _table(["Metric", "Value"], [list(r) for r in content.single_metrics()])
    notes = "".join(f'<div class="note">{escape(n)}</div>' for n in content.observations())
    guide = "".join(f"<li>{escape(p)}</li>" for p in content.reading_guide())
    settings = _table(["Setting", "Value"], [[k, v] for k, v in content.settings.items()], numeric_from=2)
    sections = [
        f"<h1>{escape(TITLE)}</h1>",
        "<h2>Headline metrics</h2>", singles, comparison, notes,
        "<h2>How to read this</h2>", f"<ul>{guide}</ul>",
        f"<h2>Side by side ({len(content.rows)} held-out prompts)</h2>",
        f"<p>{escape(content.side_by_side_note())}</p>", _samples_table(content),
        "<h2>Training curves</h2>", _plots(content),
        "<h2>Settings</h2>", settings,
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(TITLE)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
