"""``python -m sgnet.data.convert cocovid``: mmdetection / mmtracking COCO-video json -> YouTube-VIS
json, checked through the loader and the evaluator, and the one-line errors for bad sources."""
import copy
import json
import os
from collections import Counter

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest

from convert_fixtures import assert_self_ap_is_100, convert_error, loaded_tracks, run_convert, tracks_as_multiset
from convert_fixtures import refused_leaving_files_as_they_were
from data_fixtures import encode_uncompressed_rle, rectangle_mask

CAT, DOG = 3, 7  # the source's category ids, kept in the output


def _triangle(x0, y0, size) -> list:
    return [[x0, y0, x0 + size, y0, x0, y0 + size]]


def _polygon_mask(polygons, height, width) -> np.ndarray:
    """pycocotools' rasterisation of ``polygons``: what the converted file must hold."""
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects(polygons, height, width))).astype(bool)


def _compressed(mask: np.ndarray) -> dict:
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def _source_content():
    """(the COCO-video content, {video name: (H, W, frame_ids, {(instance, category, iscrowd):
    {frame_id: (H, W) mask}})}).

    clip_a (24x32): polygons; its images listed out of frame order; instance 2 absent from frame
    1. clip_b (20x28): frame_ids 0, 5, 10 (a gap), compressed and uncompressed RLE; instance 4 a
    crowd region in frame 5 only.
    """
    a_polygons = {
        (1, CAT, 0): {t: _triangle(2 + 4 * t, 2, 10) for t in range(3)},
        (2, DOG, 0): {t: [[20, 12, 30, 12, 30, 22, 20, 22], _triangle(16, 2, 5)[0]] for t in (0, 2)},
    }
    b_masks = {
        (3, DOG, 0): {f: rectangle_mask(20, 28, f, 3, f + 9, 15) for f in (0, 5, 10)},
        (4, CAT, 1): {5: rectangle_mask(20, 28, 0, 16, 28, 20)},
    }
    images = [(101, 11, 2), (102, 11, 0), (103, 11, 1), (201, 12, 0), (202, 12, 5), (203, 12, 10)]
    content = {
        "videos": [{"id": 11, "name": "clip_a"}, {"id": 12, "name": "clip_b"}],
        "images": [
            {"id": image_id, "video_id": video_id, "frame_id": frame_id,
             "file_name": f"{'clip_a' if video_id == 11 else 'clip_b'}/{frame_id:05d}.jpg",
             **({"height": 24, "width": 32} if video_id == 11 else {"height": 20, "width": 28})}
            for image_id, video_id, frame_id in images
        ],  # fmt: skip
        "categories": [{"id": CAT, "name": "cat"}, {"id": DOG, "name": "dog"}],
        "annotations": [],
    }
    image_of = {(video_id, frame_id): image_id for image_id, video_id, frame_id in images}

    def annotate(video_id, key, frame_id, segmentation):
        instance_id, category_id, iscrowd = key
        content["annotations"].append({
            "id": len(content["annotations"]) + 1, "image_id": image_of[video_id, frame_id], "video_id": video_id,
            "category_id": category_id, "instance_id": instance_id, "iscrowd": iscrowd,
            "segmentation": segmentation, "bbox": [0, 0, 1, 1], "area": 1,
        })  # fmt: skip

    for key, frames in a_polygons.items():
        for frame_id, polygons in frames.items():
            annotate(11, key, frame_id, polygons)
    for key, frames in b_masks.items():
        for frame_id, mask in frames.items():
            annotate(12, key, frame_id, encode_uncompressed_rle(mask) if frame_id == 5 else _compressed(mask))
    expected = {
        "clip_a": (24, 32, [0, 1, 2], {
            key: {f: _polygon_mask(polygons, 24, 32) for f, polygons in frames.items()}
            for key, frames in a_polygons.items()
        }),
        "clip_b": (20, 28, [0, 5, 10], b_masks),
    }
    return content, expected


CONTENT, EXPECTED = _source_content()


def _write_source(root, content):
    """The json as SRC.json and an image per image entry under ``root/images``."""
    for image in content["images"]:
        path = root / "images" / image["file_name"]
        os.makedirs(path.parent, exist_ok=True)
        assert cv2.imwrite(str(path), np.zeros((image["height"], image["width"], 3), np.uint8))
    (root / "src.json").write_text(json.dumps(content))


def _argv(root):
    return ["cocovid", str(root / "src.json"), "--image-root", str(root / "images"),
            "--output", str(root / "out" / "vis.json")]  # fmt: skip


def _expected_multiset(name: str) -> Counter:
    """The tracks of video ``name`` as :func:`tracks_as_multiset` gives them."""
    _, _, frame_ids, instances = EXPECTED[name]
    contiguous = {CAT: 0, DOG: 1}
    return Counter(
        (contiguous[category_id], iscrowd, tuple(frames[f].tobytes() if f in frames else None for f in frame_ids))
        for (_, category_id, iscrowd), frames in instances.items()
    )


def test_converts_videos_frames_and_instances(tmp_path, capsys):
    _write_source(tmp_path, CONTENT)
    summary = run_convert(_argv(tmp_path), capsys)
    assert summary == {"json": str(tmp_path / "out" / "vis.json"), "image_root": str(tmp_path / "images"),
                       "videos": 2, "annotations": 4, "categories": 2}  # fmt: skip
    content = json.loads((tmp_path / "out" / "vis.json").read_text())
    assert content["categories"] == [{"id": CAT, "name": "cat"}, {"id": DOG, "name": "dog"}]
    for video, (name, (height, width, frame_ids, _)) in zip(content["videos"], EXPECTED.items()):
        assert video["file_names"] == [f"{name}/{f:05d}.jpg" for f in frame_ids]  # frame_id order
        assert (video["height"], video["width"]) == (height, width)
    videos = loaded_tracks(summary)
    assert tracks_as_multiset(videos[0]) == _expected_multiset("clip_a")
    assert tracks_as_multiset(videos[1]) == _expected_multiset("clip_b")
    assert [len(frame) for frame in videos[0]] == [2, 1, 2]  # instance 2 absent from frame 1
    polygon = EXPECTED["clip_a"][3][1, CAT, 0][0]
    assert 40 <= polygon.sum() <= 70 and polygon[2, 2] and not polygon[11, 11]  # a triangle of side 10
    assert_self_ap_is_100(summary)


def test_file_without_annotations_gives_videos_only(tmp_path, capsys):
    content = copy.deepcopy(CONTENT)
    del content["annotations"]  # mmdetection writes valid/test files so
    _write_source(tmp_path, content)
    summary = run_convert(_argv(tmp_path), capsys)
    assert (summary["videos"], summary["annotations"], summary["categories"]) == (2, 0, 2)


def _annotation(content, annotation_id):
    return next(a for a in content["annotations"] if a["id"] == annotation_id)


def _image(content, image_id):
    return next(i for i in content["images"] if i["id"] == image_id)


def _set(record, key, value):
    def edit(content):
        (_image if record[0] == "image" else _annotation)(content, record[1])[key] = value
    return edit


def _remove_images_of_video(content):
    content["images"] = [i for i in content["images"] if i["video_id"] != 12]
    content["annotations"] = [a for a in content["annotations"] if a["video_id"] != 12]


def _one_mask_of_another_size(content):
    _annotation(content, 6)["segmentation"] = _compressed(rectangle_mask(24, 32, 0, 0, 4, 4))


def _truncated_rle(content):
    _annotation(content, 6)["segmentation"]["counts"] += "P"


def _uncompressed_rle_too_short(content):
    _annotation(content, 7)["segmentation"]["counts"].pop()


# Annotations: 1-3 instance 1 (clip_a frames 0-2), 4-5 instance 2 (frames 0, 2), 6-8 instance 3
# (clip_b frames 0, 5, 10; 7 uncompressed), 9 instance 4 (crowd, frame 5).
# Images: #0 101 (clip_a frame 2), #1 102 (frame 0), #2 103 (frame 1), #3-#5 201-203 (clip_b).
BAD_SOURCES = {
    "unknown_video": (_set(("image", 103), "video_id", 99),
                      "image #2 (id 103): video_id 99 is not in the file's 'videos'"),
    "frame_id_twice": (_set(("image", 103), "frame_id", 0),
                       "image #2 (id 103): frame_id 0 is also image 102's, of the same video"),
    "images_of_two_sizes": (_set(("image", 103), "width", 30),
                            "image #2 (id 103): the image is 30x24 but image 102 of the same video is 32x24"),
    "unknown_image": (_set(("annotation", 2), "image_id", 999),
                      "annotation #1 (id 2): image_id 999 is not in the file's 'images'"),
    "two_categories": (_set(("annotation", 3), "category_id", DOG),
                       "annotation #2 (id 3): instance_id 1 has category_id 7 here but 3 in annotation 1"),
    "crowd_and_not": (_set(("annotation", 8), "iscrowd", 1),
                      "annotation #7 (id 8): instance_id 3 has iscrowd 1 here but 0 in annotation 6"),
    "twice_in_an_image": (_set(("annotation", 3), "image_id", 102),
                          "annotation #2 (id 3): instance_id 1 has another annotation in image 102"),
    "unknown_category": (_set(("annotation", 9), "category_id", 99),
                         "annotation #8 (id 9) (instance_id 4): category id 99 has no category (known ids: 3, 7)"),
    "null_segmentation": (_set(("annotation", 4), "segmentation", None),
                          "annotation #3 (id 4): 'segmentation' must be polygons"),
    "polygon_of_two_points": (_set(("annotation", 5), "segmentation", [[1, 1, 9, 9]]),
                              "annotation #4 (id 5): polygon 0 is not a list of at least 3 (x, y) points"),
    "truncated_rle": (_truncated_rle, "annotation #5 (id 6): malformed compressed RLE"),
    "uncompressed_rle_too_short": (_uncompressed_rle_too_short,
                                   "annotation #6 (id 7): malformed uncompressed RLE: runs add up to"),
    "mask_of_another_size": (_one_mask_of_another_size,
                             "annotation #5 (id 6): RLE size [24, 32] differs from the video's [20, 28]"),
    "video_without_images": (_remove_images_of_video, "video #1 (id 12): the video has no images"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_SOURCES))
def test_bad_source_is_one_line_naming_file_and_record(tmp_path, capsys, name):
    content = copy.deepcopy(CONTENT)
    edit, message = BAD_SOURCES[name]
    edit(content)
    _write_source(tmp_path, content)
    error = convert_error(_argv(tmp_path), capsys, absent=tmp_path / "out")
    assert f"{tmp_path / 'src.json'}: {message}" in error


def test_missing_image_file_is_named(tmp_path, capsys):
    _write_source(tmp_path, CONTENT)
    os.remove(tmp_path / "images" / "clip_b" / "00005.jpg")
    error = convert_error(_argv(tmp_path), capsys)
    image = tmp_path / "images" / "clip_b" / "00005.jpg"
    assert f"src.json: video #1 (id 12): frame clip_b/00005.jpg has no image {image}" in error
    assert not (tmp_path / "out").exists()


def test_logs_progress(tmp_path, capsys, caplog):
    _write_source(tmp_path, CONTENT)
    with caplog.at_level("INFO"):
        run_convert(_argv(tmp_path), capsys)
    assert f"{tmp_path / 'src.json'}: 2/2 videos converted" in caplog.text


@pytest.mark.parametrize("target", ["src.json", "images/clip_a/00000.jpg", "images/notes.txt"])
def test_output_over_the_source_or_a_file_in_the_image_root_is_refused(tmp_path, capsys, target):
    _write_source(tmp_path, CONTENT)
    (tmp_path / "images" / "notes.txt").write_text("the user's")
    argv = _argv(tmp_path)
    argv[argv.index("--output") + 1] = str(tmp_path / target)
    assert f"--output {tmp_path / target}" in refused_leaving_files_as_they_were(argv, capsys, tmp_path)


def test_output_anywhere_in_the_image_root_is_refused(tmp_path, capsys):
    """The frames' folder is never written to, so a rerun of the same command is refused the
    same way (not written once, then refused as a file of the user's)."""
    _write_source(tmp_path, CONTENT)
    argv = _argv(tmp_path)
    argv[argv.index("--output") + 1] = str(tmp_path / "images" / "train.json")
    assert "is inside the image root" in convert_error(argv, capsys, absent=tmp_path / "images" / "train.json")


def test_a_segmentation_covering_no_pixel_is_refused(tmp_path, capsys):
    """Written as absent, it would be ground truth no prediction can match (AP below 100 for a
    perfect model)."""
    content = copy.deepcopy(CONTENT)
    content["annotations"][0]["segmentation"] = [[100, 100, 200, 100, 200, 200]]  # outside the frame
    _write_source(tmp_path, content)
    assert "covers no pixel of the 32x24 frame" in convert_error(_argv(tmp_path), capsys, absent=tmp_path / "out")


def test_a_source_without_videos_is_refused(tmp_path, capsys):
    _write_source(tmp_path, {**CONTENT, "videos": [], "images": [], "annotations": []})
    assert "the source holds no videos" in convert_error(_argv(tmp_path), capsys, absent=tmp_path / "out")


def test_an_output_that_cannot_be_written_is_one_line(tmp_path, capsys):
    _write_source(tmp_path, CONTENT)
    argv = _argv(tmp_path)
    argv[argv.index("--output") + 1] = str(tmp_path / "src.json" / "out.json")  # a parent that is a file
    assert "cannot write it" in convert_error(argv, capsys)
