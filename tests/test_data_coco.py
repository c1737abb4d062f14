"""COCO images as pseudo clip pairs: the category tables, the coco_* splits on files written by the
synthetic COCO generator, the pseudo-pair mapper and the training loader over it."""

import copy
import json
import os

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

import sgnet
from data_fixtures import BACKGROUND, COLOR_TOLERANCE, assert_instances_match_image, reregistered
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T
from detectron2.data.datasets.builtin_meta import COCO_CATEGORIES
from sgnet.data import (
    COCOPseudoPairMapper,
    build_sgnet_train_loader,
    is_image_dataset,
    load_coco_json_mapped,
)
from sgnet.data.datasets import builtin
from sgnet.data.datasets.builtin import OVIS_CLASSES, YTVIS_2019_CLASSES, YTVIS_2021_CLASSES
from sgnet.data.datasets.coco_mapping import (
    COCO_MAPPINGS,
    COCO_TO_OVIS,
    COCO_TO_YTVIS_2019,
    COCO_TO_YTVIS_2021,
)
from sgnet.data.synthetic import SYNTHETIC_COCO_CATEGORIES, generate_synthetic_coco
from sgnet.errors import InvalidInput, MissingInput

COCO_SPLITS = ("coco_ytvis_2019_train", "coco_ytvis_2021_train", "coco_ovis_train")
# What each split must make of the generator's categories, written out here by hand (official
# COCO id -> target contiguous id): person and car are kept, the computer mouse (74) is not.
EXPECTED_TARGET_IDS = {
    "coco_ytvis_2019_train": {1: 0, 3: 5},  # person, sedan
    "coco_ytvis_2021_train": {1: 25, 3: 4},  # person, car
    "coco_ovis_train": {1: 0, 3: 24},  # Person, Vehical
}
SMALL = dict(num_images=16, height=96, width=160, seed=5)


# ---------------------------------------------------------------------------------------------
# Category tables
# ---------------------------------------------------------------------------------------------
def test_tables_map_coco_categories_to_target_classes():
    coco_names = {c["name"] for c in COCO_CATEGORIES if c["isthing"]}
    assert len(coco_names) == 80
    for mapping, classes in (
        (COCO_TO_YTVIS_2019, YTVIS_2019_CLASSES),
        (COCO_TO_YTVIS_2021, YTVIS_2021_CLASSES),
        (COCO_TO_OVIS, OVIS_CLASSES),
    ):
        assert set(mapping) <= coco_names
        assert set(mapping.values()) <= set(classes)
    assert COCO_MAPPINGS == {
        "ytvis_2019": COCO_TO_YTVIS_2019,
        "ytvis_2021": COCO_TO_YTVIS_2021,
        "ovis": COCO_TO_OVIS,
    }


def test_tables_follow_meaning_not_spelling():
    assert (COCO_TO_YTVIS_2019["car"], COCO_TO_YTVIS_2021["car"]) == ("sedan", "car")
    assert COCO_TO_YTVIS_2019["motorcycle"] == COCO_TO_YTVIS_2021["motorcycle"] == "motorbike"
    assert COCO_TO_YTVIS_2021["frisbee"] == "flying_disc"
    assert [COCO_TO_OVIS[n] for n in ("car", "bus", "truck")] == ["Vehical"] * 3
    # Same or near spelling, other things: the computer mouse, a toy, a bicycle, skis.
    for mapping in COCO_MAPPINGS.values():
        assert "mouse" not in mapping and "teddy bear" not in mapping and "bird" not in mapping
    for mapping in (COCO_TO_YTVIS_2019, COCO_TO_YTVIS_2021):
        assert "bicycle" not in mapping and "skis" not in mapping and "bus" not in mapping
    assert COCO_TO_OVIS["bicycle"] == "Bicycle"
    # Classes COCO has no category for get nothing.
    assert not {"ape", "monkey", "hand", "giant_panda"} & set(COCO_TO_YTVIS_2019.values())


# ---------------------------------------------------------------------------------------------
# The synthetic COCO generator
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    """A datasets root holding coco/ as written by the generator."""
    root = tmp_path_factory.mktemp("datasets")
    generate_synthetic_coco(str(root / "coco"), **SMALL)
    return root


@pytest.fixture(scope="module")
def coco_json(datasets_dir):
    with open(datasets_dir / "coco" / "annotations" / "instances_train2017.json") as f:
        return json.load(f)


def test_generator_writes_the_official_layout_and_encodings(datasets_dir, coco_json):
    assert coco_json["categories"] == list(SYNTHETIC_COCO_CATEGORIES)
    images = coco_json["images"]
    assert [i["id"] for i in images] == list(range(1, 17))
    for image in images:
        assert image["file_name"] == f"{image['id']:012d}.jpg"
        frame = cv2.imread(str(datasets_dir / "coco" / "train2017" / image["file_name"]))
        assert frame.shape == (image["height"], image["width"], 3) == (96, 160, 3)
    annotations = coco_json["annotations"]
    assert [a["id"] for a in annotations] == list(range(1, len(annotations) + 1))
    for a in annotations:
        segmentation = a["segmentation"]
        if a["iscrowd"]:  # uncompressed RLE, as COCO stores crowds
            assert sum(segmentation["counts"]) == 96 * 160 and segmentation["size"] == [96, 160]
            rle = mask_util.frPyObjects(segmentation, 96, 160)
        else:  # polygons
            assert all(len(p) >= 6 and len(p) % 2 == 0 for p in segmentation)
            rle = mask_util.merge(mask_util.frPyObjects(segmentation, 96, 160))
        assert a["area"] == mask_util.area(rle) > 0
        np.testing.assert_allclose(a["bbox"], mask_util.toBbox(rle), atol=0.01)
    # What the loader must drop is there: crowds, the unmapped category, images without objects
    # or with unmapped objects only.
    kinds = {(a["category_id"], a["iscrowd"]) for a in annotations}
    assert {(1, 0), (3, 0), (74, 0)} <= kinds and any(crowd for _, crowd in kinds)
    assert len(_mapped_objects(coco_json, {1: 0, 3: 0})) < len(images)


def test_generator_is_a_pure_function_of_its_arguments(datasets_dir, tmp_path):
    again = generate_synthetic_coco(str(tmp_path / "coco"), **SMALL)
    other = generate_synthetic_coco(str(tmp_path / "other"), **dict(SMALL, seed=6))
    written = datasets_dir / "coco" / "annotations" / "instances_train2017.json"
    assert open(again["json_file"], "rb").read() == written.read_bytes()
    assert open(other["json_file"], "rb").read() != written.read_bytes()
    first = "000000000001.jpg"
    assert (tmp_path / "coco" / "train2017" / first).read_bytes() == (
        datasets_dir / "coco" / "train2017" / first
    ).read_bytes()


def test_cli_writes_a_coco_split(tmp_path, capsys):
    from sgnet.data import synthetic

    synthetic.main([str(tmp_path / "coco"), "--coco-images", "3", "--height", "48", "--width", "80"])
    json_file = tmp_path / "coco" / "annotations" / "instances_train2017.json"
    assert f"json_file: {json_file}" in capsys.readouterr().out
    content = json.loads(json_file.read_text())
    assert [(i["height"], i["width"]) for i in content["images"]] == [(48, 80)] * 3
    assert (tmp_path / "coco" / "train2017" / "000000000003.jpg").is_file()
    assert not (tmp_path / "coco" / "train.json").exists()  # no video split


# ---------------------------------------------------------------------------------------------
# The coco_* splits
# ---------------------------------------------------------------------------------------------
def _mapped_objects(coco_json, target_ids: dict) -> dict:
    """image id -> sorted [(annotation id, target category id)] of the objects a split must keep:
    non-crowd, of a category in ``target_ids`` (COCO id -> target id); images without any left
    out. Computed from the json alone."""
    kept = {}
    for a in coco_json["annotations"]:
        if not a["iscrowd"] and a["category_id"] in target_ids:
            kept.setdefault(a["image_id"], []).append((a["id"], target_ids[a["category_id"]]))
    return {image_id: sorted(objects) for image_id, objects in kept.items()}


def _objects_by_image(records) -> dict:
    """image id -> sorted [(annotation id, category id)] of loaded records."""
    return {
        r["image_id"]: sorted((o["id"], o["category_id"]) for o in r["annotations"])
        for r in records
    }


@pytest.fixture
def coco_splits_under(monkeypatch):
    """Registers the coco_* splits again as ``import sgnet`` does, under a $DETECTRON2_DATASETS
    the test sets; the original registration is restored afterwards."""

    def register(root):
        monkeypatch.setenv("DETECTRON2_DATASETS", str(root))
        for name in set(COCO_SPLITS) & set(DatasetCatalog.list()):  # a second root replaces the first
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        builtin.register_all_coco_mapped(builtin.datasets_root())

    with reregistered(COCO_SPLITS):
        yield register


@pytest.mark.parametrize("split", COCO_SPLITS)
def test_generated_folder_loads_with_exactly_the_mapped_objects(
    split, datasets_dir, coco_json, coco_splits_under
):
    coco_splits_under(datasets_dir)
    records = DatasetCatalog.get(split)
    expected = _mapped_objects(coco_json, EXPECTED_TARGET_IDS[split])
    assert _objects_by_image(records) == expected
    assert len(records) == len(expected) < len(coco_json["images"])  # images left empty skipped
    annotations = {a["id"]: a for a in coco_json["annotations"]}
    for record in records:
        assert record["file_name"] == os.path.join(
            str(datasets_dir), "coco", "train2017", f"{record['image_id']:012d}.jpg"
        )
        assert (record["height"], record["width"]) == (96, 160)
        for obj in record["annotations"]:  # detectron2's standard instance dicts
            source = annotations[obj["id"]]
            assert obj["segmentation"] == source["segmentation"] and obj["bbox"] == source["bbox"]
            assert obj["iscrowd"] == 0 and obj["bbox_mode"] == 1  # BoxMode.XYWH_ABS
    # The metadata is the target dataset's, for the model, evaluator and visualizer.
    classes = {
        "coco_ytvis_2019_train": YTVIS_2019_CLASSES,
        "coco_ytvis_2021_train": YTVIS_2021_CLASSES,
        "coco_ovis_train": OVIS_CLASSES,
    }
    assert MetadataCatalog.get(split).thing_classes == list(classes[split])
    assert is_image_dataset(split) and not is_image_dataset("ytvis_2019_train")
    assert not [name for name in MetadataCatalog.list() if "coco_categories" in name]


def test_categories_are_matched_by_name_whatever_their_ids(datasets_dir, coco_json, tmp_path):
    renumbered = copy.deepcopy(coco_json)
    new_ids = {1: 40, 3: 7, 74: 2}
    for category in renumbered["categories"]:
        category["id"] = new_ids[category["id"]]
    for a in renumbered["annotations"]:
        a["category_id"] = new_ids[a["category_id"]]
    json_file = tmp_path / "renumbered.json"
    json_file.write_text(json.dumps(renumbered))
    records = load_coco_json_mapped(
        str(json_file),
        str(datasets_dir / "coco" / "train2017"),
        COCO_TO_YTVIS_2019,
        YTVIS_2019_CLASSES,
    )
    assert _objects_by_image(records) == _mapped_objects(coco_json, {1: 0, 3: 5})


def test_coco_split_without_files_says_where_and_how(coco_splits_under, tmp_path):
    coco_splits_under(tmp_path / "empty")
    with pytest.raises(FileNotFoundError) as error:
        DatasetCatalog.get("coco_ovis_train")
    message = str(error.value)
    assert os.path.join("coco", "annotations", "instances_train2017.json") in message
    assert "https://cocodataset.org/#download" in message and "DETECTRON2_DATASETS" in message


def test_mapping_to_classes_the_target_lacks_is_refused(datasets_dir):
    with pytest.raises(ValueError, match=r"mapped classes \['mouse'\] are not target classes"):
        load_coco_json_mapped("unused.json", str(datasets_dir), {"mouse": "mouse"}, OVIS_CLASSES)


# ---------------------------------------------------------------------------------------------
# The pseudo-pair mapper, on a hand-drawn image
# ---------------------------------------------------------------------------------------------
# annotation id: (COCO category id, BGR colour, polygon rectangle x0, y0, x1, y1)
SCENE_OBJECTS = {
    501: (1, (0, 0, 230), (8, 10, 32, 34)),  # person, upper left
    502: (3, (0, 220, 0), (48, 30, 76, 56)),  # car, lower right
    503: (17, (230, 0, 0), (0, 54, 6, 60)),  # cat, in the bottom-left corner
}
SCENE_TARGET_IDS = {501: 0, 502: 5, 503: 13}  # person, sedan, cat in YouTube-VIS 2019
COLORS = {i: color for i, (_, color, _) in SCENE_OBJECTS.items()}


def write_scene(root) -> dict:
    """Writes scene.png, one 60 x 80 image (id 7) with its objects painted exactly where their
    polygons rasterise, and scene.json describing it; returns the json's content."""
    image = np.full((60, 80, 3), BACKGROUND, np.uint8)
    annotations = []
    for annotation_id, (category_id, color, (x0, y0, x1, y1)) in SCENE_OBJECTS.items():
        polygon = [[x0, y0, x1, y0, x1, y1, x0, y1]]
        rle = mask_util.merge(mask_util.frPyObjects(polygon, 60, 80))
        image[mask_util.decode(rle).astype(bool)] = color
        bbox = [float(v) for v in mask_util.toBbox(rle)]
        annotations.append(
            {"id": annotation_id, "image_id": 7, "category_id": category_id, "iscrowd": 0,
             "segmentation": polygon, "area": float(mask_util.area(rle)), "bbox": bbox}
        )  # fmt: skip
    cv2.imwrite(str(root / "scene.png"), image)
    content = {
        "images": [{"id": 7, "file_name": "scene.png", "height": 60, "width": 80}],
        "annotations": annotations,
        "categories": [c for c in COCO_CATEGORIES if c["id"] in (1, 3, 17)],
    }
    (root / "scene.json").write_text(json.dumps(content))
    return content


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """The scene image loaded as a coco_ytvis_2019 record."""
    root = tmp_path_factory.mktemp("scene")
    write_scene(root)
    (record,) = load_coco_json_mapped(
        str(root / "scene.json"), str(root), COCO_TO_YTVIS_2019, YTVIS_2019_CLASSES
    )
    return record


# ---------------------------------------------------------------------------------------------
# Bad COCO files: one line naming the file, the image or annotation and the problem
# ---------------------------------------------------------------------------------------------
def _rle_not_covering_the_image(content):
    # the runs of a 60 x 81 image under the file's size 60 x 80, on a non-crowd object
    wider = mask_util.encode(np.zeros((60, 81), np.uint8, order="F"))
    content["annotations"][0]["segmentation"] = {"size": [60, 80], "counts": wider["counts"].decode()}


def _image_without_height(content):
    del content["images"][0]["height"]


def _annotation_without_bbox(content):
    del content["annotations"][1]["bbox"]


def _polygon_of_two_points(content):
    content["annotations"][2]["segmentation"] = [[0, 54, 6, 60]]


def _unknown_image(content):
    content["annotations"][1]["image_id"] = 8


BAD_COCO = [
    (_rle_not_covering_the_image,
     "annotation 501 (image 7): malformed compressed RLE: runs add up to 4860, not 60*80"),
    (_image_without_height, "image #0 (id 7): lacks 'height'"),
    (_annotation_without_bbox, "annotation 502 (image 7): lacks 'bbox'"),
    (_polygon_of_two_points,
     "annotation 503 (image 7): polygon 0 is not a list of at least 3 (x, y) points (an even "
     "number >= 6 of numbers): [0, 54, 6, 60]"),
    (_unknown_image, "annotation 502 (image 8): image_id 8 is not in the file's 'images'"),
]


@pytest.mark.parametrize("corrupt, problem", BAD_COCO, ids=[c.__name__ for c, _ in BAD_COCO])
def test_bad_coco_file_names_file_id_and_problem(tmp_path, corrupt, problem):
    content = write_scene(tmp_path)
    corrupt(content)
    json_file = tmp_path / "bad.json"
    json_file.write_text(json.dumps(content))
    with pytest.raises(InvalidInput) as error:
        load_coco_json_mapped(str(json_file), str(tmp_path), COCO_TO_YTVIS_2019, YTVIS_2019_CLASSES)
    assert str(error.value) == f"{json_file}: {problem}"


def test_missing_coco_file_is_named(tmp_path):
    json_file = tmp_path / "instances_absent.json"
    with pytest.raises(MissingInput) as error:
        load_coco_json_mapped(str(json_file), str(tmp_path), COCO_TO_YTVIS_2019, YTVIS_2019_CLASSES)
    assert str(error.value) == f"{json_file}: no such file"


def make_mapper(flip_probability=0.0, scale_range=(1.0, 1.3), max_translation=0.1, short_edge=60):
    return COCOPseudoPairMapper(
        augmentations=[
            T.ResizeShortestEdge(short_edge, 1000, "choice"),
            T.RandomFlip(prob=flip_probability),
        ],
        image_format="BGR",
        scale_range=scale_range,
        max_translation=max_translation,
    )


def test_pair_has_the_video_pair_format(scene):
    np.random.seed(0)
    sample = make_mapper(short_edge=120)(scene)
    assert set(sample) == {"video_id", "height", "width", "file_names", "image", "instances"}
    assert (sample["video_id"], sample["height"], sample["width"]) == (7, 60, 80)
    assert sample["file_names"] == [scene["file_name"]] * 2
    for image, instances in zip(sample["image"], sample["instances"]):
        assert image.dtype == torch.uint8 and image.shape == (3, 120, 160)
        assert instances.image_size == (120, 160)
        assert instances.gt_classes.dtype == instances.gt_ids.dtype == torch.int64
        assert not instances.gt_crowd.any()


def test_identities_and_classes_agree_across_frames_and_follow_the_image(scene):
    mapper = make_mapper(scale_range=(1.0, 1.5), max_translation=0.2)
    np.random.seed(1)
    for _ in range(20):
        sample = mapper(scene)
        for image, instances in zip(sample["image"], sample["instances"]):
            ids = instances.gt_ids.tolist()
            assert len(set(ids)) == len(ids) and set(ids) <= set(SCENE_OBJECTS)
            # the identity is the annotation id in both frames, with its own class
            assert {i: c for i, c in zip(ids, instances.gt_classes.tolist())} == {
                i: SCENE_TARGET_IDS[i] for i in ids
            }
            assert_instances_match_image(image, instances, COLORS)
        # 501 and 502 are far from the borders: no view loses them
        assert all({501, 502} <= set(i.gt_ids.tolist()) for i in sample["instances"])


def test_view_is_a_crop_zoomed_back_to_the_image_size(scene):
    """Zoom 1.25, no translation: both frames show the central 48 x 64 crop, scaled by 1.25;
    masks and boxes move with the image."""
    np.random.seed(2)
    sample = make_mapper(scale_range=(1.25, 1.25), max_translation=0.0)(scene)
    key, ref = sample["instances"]
    assert torch.equal(sample["image"][0], sample["image"][1])
    assert torch.equal(key.gt_masks.tensor, ref.gt_masks.tensor)
    assert key.gt_ids.tolist() == [501, 502]  # the crop (x 8..72, y 6..54) leaves 503 out
    # 501 covers x 8..32, y 10..34 (inclusive of pycocotools' rasterisation), the crop starts
    # at (8, 6): scaled by 1.25 -> x 0..30, y 5..35 (nearest-neighbour resize: +-1 pixel)
    np.testing.assert_allclose(key.gt_boxes.tensor[0].tolist(), [0, 5, 31.25, 36.25], atol=1.3)
    # 502 (x 48..76, y 30..56) is cut by the crop's right and bottom edges (x 72, y 54)
    np.testing.assert_allclose(key.gt_boxes.tensor[1].tolist(), [50, 30, 80, 60], atol=1.3)
    assert_instances_match_image(sample["image"][0], key, COLORS)


def test_object_cropped_out_of_one_frame_is_absent_there_only(scene):
    mapper = make_mapper(scale_range=(1.3, 1.5), max_translation=0.2)
    found = 0
    for seed in range(40):
        np.random.seed(seed)
        sample = mapper(scene)
        present = [503 in instances.gt_ids.tolist() for instances in sample["instances"]]
        if present[0] == present[1]:
            continue
        found += 1
        for image, instances, has_503 in zip(sample["image"], sample["instances"], present):
            assert_instances_match_image(image, instances, COLORS)
            blue = (image.float() - torch.tensor(COLORS[503])[:, None, None]).abs().amax(0)
            # no pixel of the corner object's colour where it is absent
            assert bool((blue < COLOR_TOLERANCE).any()) == has_503
            assert {501, 502} <= set(instances.gt_ids.tolist())
    assert found >= 3


def test_both_frames_get_the_same_flip(scene):
    mapper = make_mapper(flip_probability=0.5)
    np.random.seed(3)
    sides = []
    for _ in range(16):
        key, ref = mapper(scene)["instances"]
        # 501 lies in the left third of the image: on the right when flipped
        left = [i.gt_boxes.tensor[i.gt_ids == 501][0, 0].item() < 40 for i in (key, ref)]
        assert left[0] == left[1]
        sides.append(left[0])
    assert set(sides) == {True, False}
    np.random.seed(4)
    flipped = make_mapper(flip_probability=1.0, scale_range=(1.0, 1.0))(scene)
    np.random.seed(4)
    unflipped = make_mapper(flip_probability=0.0, scale_range=(1.0, 1.0))(scene)
    for a, b, image_a, image_b in zip(
        unflipped["instances"], flipped["instances"], unflipped["image"], flipped["image"]
    ):
        assert torch.equal(image_b, image_a.flip(-1))
        assert torch.equal(b.gt_masks.tensor, a.gt_masks.tensor.flip(-1))
        x0, y0, x1, y1 = a.gt_boxes.tensor.unbind(1)
        assert torch.equal(b.gt_boxes.tensor, torch.stack([80 - x1, y0, 80 - x0, y1], 1))


def test_views_stay_inside_the_image_within_the_configured_ranges():
    mapper = make_mapper(scale_range=(1.1, 1.4), max_translation=0.05)
    np.random.seed(5)
    zooms, shifts = [], []
    for _ in range(200):
        crop, resize = mapper.draw_view(100, 200).transforms
        assert (resize.h, resize.w, resize.new_h, resize.new_w) == (crop.h, crop.w, 100, 200)
        assert 0 <= crop.x0 <= 200 - crop.w and 0 <= crop.y0 <= 100 - crop.h
        zooms.append(200 / crop.w)
        shifts.append(abs(crop.x0 + crop.w / 2 - 100) / 200)
        assert abs(100 / crop.h - zooms[-1]) < 0.02  # the aspect ratio is kept
    assert 1.1 - 0.01 < min(zooms) < 1.15 and 1.35 < max(zooms) < 1.4 + 0.01
    assert max(shifts) <= 0.05 + 0.5 / 200 and max(shifts) > 0.04


def test_from_config_reads_the_pseudo_pair_keys(scene):
    cfg = get_cfg()
    sgnet.add_sgnet_config(cfg)
    pseudo_pair = cfg.INPUT.PSEUDO_PAIR
    assert (tuple(pseudo_pair.SCALE), pseudo_pair.MAX_TRANSLATION) == ((1.0, 1.3), 0.1)
    cfg.INPUT.PSEUDO_PAIR.SCALE = (1.1, 1.2)
    cfg.INPUT.PSEUDO_PAIR.MAX_TRANSLATION = 0.05
    cfg.INPUT.MIN_SIZE_TRAIN = (90,)
    cfg.INPUT.FORMAT = "RGB"
    mapper = COCOPseudoPairMapper(cfg, True)
    assert (mapper.scale_range, mapper.max_translation) == ((1.1, 1.2), 0.05)
    assert mapper.image_format == "RGB"
    assert [type(a) for a in mapper.augmentations.augs] == [T.ResizeShortestEdge, T.RandomFlip]
    np.random.seed(6)
    assert mapper(scene)["image"][0].shape == (3, 90, 120)
    with pytest.raises(ValueError, match="scale_range must be 1 <= low <= high"):
        make_mapper(scale_range=(0.8, 1.2))
    with pytest.raises(ValueError, match=r"max_translation must be in \[0, 0.5\]"):
        make_mapper(max_translation=0.7)


def test_image_of_the_wrong_size_names_image_and_path(scene):
    with pytest.raises(
        ValueError, match=r"image 7 \(.*scene.png\) is 60x80 but the annotation file says 61x80"
    ):
        make_mapper()(dict(scene, height=61))


# ---------------------------------------------------------------------------------------------
# Training loader and model
# ---------------------------------------------------------------------------------------------
def _train_cfg(*datasets):
    from model_fixtures import tiny_cfg

    cfg = tiny_cfg()
    cfg.MODEL.SGNET.NUM_CLASSES = 40
    cfg.DATASETS.TRAIN = datasets
    cfg.DATASETS.TEST = ()  # the toy test split has 3 classes, not the 40 of YouTube-VIS
    cfg.DATALOADER.NUM_WORKERS = 0
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.INPUT.MIN_SIZE_TRAIN = (96, 96)  # the toy config samples a range
    return cfg


def test_training_loader_and_model_take_pseudo_pairs(datasets_dir, coco_splits_under):
    """train_net's loader gives pseudo pairs of a coco_* split, and the model trains on them with
    every loss, the tracking loss included."""
    from detectron2.modeling import build_model
    from detectron2.utils.events import EventStorage

    coco_splits_under(datasets_dir)
    cfg = _train_cfg("coco_ytvis_2019_train")
    batch = next(iter(build_sgnet_train_loader(cfg)))
    assert len(batch) == 2
    for sample in batch:
        assert [tuple(i.shape) for i in sample["image"]] == [(3, 96, 160)] * 2
        assert set(torch.cat([i.gt_classes for i in sample["instances"]]).tolist()) <= {0, 5}
    torch.manual_seed(0)
    model = build_model(cfg)
    model.train()
    with EventStorage():
        losses = model(batch)
    assert {"loss_fcos_cls", "loss_mask", "loss_track"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_track"] > 0
    with pytest.raises(ValueError, match="mixes image datasets .*coco_ytvis_2019_train.* video"):
        build_sgnet_train_loader(_train_cfg("coco_ytvis_2019_train", "sgnet_toy_train"))
