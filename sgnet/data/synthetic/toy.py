"""The default synthetic dataset behind the builtin ``sgnet_toy_*`` splits: generated on first
use, marked with the generator's version so that an older one is not reused unnoticed."""

import logging
import os
import shutil
import tempfile

from .ytvis_writer import generate_synthetic_ytvis, toy_dataset_paths

__all__ = ["TOY_DATASET_VERSION", "ensure_toy_dataset", "mark_toy_dataset"]

logger = logging.getLogger(__name__)

# The default dataset's version, written next to its splits. Bump it whenever the generator's
# defaults or output change, so that a dataset of an older version is not reused unnoticed.
TOY_DATASET_VERSION = "2"  # 2: 400 train / 48 val videos (1: 60 / 16)
_VERSION_FILE = "sgnet_toy_version.txt"


def _is_complete(paths: dict) -> bool:
    return os.path.isfile(paths["train_json"]) and os.path.isfile(paths["val_json"])


def ensure_toy_dataset(dataset_dir: str) -> dict:
    """The default synthetic dataset in ``dataset_dir``, generated there on first use.

    Generation happens in a temporary sibling folder renamed into place, so concurrent callers
    (data loader processes, several jobs) never see a partial dataset. Returns the paths of
    :func:`generate_synthetic_ytvis`.
    """
    paths = toy_dataset_paths(dataset_dir)
    dataset_dir = os.path.abspath(dataset_dir)
    if _is_complete(paths):
        _check_version(dataset_dir)
        return paths
    if os.path.isdir(dataset_dir) and os.listdir(dataset_dir):
        raise FileExistsError(
            f"{dataset_dir} exists but lacks train.json / valid.json; delete it to have the toy "
            "dataset generated again"
        )
    logger.info(
        f"Generating the synthetic toy dataset into {dataset_dir} (first use; reused afterwards)"
    )
    parent = os.path.dirname(dataset_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=os.path.basename(dataset_dir) + ".tmp-", dir=parent)
    try:
        generate_synthetic_ytvis(staging)
        mark_toy_dataset(staging)
        try:
            os.rename(staging, dataset_dir)
        except OSError:
            if not _is_complete(paths):  # else another process finished first: use its copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return paths


def mark_toy_dataset(dataset_dir: str) -> None:
    """Mark ``dataset_dir``, written with the generator's defaults, as the current default
    dataset (usable as ``$DETECTRON2_DATASETS/sgnet_toy``)."""
    with open(os.path.join(dataset_dir, _VERSION_FILE), "w") as f:
        f.write(TOY_DATASET_VERSION)


def _check_version(dataset_dir: str) -> None:
    """Warn when ``dataset_dir`` is not the current default dataset: an older sgnet's (other
    video counts), or one generated with other settings for a purpose of its own."""
    version_file = os.path.join(dataset_dir, _VERSION_FILE)
    found = None
    if os.path.isfile(version_file):
        with open(version_file) as f:
            found = f.read().strip()
    if found != TOY_DATASET_VERSION:
        logger.warning(
            f"Using the synthetic dataset in {dataset_dir}, which is not the current default "
            f"toy dataset (version {TOY_DATASET_VERSION}; {version_file} says "
            f"{found or 'nothing: an older sgnet or other settings'}): its splits and figures "
            "differ from the README's. Delete the folder to have the default generated again."
        )
