"""A user's own videos in, with no code, as the README's "Your own data" section runs it: a
YouTube-VOS-layout folder converted, registered only through ``DATASETS.REGISTER``, trained on
with train_net.py, evaluated with ``--eval-only``, and the demo labelling tracks with the
dataset's class names from the checkpoint alone (no ``DATASETS.TEST``)."""
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from sgnet import predictor_outputs
from sgnet.data import generate_synthetic_ytvis, write_synthetic_video
from sgnet.formats.rle import segmentation_to_mask

from app_fixtures import load_script
from test_apps import FAST, TOY_CONFIG, demo_args, run

# The user's classes: other names than the synthetic generator's, so that labels can only come
# from the converted dataset.
USER_NAMES = {"disc": "frisbee", "square": "box", "triangle": "sail"}


def _write_ytvos_layout(synthetic: dict, src) -> list:
    """The synthetic train split rewritten as YouTube-VOS folders (frames, palette PNGs of object
    ids, meta.json naming each object's category); returns the category names in id order."""
    content = json.loads(open(synthetic["train_json"]).read())
    classes = {c["id"]: USER_NAMES[c["name"]] for c in content["categories"]}
    shutil.copytree(synthetic["train_root"], src / "JPEGImages")
    meta = {"videos": {}}
    for video in content["videos"]:
        folder = os.path.dirname(video["file_names"][0])
        tracks = [a for a in content["annotations"] if a["video_id"] == video["id"]]
        meta["videos"][folder] = {"objects": {str(i): {"category": classes[a["category_id"]]} for i, a in enumerate(tracks, 1)}}
        os.makedirs(src / "Annotations" / folder)
        for t, file_name in enumerate(video["file_names"]):
            ids = np.zeros((video["height"], video["width"]), np.uint8)
            for object_id, track in enumerate(tracks, 1):
                if track["segmentations"][t] is not None:
                    ids[segmentation_to_mask(track["segmentations"][t], video["height"], video["width"]) > 0] = object_id
            png = Image.fromarray(ids, mode="L").convert("P")
            png.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [128] * 756)
            png.save(src / "Annotations" / folder / (os.path.splitext(os.path.basename(file_name))[0] + ".png"))
    (src / "meta.json").write_text(json.dumps(meta))
    return sorted({entry["category"] for video in meta["videos"].values() for entry in video["objects"].values()})


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """The user's folder converted by the command line; (summary, class names)."""
    root = tmp_path_factory.mktemp("own")
    synthetic = generate_synthetic_ytvis(str(root / "synthetic"), num_train_videos=3, num_val_videos=1, num_frames=4, height=96, width=160)
    names = _write_ytvos_layout(synthetic, root / "my_videos")
    result = run(["-m", "sgnet.data.convert", "ytvos", root / "my_videos", "--output", root / "my_videos" / "train.json"], os.environ)
    return json.loads(result.stdout.strip().splitlines()[-1]), names


@pytest.fixture(scope="module")
def trained_on_own_data(converted, tmp_path_factory):
    summary, names = converted
    output = tmp_path_factory.mktemp("own_run")
    register = f"(('my_videos', '{summary['json']}', '{summary['image_root']}'),)"
    config = ["DATASETS.REGISTER", register, "DATASETS.TRAIN", "('my_videos',)", "DATASETS.TEST", "('my_videos',)",
              "MODEL.SGNET.NUM_CLASSES", str(len(names))]  # fmt: skip
    run(["train_net.py", "--config-file", TOY_CONFIG, *FAST, *config, "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", output], os.environ)
    evaluated = run(["train_net.py", "--config-file", TOY_CONFIG, "--eval-only", *FAST, *config,
                     "MODEL.WEIGHTS", output / "model_final.pth", "OUTPUT_DIR", output / "eval"], os.environ)  # fmt: skip
    return output / "model_final.pth", evaluated


def test_the_converted_folder_is_the_users_videos_and_classes(converted):
    summary, names = converted
    assert summary["videos"] == 3 and summary["categories"] == len(names) and summary["annotations"] > 0
    written = json.loads(open(summary["json"]).read())
    assert [c["name"] for c in written["categories"]] == names


def test_train_net_trains_and_evaluates_a_dataset_registered_by_the_config(trained_on_own_data):
    _, evaluated = trained_on_own_data
    log = evaluated.stdout + evaluated.stderr
    assert "copypaste: AP,AP50,AP75,APs,APm,APl,AR1,AR10" in log
    figures = log.split("copypaste: AP,AP50,AP75,APs,APm,APl,AR1,AR10")[1].split("copypaste: ")[1].splitlines()[0]
    assert len(figures.split(",")) == 8 and 0.0 <= float(figures.split(",")[0]) <= 100.0


def test_demo_labels_with_the_checkpoints_classes_without_a_test_set(trained_on_own_data, converted, tmp_path, monkeypatch):
    weights, _ = trained_on_own_data
    _, names = converted
    demo = load_script("demo/demo.py", "sgnet_demo_own_data")
    labelled_with = []
    draw = predictor_outputs.draw_instances

    def recording_draw(frame, instances, class_names, threshold):
        labelled_with.append(list(class_names))
        return draw(frame, instances, class_names, threshold)

    monkeypatch.setattr(predictor_outputs, "draw_instances", recording_draw)
    video = write_synthetic_video(str(tmp_path / "clip.mp4"), num_frames=3, height=96, width=160, seed=5)
    argv = demo_args(video, tmp_path / "out.mp4", weights) + ["DATASETS.TEST", "()", "MODEL.SGNET.NUM_CLASSES", str(len(names))]
    assert demo.cli(argv) == 0
    assert labelled_with == [names] * 3
