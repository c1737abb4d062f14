"""``python -m sgnet.data.convert ytvos``: YouTube-VOS-layout folders (JPEGImages/, indexed PNG
masks, meta.json) -> YouTube-VIS json, checked through the loader and the evaluator, and the
one-line errors for bad sources."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from convert_fixtures import assert_self_ap_is_100, convert_error, loaded_tracks, refused_leaving_files_as_they_were, run_convert
from sgnet.data.convert.ytvos import convert_ytvos

HEIGHT, WIDTH = 32, 48
VOID = 255


def _labels(*objects, void=None) -> np.ndarray:
    """An (H, W) uint8 id image: ``objects`` are (id, x0, y0, x1, y1) rectangles painted in
    order; ``void`` an (x0, y0, x1, y1) rectangle of 255 painted last."""
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    for object_id, x0, y0, x1, y1 in objects:
        labels[y0:y1, x0:x1] = object_id
    if void is not None:
        x0, y0, x1, y1 = void
        labels[y0:y1, x0:x1] = VOID
    return labels


# video -> (PNG mode, {annotated frame: (H, W) object ids}). "bear" has palette PNGs with a void
# region overlapping object 1, object 2 absent from frame 00005; "cars" grayscale PNGs with the
# non-contiguous ids 1 and 3 (3 absent from 00000). JPEGImages holds every frame 00000..00010.
VIDEOS = {
    "bear": ("P", {
        "00000": _labels((1, 2, 2, 20, 30), (2, 30, 4, 46, 12), void=(18, 0, 22, 32)),
        "00005": _labels((1, 4, 2, 22, 30), void=(20, 0, 24, 32)),
        "00010": _labels((1, 6, 2, 24, 30), (2, 28, 8, 44, 16)),
    }),
    "cars": ("L", {
        "00000": _labels((1, 0, 0, 10, 10)),
        "00005": _labels((1, 2, 0, 12, 10), (3, 20, 20, 40, 30)),
        "00010": _labels((1, 4, 0, 14, 10), (3, 22, 20, 42, 30)),
    }),
}  # fmt: skip
# Object 5 of "cars" is in no PNG: listed in meta.json only, it gets no track.
META = {"videos": {
    "bear": {"objects": {"1": {"category": "person", "frames": ["00000"]}, "2": {"category": "dog", "frames": ["00000"]}}},
    "cars": {"objects": {"1": {"category": "car"}, "3": {"category": "person"}, "5": {"category": "zebra"}}},
}}  # fmt: skip
# Category ids: the sorted names numbered from 1.
CATEGORIES = [{"id": 1, "name": "car"}, {"id": 2, "name": "dog"}, {"id": 3, "name": "person"}, {"id": 4, "name": "zebra"}]


def _save_mask(path, labels: np.ndarray, mode: str) -> None:
    image = Image.frombytes(mode, (labels.shape[1], labels.shape[0]), labels.tobytes())
    if mode == "P":
        # A palette whose colours are not the ids: the ids must come from the indices.
        image.putpalette([(7 * i) % 256 for i in range(256 * 3)])
    image.save(path)


@pytest.fixture
def source(tmp_path):
    """SRC with JPEGImages/, Annotations/ and meta.json of VIDEOS and META."""
    for video, (mode, frames) in VIDEOS.items():
        os.makedirs(tmp_path / "JPEGImages" / video)
        os.makedirs(tmp_path / "Annotations" / video)
        for t in range(11):
            Image.new("RGB", (WIDTH, HEIGHT), (90, 90, 90)).save(tmp_path / "JPEGImages" / video / f"{t:05d}.jpg")
        for frame, labels in frames.items():
            _save_mask(tmp_path / "Annotations" / video / f"{frame}.png", labels, mode)
    (tmp_path / "meta.json").write_text(json.dumps(META))
    return tmp_path


def _argv(root, *extra):
    return ["ytvos", str(root), "--output", str(root / "out" / "ytvos.json"), *extra]


def _expected_frames(video: str, category_index) -> list:
    """Per annotated frame of ``video``: {object id: (contiguous class, 0, (H, W) bool mask)}."""
    return [
        {object_id: (category_index(video, object_id), 0, labels == object_id) for object_id in np.unique(labels).tolist() if object_id not in (0, VOID)}
        for labels in VIDEOS[video][1].values()
    ]  # fmt: skip


def _assert_frames_equal(loaded: list, expected: list, track_ids: dict) -> None:
    """``loaded`` (by track id) is ``expected`` (by object id), ``track_ids``: object id -> the
    one track id the object has in every frame."""
    assert len(loaded) == len(expected)
    for loaded_frame, expected_frame in zip(loaded, expected):
        assert sorted(loaded_frame) == sorted(track_ids[object_id] for object_id in expected_frame)
        for object_id, (category, iscrowd, mask) in expected_frame.items():
            got_category, got_iscrowd, got_mask = loaded_frame[track_ids[object_id]]
            assert (got_category, got_iscrowd) == (category, iscrowd)
            np.testing.assert_array_equal(got_mask, mask)


def test_converts_masks_ids_classes_and_null_frames(source, capsys):
    summary = run_convert(_argv(source), capsys)
    assert summary == {"json": str(source / "out" / "ytvos.json"), "image_root": str(source / "JPEGImages"),
                       "videos": 2, "annotations": 4, "categories": 4}  # fmt: skip
    content = json.loads((source / "out" / "ytvos.json").read_text())
    assert content["categories"] == CATEGORIES
    assert [v["file_names"] for v in content["videos"]] == [[f"{video}/{frame}.jpg" for frame in VIDEOS[video][1]] for video in VIDEOS]
    assert [(v["height"], v["width"]) for v in content["videos"]] == [(HEIGHT, WIDTH)] * 2
    # Tracks in video order, objects by id: bear 1, bear 2, cars 1, cars 3.
    assert [(a["video_id"], a["category_id"]) for a in content["annotations"]] == [(1, 3), (1, 2), (2, 1), (2, 3)]
    assert content["annotations"][1]["segmentations"][1] is None  # bear's dog is absent from 00005
    assert content["annotations"][3]["segmentations"][0] is None  # the cars' person from 00000
    assert content["annotations"][0]["areas"] == [16 * 28, 16 * 28, 18 * 28]  # the void cut out of it

    contiguous = {"car": 0, "dog": 1, "person": 2}
    def category_index(video, object_id):  # noqa: E306
        return contiguous[META["videos"][video]["objects"][str(object_id)]["category"]]
    bear, cars = loaded_tracks(summary)
    _assert_frames_equal(bear, _expected_frames("bear", category_index), {1: 1, 2: 2})
    _assert_frames_equal(cars, _expected_frames("cars", category_index), {1: 3, 3: 4})
    assert_self_ap_is_100(summary)


def test_category_option_names_every_object(source, capsys):
    os.remove(source / "meta.json")
    summary = run_convert(_argv(source, "--category", "thing"), capsys)
    content = json.loads((source / "out" / "ytvos.json").read_text())
    assert content["categories"] == [{"id": 1, "name": "thing"}]
    bear, cars = loaded_tracks(summary)
    _assert_frames_equal(bear, _expected_frames("bear", lambda video, object_id: 0), {1: 1, 2: 2})
    _assert_frames_equal(cars, _expected_frames("cars", lambda video, object_id: 0), {1: 3, 3: 4})


def test_logs_progress(source, capsys, caplog):
    with caplog.at_level("INFO", logger="sgnet.data.convert.ytvos"):
        convert_ytvos(str(source), str(source / "out" / "ytvos.json"))
    assert f"{source}: 2/2 videos read" in caplog.text


def _write_mask(video, frame, labels, mode="L"):
    def edit(root):
        _save_mask(root / "Annotations" / video / f"{frame}.png", labels, mode)
    return edit


def _rgb_mask(root):
    Image.new("RGB", (WIDTH, HEIGHT), (1, 0, 0)).save(root / "Annotations" / "cars" / "00005.png")


def _remove(relative):
    def edit(root):
        os.remove(root / relative)
    return edit


def _empty_video_folder(root):
    os.makedirs(root / "Annotations" / "empty")


def _jpeg_of_another_size(root):
    Image.new("RGB", (WIDTH + 2, HEIGHT), (90, 90, 90)).save(root / "JPEGImages" / "cars" / "00010.jpg")


# name -> (edit of the source, the message's expected text, with {src} the source folder)
BAD_SOURCES = {
    "mask_of_another_size": (
        _write_mask("bear", "00005", np.zeros((HEIGHT - 1, WIDTH), np.uint8), "P"),
        "{src}/Annotations/bear/00005.png: the mask is 48x31 but its frame {src}/JPEGImages/bear/00005.jpg is 48x32",
    ),
    "image_missing": (
        _remove("JPEGImages/cars/00005.jpg"),
        "{src}/Annotations/cars/00005.png: the annotated frame has no image {src}/JPEGImages/cars/00005.jpg",
    ),
    "frames_of_two_sizes": (
        _jpeg_of_another_size,
        "{src}/JPEGImages/cars/00010.jpg: the frame is 50x32 but the video's first frame cars/00000.jpg is 48x32",
    ),
    "object_without_category": (
        _write_mask("cars", "00010", _labels((7, 0, 0, 4, 4))),
        "{src}/meta.json: video cars has no category for object id 7 (found in {src}/Annotations/cars/00010.png)",
    ),
    "rgb_mask": (
        _rgb_mask,
        "{src}/Annotations/cars/00005.png: is a PNG image of mode RGB, not an 8-bit single-channel",
    ),
    "video_folder_without_png": (_empty_video_folder, "{src}/Annotations/empty: the video's folder holds no mask PNGs"),
    "no_annotations_folder": (
        lambda root: os.rename(root / "Annotations", root / "masks"),
        "{src}: has no Annotations/ folder (the YouTube-VOS layout is",
    ),
    "no_images_folder": (lambda root: os.rename(root / "JPEGImages", root / "frames"), "{src}: has no JPEGImages/ folder"),
    "no_meta_and_no_category": (_remove("meta.json"), "{src}: has no meta.json naming the objects' categories; pass --category NAME"),
    "meta_without_category": (
        lambda root: (root / "meta.json").write_text(json.dumps({"videos": {"bear": {"objects": {"1": {"frames": []}}}}})),
        "{src}/meta.json: video bear object 1 has no 'category' name; pass --category NAME",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_SOURCES))
def test_bad_source_is_one_line_naming_the_file(source, capsys, name):
    edit, message = BAD_SOURCES[name]
    edit(source)
    error = convert_error(_argv(source), capsys, absent=source / "out")
    assert message.format(src=source).replace("/", os.sep) in error


def test_missing_source_folder(tmp_path, capsys):
    error = convert_error(["ytvos", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out.json")], capsys, absent=tmp_path / "out.json")
    assert f"{tmp_path / 'nowhere'}: no such folder" in error


@pytest.mark.parametrize("relative", ["meta.json", "Annotations/bear/00000.png", "JPEGImages/cars/00000.jpg", "Annotations"])
def test_output_over_a_source_file_is_refused(source, capsys, relative):
    target = source / relative
    error = refused_leaving_files_as_they_were(["ytvos", str(source), "--output", str(target)], capsys, source)
    assert f"--output {target}" in error


def test_unpadded_frame_numbers_are_in_number_order(tmp_path, capsys):
    """0.png, 5.png, 10.png: frame 5 before frame 10 (name order would put 10 second)."""
    for folder in ("JPEGImages/clip", "Annotations/clip"):
        os.makedirs(tmp_path / folder)
    for t in (0, 5, 10):
        Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "JPEGImages" / "clip" / f"{t}.jpg")
        _save_mask(tmp_path / "Annotations" / "clip" / f"{t}.png", _labels((1, t, 0, t + 8, 8)), "L")
    summary = run_convert(_argv(tmp_path, "--category", "thing"), capsys)
    written = json.loads(open(summary["json"]).read())
    assert written["videos"][0]["file_names"] == ["clip/0.jpg", "clip/5.jpg", "clip/10.jpg"]
    (frames,) = loaded_tracks(summary)
    assert [int(np.nonzero(objects[1][2])[1].min()) for objects in frames] == [0, 5, 10]


def test_binary_masks_of_0_and_255_are_refused_with_the_reason(tmp_path, capsys):
    """255 is void: a 0/255 mask has no object, and converting it to nothing would be silent."""
    for folder in ("JPEGImages/clip", "Annotations/clip"):
        os.makedirs(tmp_path / folder)
    Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "JPEGImages" / "clip" / "00000.jpg")
    _save_mask(tmp_path / "Annotations" / "clip" / "00000.png", _labels(void=(0, 0, 10, 10)), "L")
    error = convert_error(_argv(tmp_path, "--category", "thing"), capsys, absent=tmp_path / "out")
    assert "no mask PNG holds an object id (1-254); a binary mask of 0 and 255" in error


@pytest.mark.parametrize("existing", [False, True], ids=["new-with-a-slash", "existing"])
def test_an_output_that_names_a_folder_is_refused_as_one(source, capsys, existing):
    target = source / "out"
    if existing:
        target.mkdir()
    error = convert_error(["ytvos", str(source), "--output", f"{target}{os.sep}"], capsys)
    assert f"--output {target}{os.sep}: is a folder; name the json file to write" in error
    assert target.exists() == existing


def test_a_source_that_is_a_file_or_an_empty_category_is_one_line(source, capsys):
    assert f"{source / 'meta.json'}: not a folder" in convert_error(["ytvos", str(source / "meta.json"), "--output", "x.json"], capsys)
    assert "--category '': name the objects' category" in convert_error(_argv(source, "--category", ""), capsys)
