"""The Markdown data report the pipeline UI shows: counts, books, rejects, token lengths, label balance,
and for prompts the columns a reward function receives."""

import statistics
from collections import Counter
from pathlib import Path

from components.common.data import reasons
from components.common.data.lengths import LIMIT_SETTINGS
from components.common.data.loading import PREFERENCE
from components.common.data.preparation import FROM_EVAL_DATASET, PreparedData

PERCENTILES = (50, 90, 99)
FIRST_REJECTS_SHOWN = 10
FIRST_LEAKS_SHOWN = 5


def percentile(values: list[int], q: int) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, (len(ordered) * q) // 100)]


def _books(prepared: PreparedData) -> list[str]:
    lines = ["## Books", "",
             "input rows + pairs made by expansion = used + rejected + duplicates + set aside", "",
             "| dataset | format | files | input rows | made by expansion | used | rejected | duplicates "
             "| set aside | balanced |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for data in prepared.datasets:
        b = data.ledger
        lines.append(f"| `{b.source}` | {b.layout} | {len(b.files)} | {b.input_rows} | {b.expansion} | {b.used} | "
                     f"{b.rejected} | {b.duplicates} | {b.set_aside} | {'yes' if b.balanced() else '**NO**'} |")
    return lines + [""]


def _rejects(prepared: PreparedData) -> list[str]:
    rejects = [r for d in prepared.datasets for r in d.ledger.rejects]
    if not rejects:
        return ["## Rejects", "", "No row was rejected.", ""]
    lines = ["## Rejects by reason", "", "| reason | rows | meaning | counts against the tolerance |",
             "|---|---|---|---|"]
    counts: dict[str, int] = {}
    for reject in rejects:
        counts[reject.reason] = counts.get(reject.reason, 0) + 1
    for reason, count in sorted(counts.items(), key=lambda item: -item[1]):
        lines.append(f"| {reason} | {count} | {reasons.DESCRIPTIONS.get(reason, '')} | "
                     f"{'yes' if reasons.is_error(reason) else 'no'} |")
    lines += ["", f"First {min(len(rejects), FIRST_REJECTS_SHOWN)} (all are in `rejects.jsonl`):", ""]
    lines += [f"- {reject}" for reject in rejects[:FIRST_REJECTS_SHOWN]]
    return lines + [""]


def _lengths(prepared: PreparedData, settings_limits: dict[str, int]) -> list[str]:
    lines = ["## Token lengths", ""]
    if prepared.tokenizer_note:
        return lines + [prepared.tokenizer_note, ""]
    lines += ["Before truncation, instruction included. The distribution covers every example of a dataset of "
              "up to 10,000, else a systematic sample; the over-the-limit counts cover every example.", "",
              "| dataset | text | sample | min | " + " | ".join(f"p{q}" for q in PERCENTILES)
              + " | max | limit | over the limit | truncated |",
              "|---|---|---|---|" + "---|" * len(PERCENTILES) + "---|---|---|---|"]
    for data in prepared.datasets:
        stats = data.lengths
        for name, values in stats.lengths.items():
            if not values:
                continue
            cells = " | ".join(str(percentile(values, q)) for q in PERCENTILES)
            lines.append(f"| `{data.ledger.source}` | {name} | {len(values)} of {stats.examples} | {min(values)} | "
                         f"{cells} | {max(values)} | {settings_limits[name]} | {stats.over_limit.get(name, 0)} | "
                         f"{stats.truncated.get(name, 0)} |")
    return lines + [""]


def _balance(prepared: PreparedData) -> list[str]:
    lines = ["## Label balance", ""]
    for data in prepared.datasets:
        labels = data.ledger.labels
        total = sum(labels.values())
        if total:
            shares = ", ".join(f"{name}: {count} ({count / total:.0%})" for name, count in sorted(labels.items()))
            lines.append(f"- `{data.ledger.source}`: {shares}")
    if prepared.kind == PREFERENCE:
        pairs = prepared.train + prepared.eval
        if pairs:
            longer = sum(1 for p in pairs if len(p.chosen) > len(p.rejected))
            lines.append(f"- chosen answer longer than the rejected one (characters): {longer / len(pairs):.0%} "
                         "of pairs (far from 50% means length alone predicts the label)")
            margins = [p.margin for p in pairs if p.margin is not None]
            if margins:
                lines.append(f"- margins: {len(margins)} pairs, mean {statistics.fmean(margins):.3g}, "
                             f"min {min(margins):.3g}, max {max(margins):.3g}")
    return lines + [""]


def _columns(prepared: PreparedData) -> list[str]:
    """Which columns of the prompts a reward function will receive, and how many prompts have each."""
    if prepared.kind == PREFERENCE:
        return []
    prompts = prepared.train + prepared.eval
    counts = Counter(name for prompt in prompts for name in prompt.columns)
    lines = ["## Columns for a reward function", ""]
    if not counts:
        return lines + ["None: a reward function receives the prompts and completions only.", ""]
    lines += ["Passed to a reward function as keyword arguments, one value per completion (None where a prompt "
              "has no value):", ""]
    lines += [f"- `{name}`: {count} of {len(prompts)} prompts" for name, count in counts.most_common()]
    return lines + [""]


def _split(prepared: PreparedData) -> list[str]:
    unit = "pairs" if prepared.kind == PREFERENCE else "prompts"
    if prepared.eval_origin == FROM_EVAL_DATASET:
        origin = f"the eval dataset `{prepared.eval_data.ledger.source}`"
    else:
        origin = (f"a deterministic split of the training data (eval_split_fraction={prepared.eval_split_fraction:g}, "
                  f"seed={prepared.seed})")
    lines = ["## Split", "", f"- train: {len(prepared.train)} {unit}; eval: {len(prepared.eval)} {unit}, from {origin}",
             f"- eval prompts also seen in training: {prepared.shared_prompts}"]
    if prepared.kind == PREFERENCE:
        lines.append(f"- pairs in both train and eval (leakage): {len(prepared.leaks)}")
        lines += [f"  - {train.ref} is also {held.ref}" for train, held in prepared.leaks[:FIRST_LEAKS_SHOWN]]
    lines += [f"- {note}" for note in prepared.notes]
    return lines + [""]


def render_report(prepared: PreparedData, prompt_sequence_length: int, target_sequence_length: int) -> str:
    title = "Preference data" if prepared.kind == PREFERENCE else "Prompt data"
    limits = {name: prompt_sequence_length if setting == "prompt_sequence_length" else target_sequence_length
              for name, setting in LIMIT_SETTINGS.items()}
    lines = [f"# {title} report", ""]
    lines += _split(prepared) + _books(prepared) + _rejects(prepared) + _lengths(prepared, limits) + _balance(prepared)
    lines += _columns(prepared)
    return "\n".join(lines)


def write_report(prepared: PreparedData, path, prompt_sequence_length: int, target_sequence_length: int) -> None:
    """The report as a Markdown file at `path` (a KFP Markdown artifact's path)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_report(prepared, prompt_sequence_length, target_sequence_length) + "\n", encoding="utf-8")
