"""``python -m sgnet.data.convert mots``: MOTS text files -> YouTube-VIS json, checked through the
loader and the evaluator, and the one-line errors for bad sources."""
import json
import os
from collections import Counter

import cv2
import numpy as np
import pycocotools.mask as mask_util
import pytest

from convert_fixtures import assert_self_ap_is_100, convert_error, loaded_tracks, run_convert, tracks_as_multiset
from convert_fixtures import refused_leaving_files_as_they_were
from data_fixtures import rectangle_mask

HEIGHT, WIDTH = 24, 32
CAR, PEDESTRIAN, IGNORE = 1, 2, 10


def _box(x0, y0, x1, y1, height=HEIGHT, width=WIDTH) -> np.ndarray:
    return rectangle_mask(height, width, x0, y0, x1, y1)


def _rle(mask: np.ndarray) -> str:
    return mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()


# Sequence -> (image file names, {object id: {frame: mask}}); object ids are class * 1000 + k.
# 0000 is KITTI-like (PNG from 000000, frame 4 has no annotation), 0001 MOTSChallenge-like (JPG
# from 000001). The pedestrian of 0000 is absent from frame 2, the one of 0001 from frames 1 and 4.
SEQUENCES = {
    "0000": (
        [f"{t:06d}.png" for t in range(5)],
        {
            1001: {t: _box(2 + 3 * t, 4, 12 + 3 * t, 14) for t in range(4)},
            2001: {t: _box(20, 2 + t, 26, 20) for t in (0, 1, 3)},
            10000: {1: _box(0, 18, 8, 24)},  # an ignore region
        },
    ),
    "0001": (
        [f"{t:06d}.jpg" for t in range(1, 5)],
        {
            1005: {t: _box(0, 0, 4 * t, 6) for t in range(1, 5)},
            2002: {t: _box(10, 10, 10 + t, 22) for t in (2, 3)},
        },
    ),
}


def _lines(objects: dict) -> list:
    """The MOTS lines of ``objects``, sorted by frame as the datasets are."""
    rows = [(frame, object_id, mask) for object_id, frames in objects.items() for frame, mask in frames.items()]
    return [
        f"{frame} {object_id} {object_id // 1000} {mask.shape[0]} {mask.shape[1]} {_rle(mask)}"
        for frame, object_id, mask in sorted(rows, key=lambda row: row[0])
    ]


@pytest.fixture
def source(tmp_path):
    """A MOTS dataset: ``instances_txt/<seq>.txt`` and ``images/<seq>/<frame>``."""
    for sequence, (names, objects) in SEQUENCES.items():
        os.makedirs(tmp_path / "images" / sequence)
        for name in names:
            assert cv2.imwrite(str(tmp_path / "images" / sequence / name), np.full((HEIGHT, WIDTH, 3), 90, np.uint8))
        os.makedirs(tmp_path / "instances_txt", exist_ok=True)
        (tmp_path / "instances_txt" / f"{sequence}.txt").write_text("\n".join(_lines(objects)) + "\n")
    return tmp_path


def _argv(root, *extra, src=None):
    return ["mots", str(src or root / "instances_txt"), "--image-root", str(root / "images"),
            "--output", str(root / "out" / "mots.json"), *extra]  # fmt: skip


def _expected_keys(sequence: str) -> Counter:
    names, objects = SEQUENCES[sequence]
    first = int(os.path.splitext(names[0])[0])
    keys = Counter()
    for object_id, frames in objects.items():
        masks = tuple(frames[first + t].tobytes() if first + t in frames else None for t in range(len(names)))
        if object_id // 1000 == IGNORE:  # one crowd track per class: car (0) and pedestrian (1)
            keys[0, 1, masks] += 1
            keys[1, 1, masks] += 1
        else:
            keys[object_id // 1000 - 1, 0, masks] += 1  # contiguous: car 0, pedestrian 1
    return keys


def test_converts_every_frame_object_and_ignore_region(source, capsys):
    summary = run_convert(_argv(source), capsys)
    assert summary == {"json": str(source / "out" / "mots.json"), "image_root": str(source / "images"),
                       "videos": 2, "annotations": 6, "categories": 2}  # fmt: skip
    content = json.loads((source / "out" / "mots.json").read_text())
    assert [v["file_names"] for v in content["videos"]] == [
        [f"{sequence}/{name}" for name in names] for sequence, (names, _) in SEQUENCES.items()
    ]
    assert [(v["height"], v["width"]) for v in content["videos"]] == [(HEIGHT, WIDTH)] * 2
    assert content["categories"] == [{"id": 1, "name": "car"}, {"id": 2, "name": "pedestrian"}]
    videos = loaded_tracks(summary)
    assert tracks_as_multiset(videos[0]) == _expected_keys("0000")
    assert tracks_as_multiset(videos[1]) == _expected_keys("0001")
    assert videos[0][4] == {}  # the image without annotations: a frame without objects
    crowd = [a for a in content["annotations"] if a["iscrowd"]]
    assert sorted(a["category_id"] for a in crowd) == [CAR, PEDESTRIAN]
    assert all(a["video_id"] == 1 and a["areas"] == [None, 48, None, None, None] for a in crowd)
    assert_self_ap_is_100(summary)


def test_one_file_and_named_classes(source, capsys):
    argv = _argv(source, "--classes", "2=person,1=auto", src=source / "instances_txt" / "0001.txt")
    summary = run_convert(argv, capsys)
    assert (summary["videos"], summary["annotations"]) == (1, 2)  # no ignore region: no crowd track
    content = json.loads((source / "out" / "mots.json").read_text())
    assert content["categories"] == [{"id": 1, "name": "auto"}, {"id": 2, "name": "person"}]
    assert tracks_as_multiset(loaded_tracks(summary)[0]) == _expected_keys("0001")


def _replace_line(sequence, number, text):
    def edit(root):
        path = root / "instances_txt" / f"{sequence}.txt"
        lines = path.read_text().splitlines()
        lines[number - 1] = text if isinstance(text, str) else text(lines[number - 1])
        path.write_text("\n".join(lines) + "\n")
    return edit


def _fields(line_index, **values):
    """Edit one field of a line of 0000.txt by name."""
    names = ["frame", "id", "class_id", "height", "width", "rle"]

    def change(line):
        fields = line.split(" ")
        for name, value in values.items():
            fields[names.index(name)] = str(value)
        return " ".join(fields)
    return _replace_line("0000", line_index, change)


def _swap_first_and_last_line(root):
    path = root / "instances_txt" / "0000.txt"
    lines = path.read_text().splitlines()
    lines[0], lines[-1] = lines[-1], lines[0]
    path.write_text("\n".join(lines) + "\n")


def _remove_image(root):
    os.remove(root / "images" / "0001" / "000003.jpg")


# 0000.txt: line 1 frame 0 car 1001, line 2 frame 0 pedestrian 2001, line 3 frame 1 car, ...
BAD_SOURCES = {
    "rle_of_another_size": (_fields(2, rle=_rle(_box(0, 0, 4, 4, HEIGHT, WIDTH - 1))),
                            "0000.txt:2: malformed compressed RLE: runs add up to 744, not 24*32"),
    "truncated_rle": (_fields(1, rle="0P"), "0000.txt:1: malformed compressed RLE"),
    "size_not_the_images": (_fields(1, height=HEIGHT + 1, rle=_rle(_box(0, 0, 4, 4, HEIGHT + 1, WIDTH))),
                            "0000.txt:1: the mask is 32x25 but the sequence's images (0000/000000.png) are 32x24"),
    "frame_backwards": (_swap_first_and_last_line, "0000.txt:2: frame 0 comes after frame 3"),
    "unknown_class": (_fields(2, class_id=3), "0000.txt:2: class id 3 is not among --classes (1, 2)"),
    "two_classes_of_one_id": (_fields(3, class_id=2), "0000.txt:3: object id 1001 has class 2 here but 1 at line 1"),
    "id_twice_in_a_frame": (_fields(2, id=1001, class_id=1), "0000.txt:2: object id 1001 appears twice in frame 0"),
    "field_missing": (_replace_line("0000", 4, "1 2001 2 24 32"), "0000.txt:4: 5 fields, expected 6"),
    "not_an_integer": (_fields(1, frame="0.5"), "0000.txt:1: the first 5 fields must be non-negative integers"),
    "frame_without_image": (_fields(8, frame=7), "0000.txt:8: frame 7 has no image in"),
    "image_missing": (_remove_image, "0001.txt:4: frame 3 has no image in"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD_SOURCES))
def test_bad_source_is_one_line_naming_file_and_line(source, capsys, name):
    edit, message = BAD_SOURCES[name]
    edit(source)
    error = convert_error(_argv(source), capsys, absent=source / "out")
    assert f"{source / 'instances_txt'}{os.sep}{message}" in error


@pytest.mark.parametrize(
    "classes, message",
    [
        ("1car", "'1car' is not CLASS_ID=NAME"),
        ("1=car,10=dontcare", "class id 10 is MOTS' ignore class"),
        ("1=car,1=auto", "class id 1 is named twice"),
    ],
)
def test_bad_classes_are_one_line(source, capsys, classes, message):
    error = convert_error(_argv(source, "--classes", classes), capsys, absent=source / "out")
    assert f"--classes {classes!r}: {message}" in error


def test_missing_sequence_folder_is_named(source, capsys):
    os.rename(source / "images" / "0001", source / "images" / "MOTS20-01")
    error = convert_error(_argv(source), capsys, absent=source / "out")
    assert f"0001.txt: the sequence's image folder {source / 'images' / '0001'} does not exist" in error


def test_logs_a_line_per_sequence(source, capsys, caplog):
    with caplog.at_level("INFO"):
        run_convert(_argv(source), capsys)
    assert "0000.txt: sequence 0000: 5 frames, 2 objects, ignore regions in 1 frames" in caplog.text
    assert "0001.txt: sequence 0001: 4 frames, 2 objects, ignore regions in 0 frames" in caplog.text


@pytest.mark.parametrize("target", ["instances_txt/0000.txt", "images/0000/000000.png"])
def test_output_over_a_sequence_file_or_an_image_is_refused(source, capsys, target):
    argv = _argv(source)
    argv[argv.index("--output") + 1] = str(source / target)
    assert f"--output {source / target}" in refused_leaving_files_as_they_were(argv, capsys, source)


def test_an_image_of_another_size_in_the_sequence_is_refused(source, capsys):
    frames = source / "images" / "0001"
    last = sorted(frames.iterdir())[-1]
    assert cv2.imwrite(str(last), np.zeros((HEIGHT, WIDTH + 2, 3), np.uint8))
    error = convert_error(_argv(source), capsys, absent=source / "out")
    assert f"{last}: the frame is {WIDTH + 2}x{HEIGHT} but the sequence's first frame" in error


def test_two_class_ids_of_one_name_are_refused(source, capsys):
    error = convert_error(_argv(source, "--classes", "1=car,2=car"), capsys, absent=source / "out")
    assert "'car' names two class ids" in error
