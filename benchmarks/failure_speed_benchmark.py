"""How fast bad input and cached reruns come back: the speed targets that tests do not assert.

    python benchmarks/failure_speed_benchmark.py

Each case runs the command as a user would, in a separate process, on a tiny task written into a
temporary directory (80 preference pairs, 40 prompts, a one-layer model from tests/tiny_models.py),
and is timed against its target:

- validate-data on an all-malformed file, and on a gs:// URI without credentials;
- `rlhf-pipeline run` with bad input (a missing dataset, an unknown model, an all-malformed
  preference file): it must fail before any stage starts;
- `rlhf-pipeline run` a second time with the same inputs: every stage from the cache.

Prints one line per case and exits non-zero when a case fails or misses its target.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "cli"]


def timed(command: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    return time.perf_counter() - start, result


def write_task(directory: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from test_local_run import write_task as write_rows
    from tiny_models import build_causal_lm

    write_rows(directory)
    build_causal_lm(directory / "model")
    params = {"preference_dataset": str(directory / "preference.jsonl"),
              "prompt_dataset": str(directory / "prompts.jsonl"), "large_model_reference": str(directory / "model"),
              "reinforcement_learning_train_steps": 2, "batch_size": 8, "ppo_minibatch_size": 4, "ppo_epochs": 1,
              "target_sequence_length": 8, "prompt_sequence_length": 32, "max_eval_prompts": 4,
              "reward_model_lora_rank": 0, "policy_lora_rank": 0}
    (directory / "params.json").write_text(json.dumps(params))
    bad = directory / "all-bad.jsonl"
    bad.write_text("".join(json.dumps({"input_text": f"p{i}", "candidate_0": "a", "candidate_1": "b", "choice": 7})
                           + "\n" for i in range(1000)))
    return directory / "params.json"


def main() -> int:
    failures = 0
    offline_gcs = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_", "GCE_"))}
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        params = write_task(directory)
        offline_gcs.update(CLOUDSDK_CONFIG=str(directory / "gcloud"), GCE_METADATA_HOST="127.0.0.1:9",
                           GCE_METADATA_IP="127.0.0.1:9", NO_GCE_CHECK="True")
        run = [*CLI, "run", "--params", str(params), "--output-dir", str(directory / "runs")]
        cases = [
            ("validate-data, all-malformed file", 10.0, [*CLI, "validate-data", "--preference-dataset",
                                                          str(directory / "all-bad.jsonl")], None, 1),
            ("validate-data, gs:// without credentials", 30.0, [*CLI, "validate-data", "--preference-dataset",
                                                                 "gs://no-such-bucket/prefs.jsonl"], offline_gcs, 1),
            ("run, missing dataset", 30.0, [*run, "--set", "preference_dataset=/no/such.jsonl"], None, 2),
            ("run, unknown model", 30.0, [*run, "--set", "large_model_reference=some model"], None, 2),
            ("run, all-malformed preference file", 60.0,
             [*run, "--set", f"preference_dataset={directory / 'all-bad.jsonl'}"], None, 2),
            ("run, first (not timed against a target)", None, run, None, 0),
            ("run, again: every stage cached", 60.0, run, None, 0),
        ]
        for name, target, command, env, expected in cases:
            seconds, result = timed(command, env)
            ok = result.returncode == expected and (target is None or seconds < target)
            failures += not ok
            goal = f" (target < {target:g} s)" if target else ""
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {seconds:.1f} s{goal}, exit {result.returncode}", flush=True)
            if result.returncode != expected:
                print(result.stdout[-2000:] + result.stderr[-2000:])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
