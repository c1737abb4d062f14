"""sgnet in one process with another VIS plugin that registers the same dataset names
(``ytvis_2019_train``, ...), as Mask2Former's ``mask2former_video`` does: see the docstring of
:mod:`sgnet.data.datasets.builtin`. Each case runs in a fresh interpreter, because the order of
the imports is what is tested."""

import json
import os
import subprocess
import sys
import textwrap

from detectron2.data import DatasetCatalog, MetadataCatalog

from sgnet.data.datasets.builtin import ALIAS_PREFIX
from sgnet.data.synthetic import generate_synthetic_ytvis

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SGNET_SPLITS = (
    "ytvis_2019_train", "ytvis_2019_val", "ytvis_2021_train", "ytvis_2021_val", "ytvis_2022_val",
    "ovis_train", "ovis_val", "coco_ytvis_2019_train", "coco_ytvis_2021_train", "coco_ovis_train",
)  # fmt: skip
# What the other plugin registers, as the subprocesses' code.
OTHER_PLUGIN = """
from detectron2.data import DatasetCatalog, MetadataCatalog

def other_loader():
    return [{"loaded_by": "other plugin"}]

def register_other_plugin():
    DatasetCatalog.register("ytvis_2019_train", other_loader)
    MetadataCatalog.get("ytvis_2019_train").set(thing_classes=["other"], evaluator_type="other")
"""
# What the subprocesses print: what each name means once both are imported.
REPORT = """
import json
from sgnet.data.datasets.builtin import datasets_root

print(json.dumps({
    "plain": DatasetCatalog.get("ytvis_2019_train"),
    "plain_classes": MetadataCatalog.get("ytvis_2019_train").thing_classes,
    "alias": [d["file_names"][0] for d in DatasetCatalog.get("sgnet_ytvis_2019_train")],
    "alias_evaluator": MetadataCatalog.get("sgnet_ytvis_2019_train").evaluator_type,
    "ytvis_2019_val": MetadataCatalog.get("ytvis_2019_val").get("json_file"),
    "root": datasets_root(),
}))
"""


def _run(tmp_path, code: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (this one's environment), under a $DETECTRON2_DATASETS
    holding a two-video ytvis_2019 train split: the synthetic generator writes exactly the
    YouTube-VIS layout (``train.json``, ``train/JPEGImages/<video>/``)."""
    root = tmp_path / "datasets"
    generate_synthetic_ytvis(
        str(root / "ytvis_2019"), num_train_videos=2, num_val_videos=0, num_frames=2, height=48, width=80
    )  # fmt: skip
    env = dict(os.environ, DETECTRON2_DATASETS=str(root))
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _check_report(result, tmp_path, ytvis_2019_val_is_sgnets: bool):
    report = json.loads(result.stdout.strip().splitlines()[-1])
    root = tmp_path / "datasets"
    assert report["root"] == str(root)
    assert report["plain"] == [{"loaded_by": "other plugin"}]
    assert report["plain_classes"] == ["other"]  # the other plugin's metadata, untouched
    image_root = root / "ytvis_2019" / "train" / "JPEGImages"
    assert report["alias"] == [str(image_root / f"train000{i}" / "00000.jpg") for i in (0, 1)]
    assert report["alias_evaluator"] == "ytvis"
    # A name the other plugin left free is sgnet's, unless sgnet gave up its plain names.
    valid_json = str(root / "ytvis_2019" / "valid.json")
    assert report["ytvis_2019_val"] == (valid_json if ytvis_2019_val_is_sgnets else None)


def test_sgnet_imported_after_another_plugin_leaves_its_names_alone(tmp_path):
    result = _run(
        tmp_path,
        OTHER_PLUGIN
        + """
register_other_plugin()
import sgnet
"""
        + REPORT,
    )
    _check_report(result, tmp_path, ytvis_2019_val_is_sgnets=True)
    assert (
        "ytvis_2019_train: registered already by another package, kept as they are; "
        "sgnet's loaders are sgnet_ytvis_2019_train"
    ) in result.stderr


def test_sgnet_imported_first_gives_up_its_plain_names_on_request(tmp_path):
    """detectron2 refuses the other plugin's registration after ``import sgnet``, unless sgnet's
    plain names are unregistered first."""
    result = _run(
        tmp_path,
        OTHER_PLUGIN
        + """
import sgnet
from sgnet.data.datasets.builtin import unregister_plain_names

try:
    register_other_plugin()
except AssertionError as e:
    print("refused:", e)
unregister_plain_names()
register_other_plugin()
"""
        + REPORT,
    )
    assert "refused: Dataset 'ytvis_2019_train' is already registered!" in result.stdout
    _check_report(result, tmp_path, ytvis_2019_val_is_sgnets=False)
    assert "registered already by another package" not in result.stderr


def test_every_split_is_also_registered_under_its_sgnet_name():
    for split in SGNET_SPLITS:
        alias = ALIAS_PREFIX + split
        assert alias in DatasetCatalog.list()
        plain, aliased = MetadataCatalog.get(split), MetadataCatalog.get(alias)
        assert aliased.thing_classes == plain.thing_classes
        assert (aliased.json_file, aliased.image_root) == (plain.json_file, plain.image_root)
        assert aliased.get("image_dataset", False) == split.startswith("coco_")
