"""Datasets that the Hugging Face `datasets` library loads, read row by row like the rows of a file.

- A hub dataset: `hf://datasets/OWNER/NAME[:CONFIG][@SPLIT]`, e.g. `hf://datasets/Anthropic/hh-rlhf@test`.
  SPLIT defaults to `train`; without CONFIG the dataset's only (or default) configuration is loaded.
  `@` names a split here, not a revision as in huggingface_hub's own `hf://` paths.
  `datasets.load_dataset(OWNER/NAME, CONFIG)` loads it from the datasets cache (HF_DATASETS_CACHE,
  `datasets/` under HF_HOME), or downloads it from the hub into that cache (HF_TOKEN for a private or
  gated dataset); with HF_DATASETS_OFFLINE=1 (or HF_HUB_OFFLINE=1) only the cache is read. The cache
  of prepared datasets is what counts offline: files fetched with `hf download` are not read.
- A folder written by `Dataset.save_to_disk`, read with `datasets.load_from_disk`; for a
  `DatasetDict`'s folder, its `train` split (the folder of another split names that split).

Every row becomes a RawRecord whose ref is the dataset's name (with its split) and the row's 0-based
index, as `dataset[index]` finds it (the unit "row", as Parquet rows have), so that the rows go through
the converters, checks and books that a file's rows go through.
"""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from components.common.data.records import RawRecord, RowRef
from components.common.errors import UserInputError

HUB_SCHEME = "hf://"
HUB_DATASETS = "hf://datasets/"
HUB_SYNTAX = "hf://datasets/OWNER/NAME[:CONFIG][@SPLIT]"
DEFAULT_SPLIT = "train"
_HUB_ID = re.compile(re.escape(HUB_DATASETS) + r"(?P<repo_id>[\w.-]+/[\w.-]+)(?::(?P<config>[\w.-]+))?"
                     r"(?:@(?P<split>\w+(?:\.\w+)*))?")
# The files save_to_disk writes beside the arrow files (datasets.config's names for them).
SAVED_DATASET_FILE, SAVED_DATASET_DICT_FILE = "state.json", "dataset_dict.json"
ROW_BATCH = 4096


@dataclass(frozen=True)
class HubDataset:
    """One split of a dataset on the Hugging Face hub."""

    repo_id: str  # OWNER/NAME
    config: str | None
    split: str

    @property
    def name(self) -> str:
        """How rows and messages name it: its id, its split always shown."""
        config = f":{self.config}" if self.config else ""
        return f"{HUB_DATASETS}{self.repo_id}{config}@{self.split}"


@dataclass(frozen=True)
class LoadedSplit:
    """The split a dataset argument names, as `datasets` loaded it (memory-mapped, not read yet)."""

    name: str  # the hub dataset's name, or the saved folder
    dataset: Any  # a datasets.Dataset

    def fingerprint(self) -> str:
        """The fingerprint `datasets` gives the split: for a hub dataset, a hash of the split and of its
        cache folder, which is named after the revision (commit) the dataset was downloaded at."""
        return self.dataset._fingerprint


def hub_dataset(spec: str) -> HubDataset | None:
    """The hub dataset `spec` names; None when it is no `hf://` id.

    Raises UserInputError when it starts with `hf://` but is malformed."""
    spec = spec.strip()
    if not spec.startswith(HUB_SCHEME):
        return None
    match = _HUB_ID.fullmatch(spec)
    if match is None:
        raise UserInputError(f"{spec}: not a Hugging Face dataset id; expected {HUB_SYNTAX} (the split defaults "
                             f"to {DEFAULT_SPLIT}), e.g. hf://datasets/Anthropic/hh-rlhf@test")
    return HubDataset(match["repo_id"], match["config"], match["split"] or DEFAULT_SPLIT)


def is_saved_dataset(path: Path) -> bool:
    """Whether `path` is a folder that `Dataset.save_to_disk` or `DatasetDict.save_to_disk` wrote."""
    return (path / SAVED_DATASET_FILE).is_file() or (path / SAVED_DATASET_DICT_FILE).is_file()


def load_split(spec: str) -> LoadedSplit | None:
    """The split `spec` names when it is a hub dataset or a saved folder; None for any other argument.

    Raises UserInputError (one line) when it cannot be loaded."""
    hub = hub_dataset(spec)
    if hub is not None:
        return LoadedSplit(hub.name, _load_hub_split(hub))
    path = Path(spec.strip())
    if path.is_dir() and is_saved_dataset(path):
        return _load_saved_split(path)
    return None


def read_rows(split: LoadedSplit) -> Iterator[RawRecord]:
    """Every row of `split`, in order, as a value named by the split and the row's index."""
    index = 0
    for table in split.dataset.with_format("arrow").iter(batch_size=ROW_BATCH):
        for value in table.to_pylist():
            yield RawRecord(RowRef(split.name, index, "row"), value=value)
            index += 1


def _one_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else type(error).__name__
    for line in lines[1:]:
        text += (" " if text[-1] in ".:;," else "; ") + line
    return text


def _load_hub_split(hub: HubDataset):
    import datasets
    from datasets.exceptions import DatasetNotFoundError, DatasetsError
    from huggingface_hub.utils import httpx

    try:
        splits = datasets.load_dataset(hub.repo_id, hub.config)
    except (ConnectionError, httpx.TransportError) as error:
        raise _unreachable(hub, error) from None
    except DatasetNotFoundError as error:
        raise UserInputError(f"{hub.name}: {_one_line(error)} A private or gated dataset needs HF_TOKEN (and its "
                             "terms accepted on the hub)") from None
    except (FileNotFoundError, ValueError, DatasetsError) as error:  # an unknown config, broken data files
        raise UserInputError(f"{hub.name}: {_one_line(error)}") from None
    if hub.split not in splits:
        config = f":{hub.config}" if hub.config else ""
        raise UserInputError(f"{hub.name}: the dataset has no split '{hub.split}'; its splits are "
                             f"{', '.join(splits)} (name one as {HUB_DATASETS}{hub.repo_id}{config}@SPLIT)")
    return splits[hub.split]


def _unreachable(hub: HubDataset, error: Exception) -> UserInputError:
    from datasets import config

    why = "offline mode is on (HF_DATASETS_OFFLINE or HF_HUB_OFFLINE)" if config.HF_HUB_OFFLINE else _one_line(error)
    arguments = repr(hub.repo_id) + (f", {hub.config!r}" if hub.config else "")
    return UserInputError(
        f"{hub.name}: not in the local datasets cache ({config.HF_DATASETS_CACHE}) and the Hugging Face hub cannot "
        f"be reached ({why}); load it once where the hub is reachable, with the same HF_HOME "
        f"(python -c \"import datasets; datasets.load_dataset({arguments})\"), then HF_DATASETS_OFFLINE=1 reads it "
        "from the cache; or give the rows as a local file")


def _load_saved_split(path: Path) -> LoadedSplit:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError) as error:
        raise UserInputError(f"{path}: a folder of datasets' save_to_disk that cannot be loaded "
                             f"({_one_line(error)})") from None
    if not isinstance(loaded, datasets.DatasetDict):
        return LoadedSplit(str(path), loaded)
    if DEFAULT_SPLIT not in loaded:
        raise UserInputError(f"{path}: a DatasetDict saved by save_to_disk without a '{DEFAULT_SPLIT}' split; give "
                             f"the folder of one of its splits: {', '.join(str(path / split) for split in loaded)}")
    return LoadedSplit(str(path / DEFAULT_SPLIT), loaded[DEFAULT_SPLIT])
