"""DATASETS.REGISTER: YouTube-VIS-format datasets registered from the config (or the command
line), before anything is built, by every app."""
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

from sgnet.config import load_config
from sgnet.data import register_config_datasets, register_ytvis_instances
from sgnet.errors import InvalidInput, MissingInput

from data_fixtures import reregistered, write_tiny_ytvis
from model_fixtures import REPO_CONFIGS

TOY_CONFIG = str(REPO_CONFIGS / "toy" / "sgnet_R18_toy.yaml")


def _config_registering(*entries: str):
    return load_config(TOY_CONFIG, ["DATASETS.REGISTER", f"({', '.join(entries)},)"])


def test_a_command_line_triple_registers_the_file_once(tmp_path, monkeypatch):
    tiny = write_tiny_ytvis(str(tmp_path / "tiny"))
    monkeypatch.chdir(tmp_path)  # relative paths are relative to the working directory
    cfg = _config_registering("('mine_train', 'tiny/tiny.json', 'tiny/JPEGImages')")
    with reregistered(["mine_train"]):
        assert register_config_datasets(cfg) == ["mine_train"]
        metadata = MetadataCatalog.get("mine_train")
        assert (metadata.json_file, metadata.image_root) == (tiny.json_file, tiny.image_root)
        assert register_config_datasets(cfg) == ["mine_train"]  # every process of a run calls it
        videos = DatasetCatalog.get("mine_train")
        assert [v["video_id"] for v in videos] == [1, 2, 3]
        assert metadata.thing_classes == ["cat", "dog", "fish"]


def test_a_name_registered_with_other_files_or_by_other_code_is_refused(tmp_path):
    tiny = write_tiny_ytvis(str(tmp_path / "tiny"))
    other = write_tiny_ytvis(str(tmp_path / "other"))
    entry = f"('mine_train', '{tiny.json_file}', '{tiny.image_root}')"
    with reregistered(["mine_train", "mine_coco"]):
        register_ytvis_instances("mine_train", {}, other.json_file, other.image_root)
        with pytest.raises(InvalidInput) as error:
            register_config_datasets(_config_registering(entry))
        message = str(error.value)
        assert "'mine_train' is registered already with" in message
        assert other.json_file in message and tiny.json_file in message
        DatasetCatalog.register("mine_coco", lambda: [])
        with pytest.raises(InvalidInput, match="'mine_coco' is registered already, by other code"):
            register_config_datasets(_config_registering(f"('mine_coco', '{tiny.json_file}', '{tiny.image_root}')"))


@pytest.mark.parametrize(
    "entry, error, message",
    [
        ("('mine_train', 'x.json')", InvalidInput, r"DATASETS.REGISTER entry 0 \('mine_train', 'x.json'\): must be \(name, json_file, image_root\)"),
        ("('mine_train', 'no/such.json', '.')", MissingInput, r"DATASETS.REGISTER entry 0 \('mine_train'\): no annotation file .*no/such.json"),
        ("('mine_train', '{json}', 'no/such/folder')", MissingInput, r"no image folder .*no/such/folder"),
    ],
    ids=["two-values", "no-json", "no-image-root"],
)
def test_bad_entries_are_one_line_naming_the_entry(tmp_path, monkeypatch, entry, error, message):
    tiny = write_tiny_ytvis(str(tmp_path / "tiny"))
    monkeypatch.chdir(tmp_path)
    with reregistered(["mine_train"]):
        with pytest.raises(error, match=message):
            register_config_datasets(_config_registering(entry.format(json=tiny.json_file)))
        assert "mine_train" not in DatasetCatalog.list()
