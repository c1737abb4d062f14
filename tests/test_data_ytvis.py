"""Loading and registering YouTube-VIS-format files (sgnet.data.datasets)."""

import json
import logging
import os
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest

import sgnet  # noqa: F401  (compat layer and registration before detectron2 is used)
from data_fixtures import CATEGORIES, encode_uncompressed_rle, write_tiny_ytvis
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from sgnet.data import (
    get_ytvis_dataset_dicts,
    load_ytvis_json,
    mask_to_uncompressed_rle,
    register_ytvis_instances,
    segmentation_to_mask,
)
from sgnet.errors import InvalidInput
from sgnet.data.datasets.builtin import (
    OVIS_CLASSES,
    YTVIS_2019_CLASSES,
    YTVIS_2021_CLASSES,
    builtin_metadata,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_tiny_ytvis(str(tmp_path_factory.mktemp("tiny")))


@pytest.fixture
def dataset_name():
    """A fresh dataset name, unregistered afterwards."""
    name = f"test_ytvis_{uuid.uuid4().hex[:8]}"
    yield name
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    MetadataCatalog.remove(name)


def test_load_counts_videos_frames_and_objects(tiny):
    dicts = load_ytvis_json(tiny.json_file, tiny.image_root)
    assert [d["video_id"] for d in dicts] == [1, 2, 3]
    assert [(d["height"], d["width"], d["length"]) for d in dicts] == [
        (48, 64, 4),
        (40, 56, 3),
        (32, 40, 5),
    ]
    for d in dicts:
        assert len(d["file_names"]) == len(d["annotations"]) == d["length"]
        assert all(os.path.isabs(p) and os.path.isfile(p) for p in d["file_names"])
    assert dicts[0]["file_names"][1] == os.path.join(
        os.path.abspath(tiny.image_root), "clip_a/00005.jpg"
    )
    objects_per_frame = [
        [sorted(o["id"] for o in frame) for frame in d["annotations"]] for d in dicts
    ]
    assert objects_per_frame == [
        [[101, 103], [101, 102, 103], [101, 102, 103], [101, 103]],  # 102 is null in frames 0, 3
        [[201], [201], [201]],
        [[], [], [], [], []],
    ]


def test_contiguous_category_ids_and_metadata(tiny, dataset_name):
    dicts = load_ytvis_json(tiny.json_file, tiny.image_root, dataset_name)
    metadata = MetadataCatalog.get(dataset_name)
    assert metadata.thing_classes == ["cat", "dog", "fish"]
    assert metadata.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1, 11: 2}
    assert len(metadata.thing_colors) == 3
    categories = {
        o["id"]: o["category_id"] for d in dicts for frame in d["annotations"] for o in frame
    }
    assert categories == {101: 0, 102: 1, 103: 2, 201: 2}


def test_objects_round_trip_exactly(tiny):
    dicts = load_ytvis_json(tiny.json_file, tiny.image_root)
    checked = 0
    for d in dicts:
        for t, frame in enumerate(d["annotations"]):
            for obj in frame:
                expected = tiny.masks[(d["video_id"], obj["id"], t)]
                mask = segmentation_to_mask(obj["segmentation"], d["height"], d["width"])
                np.testing.assert_array_equal(mask.astype(bool), expected)
                ys, xs = np.nonzero(expected)
                assert obj["bbox"] == [
                    xs.min(),
                    ys.min(),
                    xs.max() - xs.min() + 1,
                    ys.max() - ys.min() + 1,
                ]
                assert obj["bbox_mode"] == BoxMode.XYWH_ABS
                assert obj["iscrowd"] == (obj["id"] == 103)
                checked += 1
    assert checked == 10 + 3


def test_segmentation_is_kept_as_given(tiny):
    """Uncompressed RLE (the official encoding), compressed RLE and polygons pass through."""
    video_2 = load_ytvis_json(tiny.json_file, tiny.image_root)[1]
    encodings = [frame[0]["segmentation"] for frame in video_2["annotations"]]
    assert isinstance(encodings[0]["counts"], str)
    assert isinstance(encodings[1], list) and len(encodings[1][0]) == 8
    assert isinstance(encodings[2]["counts"], list)


def test_uncompressed_rle_encoder_matches_reference():
    rng = np.random.default_rng(0)
    masks = [rng.uniform(size=(7, 5)) > 0.5 for _ in range(20)]
    masks += [np.ones((3, 4), bool), np.zeros((3, 4), bool)]
    for mask in masks:
        rle = mask_to_uncompressed_rle(mask)
        assert rle == encode_uncompressed_rle(mask)
        np.testing.assert_array_equal(segmentation_to_mask(rle, *mask.shape).astype(bool), mask)
    # column-major, zeros first: column 0 is [1, 0], column 1 is [1, 1]
    assert mask_to_uncompressed_rle(np.array([[1, 1], [0, 1]]))["counts"] == [0, 1, 1, 2]


def test_file_without_annotations_gives_videos_only(tmp_path):
    unannotated = write_tiny_ytvis(str(tmp_path), annotated=False)
    dicts = load_ytvis_json(unannotated.json_file, unannotated.image_root)
    assert len(dicts) == 3 and all("annotations" not in d for d in dicts)
    assert sum(d["length"] for d in dicts) == 12


def test_register_sets_metadata_and_reads_nothing(tiny, tmp_path, dataset_name):
    missing_json = str(tmp_path / "absent.json")
    register_ytvis_instances(dataset_name, {}, missing_json, str(tmp_path / "absent"))
    metadata = MetadataCatalog.get(dataset_name)
    assert (metadata.json_file, metadata.evaluator_type) == (missing_json, "ytvis")
    with pytest.raises(FileNotFoundError, match="absent.json"):
        DatasetCatalog.get(dataset_name)


def test_registered_dataset_loads_with_json_categories(tiny, dataset_name):
    register_ytvis_instances(dataset_name, {}, tiny.json_file, tiny.image_root)
    assert len(DatasetCatalog.get(dataset_name)) == 3
    metadata = MetadataCatalog.get(dataset_name)
    assert metadata.thing_classes == ["cat", "dog", "fish"]
    assert metadata.image_root == tiny.image_root


def test_json_categories_override_registered_ones(tiny, dataset_name, caplog):
    register_ytvis_instances(
        dataset_name, builtin_metadata(YTVIS_2019_CLASSES), tiny.json_file, tiny.image_root
    )
    with caplog.at_level(logging.WARNING):
        DatasetCatalog.get(dataset_name)
    assert "differ from those registered" in caplog.text
    metadata = MetadataCatalog.get(dataset_name)
    assert metadata.thing_classes == ["cat", "dog", "fish"]
    assert len(metadata.thing_colors) == 3
    assert metadata.json_file == tiny.json_file and metadata.evaluator_type == "ytvis"


def test_builtin_splits_are_registered_with_official_categories():
    expected = {
        "ytvis_2019_train": YTVIS_2019_CLASSES,
        "ytvis_2019_val": YTVIS_2019_CLASSES,
        "ytvis_2021_train": YTVIS_2021_CLASSES,
        "ytvis_2021_val": YTVIS_2021_CLASSES,
        "ytvis_2022_val": YTVIS_2021_CLASSES,
        "ovis_train": OVIS_CLASSES,
        "ovis_val": OVIS_CLASSES,
    }
    for name, classes in expected.items():
        metadata = MetadataCatalog.get(name)
        assert metadata.thing_classes == list(classes) and metadata.evaluator_type == "ytvis"
        assert metadata.thing_dataset_id_to_contiguous_id == {i + 1: i for i in range(len(classes))}
    assert (len(YTVIS_2019_CLASSES), len(YTVIS_2021_CLASSES), len(OVIS_CLASSES)) == (40, 40, 25)
    assert set(YTVIS_2019_CLASSES) != set(YTVIS_2021_CLASSES)
    assert MetadataCatalog.get("ytvis_2019_train").json_file.endswith(
        os.path.join("ytvis_2019", "train.json")
    )
    assert {"sgnet_toy_train", "sgnet_toy_val"} <= set(DatasetCatalog.list())


def test_builtin_split_without_files_says_where_and_how(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the default datasets root is relative: ./datasets
    with pytest.raises(FileNotFoundError) as error:
        DatasetCatalog.get("ytvis_2021_train")
    message = str(error.value)
    assert os.path.join("ytvis_2021", "train.json") in message
    assert "https://youtube-vos.org/dataset/vis/" in message and "DETECTRON2_DATASETS" in message
    with pytest.raises(FileNotFoundError, match="songbai.site/ovis"):
        DatasetCatalog.get("ovis_val")


# ---------------------------------------------------------------------------------------------
# Bad input: each case names the file, the video / annotation and the frame.
# ---------------------------------------------------------------------------------------------
def _annotation(content, track_id):
    return next(a for a in content["annotations"] if a["id"] == track_id)


def _unknown_video(content):
    _annotation(content, 201)["video_id"] = 99


def _unknown_category(content):
    _annotation(content, 102)["category_id"] = 5


def _segmentations_too_short(content):
    _annotation(content, 101)["segmentations"].pop()


def _bboxes_too_long(content):
    _annotation(content, 101)["bboxes"].append(None)


def _segmentations_missing(content):
    del _annotation(content, 201)["segmentations"]


def _box_entirely_outside(content):
    _annotation(content, 101)["bboxes"][2] = [70.0, 6.0, 10.0, 16.0]


def _mask_size_differs(content):
    _annotation(content, 101)["segmentations"][1] = encode_uncompressed_rle(
        np.zeros((10, 10), bool)
    )


def _rle_counts_wrong(content):
    _annotation(content, 101)["segmentations"][3]["counts"].append(5)


def _compressed_rle_counts_wrong(content):
    # the runs of a 40 x 57 frame (2280 pixels) under the video's size 40 x 56
    wider_frame = mask_util.encode(np.zeros((40, 57), np.uint8, order="F"))
    _annotation(content, 201)["segmentations"][0]["counts"] = wider_frame["counts"].decode()


def _bad_polygon(content):
    _annotation(content, 201)["segmentations"][1] = [[1, 2, 3, 4]]


def _box_without_mask(content):
    _annotation(content, 102)["bboxes"][0] = [1.0, 1.0, 4.0, 4.0]


def _length_differs(content):
    content["videos"][0]["length"] = 5


def _duplicate_video(content):
    content["videos"][2]["id"] = 1


def _video_without_size(content):
    del content["videos"][1]["height"]


def _not_ytvis(content):
    content.pop("videos")


BAD_ANNOTATIONS = [
    (_unknown_video, "annotation 201 refers to video_id 99, which is not in the file's 'videos'"),
    (
        _unknown_category,
        "annotation 102 of video 1: category_id 5 is not among the file's categories [3, 7, 11]",
    ),
    (
        _segmentations_too_short,
        "annotation 101 of video 1: 'segmentations' has 3 entries, the video has 4 frames",
    ),
    (_bboxes_too_long, "annotation 101 of video 1: 'bboxes' has 5 entries, the video has 4 frames"),
    (_segmentations_missing, "annotation 201 of video 2: 'segmentations' is missing or not a list"),
    (
        _box_entirely_outside,
        "annotation 101 of video 1, frame 2 (clip_a/00010.jpg): bbox [70.0, 6.0, 10.0, 16.0] lies "
        "entirely outside the 64x48 (width x height) frame",
    ),
    (
        _mask_size_differs,
        "annotation 101 of video 1, frame 1 (clip_a/00005.jpg): RLE size [10, 10] differs from "
        "the video's [48, 64]",
    ),
    (
        _rle_counts_wrong,
        "annotation 101 of video 1, frame 3 (clip_a/00015.jpg): malformed uncompressed RLE: runs "
        "add up to 3077, not 48*64",
    ),
    (
        _compressed_rle_counts_wrong,
        "annotation 201 of video 2, frame 0 (clip_b/00000.jpg): malformed compressed RLE: runs "
        "add up to 2280, not 40*56",
    ),
    (
        _bad_polygon,
        "annotation 201 of video 2, frame 1 (clip_b/00005.jpg): polygon 0 is not a list of at "
        "least 3 (x, y) points (an even number >= 6 of numbers): [1, 2, 3, 4]",
    ),
    (
        _box_without_mask,
        "annotation 102 of video 1, frame 0 (clip_a/00000.jpg): bbox [1.0, 1.0, 4.0, 4.0] given "
        "without a segmentation",
    ),
    (_length_differs, "video #0 (id 1): 'length' is 5 but the video lists 4 file_names"),
    (_duplicate_video, "video #2 (id 1): video id 1 appears more than once"),
    (_video_without_size, "video #1 (id 2): lacks 'height'"),
    (_not_ytvis, ": not a YouTube-VIS annotation file"),
]


@pytest.mark.parametrize("corrupt, message", BAD_ANNOTATIONS)
def test_bad_annotations_raise_naming_file_video_and_frame(tiny, corrupt, message):
    content = tiny.copy_content()
    corrupt(content)
    path = tiny.write_variant(content, f"{corrupt.__name__}.json")
    with pytest.raises(InvalidInput) as error:
        load_ytvis_json(path, tiny.image_root)
    assert str(error.value).startswith(f"{path}: ")  # the file first, then video, annotation, frame
    assert message in str(error.value)


def test_malformed_json_names_file_and_position(tiny, tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"videos": [1, 2,')
    with pytest.raises(InvalidInput, match=rf"{path}: not valid JSON \(Expecting .*line 1 column"):
        load_ytvis_json(str(path), tiny.image_root)


def test_missing_frames_are_counted_and_the_first_named(tmp_path):
    dataset = write_tiny_ytvis(str(tmp_path))
    os.remove(os.path.join(dataset.image_root, "clip_b", "00005.jpg"))
    os.remove(os.path.join(dataset.image_root, "clip_c", "00020.jpg"))
    with pytest.raises(FileNotFoundError) as error:
        load_ytvis_json(dataset.json_file, dataset.image_root)
    expected_path = os.path.join(dataset.image_root, "clip_b", "00005.jpg")
    assert (
        f"2 frames listed in {dataset.json_file} are missing on disk; "
        f"first: video 2 frame 1: {expected_path}" in str(error.value)
    )


def test_missing_image_folder(tiny, tmp_path):
    with pytest.raises(
        FileNotFoundError, match=f"Image folder {tmp_path / 'nowhere'} .* does not exist"
    ):
        load_ytvis_json(tiny.json_file, str(tmp_path / "nowhere"))


def test_boxes_partly_outside_are_clipped_with_a_counted_warning(tiny, caplog):
    content = tiny.copy_content()
    _annotation(content, 101)["bboxes"][0] = [-3.0, 6.0, 19.0, 16.0]
    _annotation(content, 103)["bboxes"][1] = [44.0, 2.0, 30.0, 12.0]
    path = tiny.write_variant(content, "outside.json")
    with caplog.at_level(logging.WARNING):
        dicts = load_ytvis_json(path, tiny.image_root)
    assert f"{path}: 2 boxes extend beyond their frame and were clipped to it" in caplog.text
    boxes = {o["id"]: o["bbox"] for o in dicts[0]["annotations"][0]}
    assert boxes[101] == [0.0, 6.0, 16.0, 16.0]
    assert {o["id"]: o["bbox"] for o in dicts[0]["annotations"][1]}[103] == [44.0, 2.0, 20.0, 12.0]


def test_empty_boxes_are_absent_with_a_counted_warning(tiny, caplog):
    content = tiny.copy_content()
    _annotation(content, 102)["bboxes"][1] = [36.0, 24.0, 0.0, 20.0]
    path = tiny.write_variant(content, "empty_box.json")
    with caplog.at_level(logging.WARNING):
        dicts = load_ytvis_json(path, tiny.image_root)
    assert f"{path}: 1 object-frames have an empty box" in caplog.text
    assert sorted(o["id"] for o in dicts[0]["annotations"][1]) == [101, 103]


def test_boxes_are_derived_from_masks_when_the_file_has_none(tiny):
    content = tiny.copy_content()
    for annotation in content["annotations"]:
        del annotation["bboxes"]
    dicts = load_ytvis_json(tiny.write_variant(content, "no_boxes.json"), tiny.image_root)
    original = load_ytvis_json(tiny.json_file, tiny.image_root)
    assert [[[o["bbox"] for o in f] for f in d["annotations"]] for d in dicts] == [
        [[o["bbox"] for o in f] for f in d["annotations"]] for d in original
    ]


# ---------------------------------------------------------------------------------------------
# Training dataset dicts
# ---------------------------------------------------------------------------------------------
def test_training_dicts_drop_videos_without_trainable_objects(tiny, dataset_name):
    register_ytvis_instances(dataset_name, {}, tiny.json_file, tiny.image_root)
    dicts = get_ytvis_dataset_dicts(dataset_name)
    assert [d["video_id"] for d in dicts] == [1, 2]  # video 3 has no object
    assert len(get_ytvis_dataset_dicts([dataset_name], filter_empty=False)) == 3


def test_training_dicts_of_a_dataset_without_objects_raise(tiny, dataset_name):
    content = tiny.copy_content()
    content["annotations"] = [a for a in content["annotations"] if a["id"] == 103]  # crowd only
    register_ytvis_instances(
        dataset_name, {}, tiny.write_variant(content, "crowd_only.json"), tiny.image_root
    )
    with pytest.raises(ValueError, match="No video in .* has a frame with a non-crowd object"):
        get_ytvis_dataset_dicts(dataset_name)


def test_training_dicts_of_an_unannotated_split_raise(tmp_path, dataset_name):
    unannotated = write_tiny_ytvis(str(tmp_path), annotated=False)
    register_ytvis_instances(dataset_name, {}, unannotated.json_file, unannotated.image_root)
    with pytest.raises(
        ValueError, match="3 videos of .* have no annotations .* cannot be used for training"
    ):
        get_ytvis_dataset_dicts(dataset_name)


def test_categories_json_is_trusted_over_order_in_file(tiny):
    content = tiny.copy_content()
    content["categories"] = list(reversed(CATEGORIES))
    dicts = load_ytvis_json(tiny.write_variant(content, "reversed.json"), tiny.image_root)
    assert dicts[0]["annotations"][1][1]["category_id"] == 1  # dog: id 7 is the 2nd smallest
    assert json.loads(open(tiny.json_file).read())["categories"] == CATEGORIES
