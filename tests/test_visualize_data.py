"""tools/visualize_data.py on the tiny YouTube-VIS dataset: the annotated videos and strips, the
training loader's pairs (video pairs and an image dataset's pseudo pairs), the command line, and
a user's mistakes (one line, exit status 2, nothing left behind)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from sgnet.data import VideoFrameReader, generate_synthetic_coco, register_coco_mapped_instances, track_color
from sgnet.data.datasets.builtin import YTVIS_2019_CLASSES, builtin_metadata
from sgnet.data.datasets.coco_mapping import COCO_TO_YTVIS_2019
from sgnet.data.video_writer import HATCH_STRIPE_BGR

from app_fixtures import load_script, run_at_once, summary_line
from app_fixtures import one_error_line as any_error_line
from data_fixtures import BACKGROUND, reregistered, write_tiny_ytvis

REPO = Path(__file__).resolve().parents[1]
TOY_CONFIG = REPO / "configs" / "toy" / "sgnet_R18_toy.yaml"
DATASET = "tiny_visualize_train"
IMAGES = "tiny_visualize_coco"
# H.264 (4:2:0 chroma) changes a flat colour a little from frame to frame; an overlay moves it far.
CODEC_TOLERANCE = 20
# Inside a flat object, JPEG and the loader's resizing move a colour by a few levels (PNG, none).
FLAT_TOLERANCE = 10
# Shorter side resized to exactly 96, without flips: a frame of video 1 (48 x 64) is 96 x 128, one
# of video 2 (40 x 56) 96 x 134; an image (64 x 96) 96 x 144.
RESIZE_TO_96 = [
    "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice", "INPUT.MAX_SIZE_TRAIN", "1000",
]  # fmt: skip


@pytest.fixture(scope="module")
def tool():
    return load_script("tools/visualize_data.py", "sgnet_visualize_data")


@pytest.fixture
def tiny(tmp_path):
    """The tiny dataset, registered by the tool's DATASETS.REGISTER for the test only."""
    with reregistered([DATASET]):
        yield write_tiny_ytvis(str(tmp_path / "data"))


def tool_args(tiny, source, output, *extra, train=DATASET, num_classes=3):
    return [
        "--config-file", str(TOY_CONFIG), "--source", source, "--output", str(output), *extra,
        "DATASETS.REGISTER", f"(('{DATASET}', '{tiny.json_file}', '{tiny.image_root}'),)",
        "DATASETS.TRAIN", f"('{train}',)", "DATASETS.TEST", "()",
        "MODEL.SGNET.NUM_CLASSES", str(num_classes), "TEST.CLASSES_PER_TRACK", "1",
    ]  # fmt: skip


def one_error_line(stderr: str) -> str:
    return any_error_line(stderr, "visualize_data.py", progress="annotations:")


def overlaid(track_id: int, object_bgr) -> np.ndarray:
    """The BGR colour of an object's flat colour under its track's colour at half opacity."""
    return 0.5 * np.array(object_bgr) + 0.5 * 255 * track_color(track_id)[::-1]


def test_annotation_writes_every_frame_with_one_colour_per_identity(tool, tiny, tmp_path, capsys):
    output = tmp_path / "vis"
    assert tool.main(tool_args(tiny, "annotation", output)) == 0
    videos = tiny.content["videos"]
    summary = summary_line(capsys.readouterr().out)
    assert summary == {"output": str(output), "videos": len(videos), "files": 2 * len(videos)}
    expected = {f"{v['id']}{suffix}" for v in videos for suffix in (".mp4", "_strip.png")}
    assert {p.name for p in (output / DATASET).iterdir()} == expected
    frames = {}
    for video in videos:
        reader = VideoFrameReader(str(output / DATASET / f"{video['id']}.mp4"))
        frames[video["id"]] = list(reader)
        assert len(frames[video["id"]]) == video["length"]
        assert (reader.height, reader.width) == (video["height"], video["width"])
        strip = cv2.imread(str(output / DATASET / f"{video['id']}_strip.png"))
        assert strip.shape == (video["height"], min(4, video["length"]) * video["width"], 3)
    # Track 101 (a rectangle moving right in all 4 frames of video 1): the centre of its mask has
    # the same drawn colour in its first and last frame, its own colour under its track's colour
    # at half opacity, far from the grey background.
    drawn = []
    for t in (0, 3):
        ys, xs = np.nonzero(tiny.masks[(1, 101, t)])
        drawn.append(frames[1][t][int(ys.mean()), int(xs.mean())].astype(int))
    assert np.abs(drawn[0] - drawn[1]).max() < CODEC_TOLERANCE
    assert np.abs(drawn[0] - overlaid(101, tiny.colors[101])).max() < CODEC_TOLERANCE
    assert np.abs(drawn[0] - np.array(BACKGROUND)).max() > 3 * CODEC_TOLERANCE
    # Track 103 is a crowd: greyed (no colour in the lossless strip, so neither its own blue nor
    # a label colour) and hatched (stripes of the tool's stripe colour between greyed pixels).
    crowd = cv2.erode(tiny.masks[(1, 103, 0)].astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    pixels = cv2.imread(str(output / DATASET / "1_strip.png"))[:, : videos[0]["width"]][crowd].astype(int)
    raw = cv2.imread(str(Path(tiny.image_root) / videos[0]["file_names"][0]))[crowd].astype(int)
    assert (np.abs(pixels - raw).max(axis=1) > 3 * CODEC_TOLERANCE).all()
    assert (pixels.max(axis=1) - pixels.min(axis=1)).max() <= 2
    striped = (pixels == HATCH_STRIPE_BGR).all(axis=1)
    assert striped.any() and not striped.all()


def test_dataloader_writes_key_and_reference_side_by_side(tool, tiny, tmp_path, capsys):
    output = tmp_path / "vis"
    assert tool.main(tool_args(tiny, "dataloader", output, "--num-pairs", "3", *RESIZE_TO_96)) == 0
    assert summary_line(capsys.readouterr().out) == {"output": str(output), "pairs": 3, "files": 3}
    assert sorted(p.name for p in (output / "dataloader").iterdir()) == ["0.png", "1.png", "2.png"]
    for index in range(3):
        pair = cv2.imread(str(output / "dataloader" / f"{index}.png"))
        assert pair.shape in {(96, 2 * 128, 3), (96, 2 * 134, 3)}


def test_dataloader_pairs_share_identity_colours_and_repeat_with_the_seed(tool, tiny, tmp_path, capsys):
    """Without flips, at twice its size, pixel (28, 35) of any frame of video 1 lies inside track
    101 (original x 16-19 is inside its rectangle in every frame): key and reference show it in
    the same colour. A second run with the same SEED writes the same files."""
    no_flip = [*RESIZE_TO_96, "INPUT.RANDOM_FLIP", "none", "SEED", "3"]
    runs = [tmp_path / "first", tmp_path / "second"]
    for output in runs:
        assert tool.main(tool_args(tiny, "dataloader", output, "--num-pairs", "4", *no_flip)) == 0
    first, second = ([p.read_bytes() for p in sorted((output / "dataloader").iterdir())] for output in runs)
    assert len(first) == 4 and first == second
    video_1_pairs = [
        pair for pair in (cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR) for png in first)
        if pair.shape == (96, 2 * 128, 3)
    ]  # fmt: skip
    assert video_1_pairs, "this seed draws video 1 at least once"
    expected = overlaid(101, tiny.colors[101])
    for pair in video_1_pairs:
        key, reference = pair[28, 35].astype(int), pair[28, 128 + 35].astype(int)
        assert np.abs(key - reference).max() < FLAT_TOLERANCE
        assert np.abs(key - expected).max() < FLAT_TOLERANCE


@pytest.fixture
def tiny_coco(tmp_path):
    """3 synthetic COCO images (64 x 96) mapped onto YouTube-VIS 2019's classes, registered for
    the test only."""
    with reregistered([IMAGES]):
        coco = generate_synthetic_coco(str(tmp_path / "coco"), num_images=3, height=64, width=96, seed=5)
        mapped = (builtin_metadata(YTVIS_2019_CLASSES), COCO_TO_YTVIS_2019, coco["json_file"], coco["image_root"])
        register_coco_mapped_instances(IMAGES, *mapped)
        yield coco


def test_image_dataset_pseudo_pairs_are_drawn_by_the_loader_not_as_annotations(tool, tiny, tiny_coco, tmp_path, capsys):
    output = tmp_path / "vis"
    images = {"train": IMAGES, "num_classes": len(YTVIS_2019_CLASSES)}
    assert tool.main(tool_args(tiny, "dataloader", output, "--num-pairs", "2", *RESIZE_TO_96, **images)) == 0
    assert summary_line(capsys.readouterr().out) == {"output": str(output), "pairs": 2, "files": 2}
    for index in range(2):  # both views of an image resized back to its (augmented) size
        assert cv2.imread(str(output / "dataloader" / f"{index}.png")).shape == (96, 2 * 144, 3)
    assert tool.main(tool_args(tiny, "annotation", tmp_path / "new", **images)) == 2
    assert "holds only image datasets: --source annotation draws videos" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()


def files_under(folder: Path) -> dict:
    return {p: p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", ["unknown-dataset", "output-is-the-image-root", "output-holds-the-json-file"])
def test_bad_input_is_one_line_and_leaves_nothing(tool, tiny, tmp_path, capsys, case):
    output, train = tmp_path / "new" / "vis", DATASET
    if case == "unknown-dataset":
        train, message = "no_such_dataset", "DATASETS.TRAIN: 'no_such_dataset' is not a registered dataset"
    elif case == "output-is-the-image-root":
        output = Path(tiny.image_root)
        message = f"--output {output} would overwrite the input {tiny.image_root}"
    else:
        output = Path(tiny.json_file).parent
        message = f"--output {output} would overwrite the input {tiny.json_file}"
    dataset_files = files_under(Path(tiny.json_file).parent)
    assert tool.main(tool_args(tiny, "annotation", output, train=train)) == 2
    assert message in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "new").exists()
    assert files_under(Path(tiny.json_file).parent) == dataset_files


def test_failing_midway_removes_what_the_run_wrote(tool, tiny, tmp_path, capsys):
    """Video 2's second frame cannot be decoded: video 1's files, written already, are removed
    with the folders the run made."""
    Path(tiny.image_root, tiny.content["videos"][1]["file_names"][1]).write_bytes(b"not a jpeg")
    output = tmp_path / "new" / "vis"
    assert tool.main(tool_args(tiny, "annotation", output)) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith("visualize_data.py: error: video 2 frame 1") and "cannot decode" in line
    assert not (tmp_path / "new").exists()


def test_runs_as_a_command(tiny, tmp_path):
    """As a user runs it: the first video drawn (exit status 0, the JSON summary last), and a
    missing config file (exit status 2, one line). Both processes run at once: each spends most
    of its time importing torch and detectron2."""
    good, bad = tmp_path / "vis", tmp_path / "bad"
    commands = {
        "good": tool_args(tiny, "annotation", good, "--num-videos", "1"),
        "bad": ["--config-file", str(tmp_path / "missing.yaml"), "--source", "annotation", "--output", str(bad)],
    }
    finished = run_at_once("tools/visualize_data.py", commands)
    assert finished["good"].returncode == 0, finished["good"].stdout[-3000:] + finished["good"].stderr[-3000:]
    assert summary_line(finished["good"].stdout) == {"output": str(good), "videos": 1, "files": 2}
    assert sorted(p.name for p in (good / DATASET).iterdir()) == ["1.mp4", "1_strip.png"]
    assert finished["bad"].returncode == 2
    assert str(tmp_path / "missing.yaml") in one_error_line(finished["bad"].stderr)
    assert not bad.exists()
