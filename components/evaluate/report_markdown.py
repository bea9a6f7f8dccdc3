"""The evaluation report as Markdown: metrics, the first side-by-side rows, final curve values.

What differs from the HTML report: the side-by-side table holds the first `markdown_rows` prompts
(the HTML report and the predictions hold all), and the plots are links to the PNG files in the predictions folder, not
pictures inside the file. The links are relative to the report's own folder, where the predictions
folder lies beside it: in the evaluation's artifacts and in a local run directory alike.
"""

import re
from html import escape

from components.evaluate.report_content import PROMPT_COLUMN, ReportContent, format_number
from components.evaluate.report_html import TITLE

MARKDOWN_CELL_CHARS = 300  # longer texts are cut in the Markdown table (the HTML report has them whole)


def markdown_cell(text: str, limit: int = MARKDOWN_CELL_CHARS, keep_end: bool = False) -> str:
    """Text that stays inside one table cell and is shown, not interpreted, by a Markdown viewer; a text
    over `limit` keeps its start, or its end with `keep_end` (a rendered prompt: its question and cue)."""
    if len(text) > limit:
        text = "…" + text[-limit:].lstrip() if keep_end else text[:limit].rstrip() + "…"
    cell = escape(text, quote=False)
    cell = re.sub(r"([\\`*_\[\]|])", r"\\\1", cell)  # Markdown punctuation shown literally
    return cell.replace("\r\n", "\n").replace("\n", "<br>") or " "


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def render_markdown(content: ReportContent, max_rows: int, plots_folder: str) -> str:
    """The report; `plots_folder`: the folder the plots' file names are relative to, from the report's folder."""
    lines = [f"# {TITLE}", "", "## Headline metrics", ""]
    lines += _table(["Metric", "Value"], [[markdown_cell(m), v] for m, v in content.single_metrics()])
    lines += [""]
    lines += _table(["Metric", "Base", "Tuned"], [[markdown_cell(m), b, t] for m, b, t in content.policy_comparison()])
    lines += [""]
    for note in content.observations():
        lines += [f"> **Note:** {markdown_cell(note, len(note))}", ""]
    lines += ["", "## How to read this", ""] + [f"- {p}" for p in content.reading_guide()]

    shown = content.rows[:max_rows]
    lines += ["", f"## Side by side (first {len(shown)} of {len(content.rows)} held-out prompts)", ""]
    if len(shown) < len(content.rows):
        lines += ["The HTML report shows every prompt; the predictions folder holds every response.", ""]
    rm, rule = content.has_reward_model, content.has_accuracy
    header = ["#", PROMPT_COLUMN, "Base response", "Tuned response"]
    if rm:
        header += ["Base reward", "Tuned reward"]
    if rule:
        header += ["Base rule reward", "Tuned rule reward"]
    if content.has_gold:
        header += ["Base gold", "Tuned gold"]
    rows = []
    for number, row in enumerate(shown, start=1):
        cells = [str(number), markdown_cell(row.prompt, keep_end=True), markdown_cell(row.base_response),
                 markdown_cell(row.tuned_response)]
        if rm:
            cells += [format_number(row.base_reward), format_number(row.tuned_reward)]
        if rule:
            cells += [format_number(row.base_rule_reward), format_number(row.tuned_rule_reward)]
        if content.has_gold:
            cells += [format_number(row.base_gold), format_number(row.tuned_gold)]
        rows.append(cells)
    lines += _table(header, rows)

    lines += ["", "## Training curves", ""]
    if content.plots:
        curve_rows = [
            [markdown_cell(p.curve.stage), markdown_cell(p.curve.tag), str(len(p.curve.values)),
             format_number(p.curve.values[0]), format_number(p.curve.values[-1]), str(p.curve.steps[-1]),
             f"[{markdown_cell(p.curve.file_stem)}]({plots_folder}/{p.filename})"]
            for p in content.plots
        ]
        header = ["Stage", "Tag", "Points", "First value", "Final value", "Final step", "Plot"]
        lines += _table(header, curve_rows)
        lines += ["", f"The plots are pictures in the HTML report; here Plot links each PNG in {plots_folder}/."]
    else:
        lines += ["No training logs with scalar curves were found."]

    lines += ["", "## Settings", ""]
    lines += _table(["Setting", "Value"], [[markdown_cell(k), markdown_cell(v)] for k, v in content.settings.items()])
    return "\n".join(lines) + "\n"
