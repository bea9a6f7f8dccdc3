"""Writing KFP output artifacts so that the UI shows them and the local cache can reuse them."""

import json
from pathlib import Path
from typing import Any


def record_metrics(metrics_artifact, values: dict[str, Any]) -> None:
    """Log scalar metrics on a KFP `Metrics` artifact and also write them to its path as JSON.

    KFP writes no file for a Metrics artifact; without one, kfp.local treats the task's outputs as
    missing and never serves it from the cache.
    """
    numeric = {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and v is not None}
    for name, value in numeric.items():
        metrics_artifact.log_metric(name, value)
    path = Path(metrics_artifact.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(numeric, indent=2, sort_keys=True) + "\n")
