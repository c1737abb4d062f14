"""The model knows its classes: checkpoints record the training set's class names, which
VideoPredictor labels with when the config names no test set, and a test set naming other
classes is refused."""
import pytest
import torch
from detectron2.modeling import build_model

from sgnet.checkpoint import SGNetCheckpointer, checkpoint_class_names
from sgnet.config_checks import training_classes
from sgnet.data import register_ytvis_instances
from sgnet.errors import InvalidInput
from sgnet.predictor import VideoPredictor

from data_fixtures import reregistered, write_tiny_ytvis
from model_fixtures import tiny_cfg

CLASSES = {"names": ["cat", "dog", "fish"], "dataset_ids": [3, 7, 11]}


@pytest.fixture
def weights(tmp_path):
    """A 3-class toy model's checkpoint recording the tiny dataset's classes, and one recording none."""
    torch.manual_seed(0)
    model = build_model(tiny_cfg(**{"MODEL.SGNET.NUM_CLASSES": 3}))
    SGNetCheckpointer(model, str(tmp_path), classes=CLASSES).save("with_classes")
    SGNetCheckpointer(model, str(tmp_path)).save("without_classes")
    return {name: str(tmp_path / f"{name}.pth") for name in ("with_classes", "without_classes")}


def predictor_cfg(weights: str, test=()):
    return tiny_cfg(**{"MODEL.SGNET.NUM_CLASSES": 3, "MODEL.WEIGHTS": weights, "DATASETS.TEST": test, "TEST.CLASSES_PER_TRACK": 1})


def test_training_classes_are_the_loaded_files_in_label_order(tmp_path):
    tiny = write_tiny_ytvis(str(tmp_path / "tiny"))
    with reregistered(["mine_train"]):
        register_ytvis_instances("mine_train", {}, tiny.json_file, tiny.image_root)
        cfg = tiny_cfg(**{"DATASETS.TRAIN": ("mine_train",)})
        assert training_classes(cfg) is None  # not loaded: unknown
        from detectron2.data import DatasetCatalog

        DatasetCatalog.get("mine_train")
        assert training_classes(cfg) == CLASSES


def test_the_checkpoints_classes_label_without_a_test_set(weights):
    loaded = SGNetCheckpointer(build_model(predictor_cfg(""))).load(weights["with_classes"])
    assert checkpoint_class_names(loaded) == CLASSES["names"]
    assert VideoPredictor(predictor_cfg(weights["with_classes"])).class_names == CLASSES["names"]
    assert VideoPredictor(predictor_cfg(weights["without_classes"])).class_names is None


def test_a_test_set_with_the_same_classes_is_used_and_other_classes_are_refused(weights, tmp_path):
    tiny = write_tiny_ytvis(str(tmp_path / "tiny"))
    content = tiny.copy_content()
    content["categories"][1]["name"] = "wolf"
    other = tmp_path / "other.json"
    other.write_text(__import__("json").dumps(content))
    with reregistered(["mine_val", "other_val"]):
        register_ytvis_instances("mine_val", {}, tiny.json_file, tiny.image_root)
        register_ytvis_instances("other_val", {}, str(other), tiny.image_root)
        # Not loaded yet: its classes are read from its file.
        assert VideoPredictor(predictor_cfg(weights["with_classes"], ("mine_val",))).class_names == CLASSES["names"]
        with pytest.raises(InvalidInput) as error:
            VideoPredictor(predictor_cfg(weights["with_classes"], ("other_val",)))
        assert str(error.value) == (
            f"DATASETS.TEST 'other_val' and {weights['with_classes']} name their classes differently "
            "(class 1 is 'dog' in one and 'wolf' in the other): the model's labels would mean other classes; "
            "leave DATASETS.TEST empty to use the model's"
        )
        # A checkpoint without classes takes the test set's.
        assert VideoPredictor(predictor_cfg(weights["without_classes"], ("other_val",))).class_names == ["cat", "wolf", "fish"]


def test_a_checkpoint_recording_another_class_count_than_the_model_is_refused(weights):
    """Its classifier would not load (detectron2 skips a shape mismatch): labels of a random head."""
    with pytest.raises(InvalidInput) as error:
        VideoPredictor(tiny_cfg(**{"MODEL.SGNET.NUM_CLASSES": 2, "MODEL.WEIGHTS": weights["with_classes"], "DATASETS.TEST": (), "TEST.CLASSES_PER_TRACK": 1}))
    assert str(error.value).startswith(f"{weights['with_classes']} records 3 classes (cat, dog, fish) but MODEL.SGNET.NUM_CLASSES is 2")
