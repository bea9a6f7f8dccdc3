"""The real-model learning benchmark's results: one JSON of every figure and a short Markdown table."""

import json
from pathlib import Path

# (case figure, column label) of the Markdown table; a figure a case lacks is left blank.
COLUMNS = (
    ("headline", "headline (base -> tuned, 95% interval)"),
    ("kl_to_base", "KL to base"),
    ("tuned_response_tokens", "tuned response tokens"),
    ("tuned_ended_with_eos", "tuned answers ending with EOS"),
    ("seconds_per_step", "s / step"),
    ("training_seconds", "training s"),
)


def interval_text(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return ""
    if interval is None:
        return f"{value:.3g}"
    return f"{value:.3g} [{interval[0]:.3g}, {interval[1]:.3g}]"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(results: dict[str, dict]) -> str:
    """One row per case that ran, in the order given."""
    lines = ["| case | " + " | ".join(label for _, label in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for case, figures in results.items():
        lines.append(f"| {case} | " + " | ".join(_cell(figures.get(name)) for name, _ in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, dict], settings: dict, folder: Path) -> tuple[Path, Path]:
    """`real_model_learning.json` (settings and every case's figures) and `.md` (the table) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = folder / "real_model_learning.json", folder / "real_model_learning.md"
    json_path.write_text(json.dumps({"settings": settings, "cases": results}, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(markdown_table(results), encoding="utf-8")
    return json_path, markdown_path
