"""`rlhf-pipeline validate-data` called in-process, as the data tests call it."""

import argparse
from pathlib import Path

from cli.commands import validate_data


def validate(tmp_path: Path, **options) -> tuple[int, Path]:
    """Exit status of validate-data with the command's own defaults, no held-out split unless asked,
    normalized output under `tmp_path`; `options` override arguments by their Python names."""
    out = tmp_path / "normalized"
    parser = argparse.ArgumentParser()
    validate_data.add_arguments(parser)
    args = parser.parse_args(["--write-normalized", str(out), "--eval-split-fraction", "0"])
    vars(args).update(options)
    return validate_data.main(args), out
