"""demo/demo.py --save-masks and --save-results (sgnet.predictor_outputs): on a synthetic video with
a briefly trained toy model, the mask PNGs are the instances the demo drew, tracks.json agrees with
them and with the results, and the results score the AP that train_net's evaluation of the same
model gives on that video; the outputs are refused where they would replace something, and
appear whole or not at all."""
import json
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

from detectron2.modeling import build_model

from sgnet import predictor_outputs
from sgnet.checkpoint import SGNetCheckpointer, build_checkpointer
from sgnet.config import load_config
from sgnet.config_checks import training_classes
from sgnet.data import YTVISPairDatasetMapper, generate_synthetic_ytvis, get_ytvis_dataset_dicts, register_config_datasets
from sgnet.errors import run_main
from sgnet.evaluation import ytvis_eval
from sgnet.formats.indexed_png import paint_ids, read_indexed_png, write_indexed_png
from sgnet.predictor import VideoPredictor
from sgnet.tracking import VideoTrackAccumulator

from app_fixtures import load_script
from model_fixtures import train
from test_apps import FAST, TOY_CONFIG

DATASET = "demo_outputs_video"
TRAIN_STEPS = 60
# Drawn instances: low, for a model trained for seconds (its objects score ~0.1-0.4).
THRESHOLD = 0.1


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """One synthetic video (6 frames of 96 x 160, 3 objects) and its ground truth, registered by
    the config (``DATASETS.REGISTER``) for training and testing; (paths, config opts)."""
    paths = generate_synthetic_ytvis(
        str(tmp_path_factory.mktemp("video")), num_train_videos=1, num_val_videos=1, num_frames=6, height=96, width=160
    )
    register = f"(('{DATASET}', '{paths['val_json']}', '{paths['val_root']}'),)"
    opts = [*FAST, "DATASETS.REGISTER", register, "DATASETS.TRAIN", f"('{DATASET}',)", "DATASETS.TEST", f"('{DATASET}',)"]
    return paths, opts


@pytest.fixture(scope="module")
def trained(video, tmp_path_factory):
    """The toy model overfitting two of the video's training pairs (the training loader's) for a
    few dozen steps, saved as train_net saves it (with the classes), then train_net's evaluation
    of the saved model on the video (what ``--eval-only`` runs); (weights, metrics, the
    evaluation's results.json records)."""
    _, opts = video
    output = tmp_path_factory.mktemp("train")
    cfg = load_config(str(TOY_CONFIG), [*opts, "OUTPUT_DIR", str(output)])
    register_config_datasets(cfg)
    torch.manual_seed(0)
    mapper = YTVISPairDatasetMapper(cfg, is_train=True)
    pairs = [mapper(get_ytvis_dataset_dicts(DATASET)[0]) for _ in range(2)]
    model = build_model(cfg)
    train(model, pairs, TRAIN_STEPS, lr=0.01)  # a fixed batch: much faster to learn than sampled pairs
    SGNetCheckpointer(model, save_dir=str(output), classes=training_classes(cfg)).save("model_final")
    weights = output / "model_final.pth"
    train_net = load_script("train_net.py", "sgnet_train_net_outputs")
    evaluated = train_net.Trainer.build_model(cfg)
    build_checkpointer(cfg, evaluated).resume_or_load(str(weights), resume=False)
    metrics = train_net.Trainer.test(cfg, evaluated)
    records = json.loads((output / "inference" / DATASET / "results.json").read_text())
    return weights, metrics, records


@pytest.fixture(scope="module")
def demo():
    return load_script("demo/demo.py", "sgnet_demo_outputs")


def frames_folder(video) -> str:
    paths, _ = video
    content = json.loads(open(paths["val_json"]).read())
    return os.path.join(paths["val_root"], os.path.dirname(content["videos"][0]["file_names"][0]))


def demo_argv(video, weights, out, *extra) -> list:
    _, opts = video
    return [
        "--config-file", str(TOY_CONFIG), "--input", frames_folder(video), "--output", str(out / "drawn.mp4"),
        "--confidence-threshold", str(THRESHOLD), *extra, "--opts", *opts, "MODEL.WEIGHTS", str(weights),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def demo_run(demo, video, trained, tmp_path_factory):
    """The demo with both outputs, recording the instances it drew (per frame, all the
    predictor's instances and the threshold applied)."""
    weights, _, _ = trained
    out = tmp_path_factory.mktemp("demo")
    drawn = []
    draw = predictor_outputs.draw_instances

    def recording_draw(frame, instances, class_names, threshold):
        drawn.append(instances[instances.scores >= threshold])
        return draw(frame, instances, class_names, threshold)

    predictor_outputs.draw_instances = recording_draw
    try:
        argv = demo_argv(video, weights, out, "--save-masks", str(out / "masks"), "--save-results", str(out / "results.json"))
        assert demo.main(argv) == 0
    finally:
        predictor_outputs.draw_instances = draw
    return out, drawn


def test_save_results_are_train_nets_records_and_score_its_ap(video, trained, demo_run, capsys):
    paths, _ = video
    _, metrics, evaluated = trained
    out, _ = demo_run
    records = json.loads((out / "results.json").read_text())
    assert len(records) == len(evaluated) > 0
    # The same records, in the same order (by track): masks to the pixel, scores to rounding.
    for record, expected in zip(records, evaluated):
        assert {k: v for k, v in record.items() if k != "score"} == {k: v for k, v in expected.items() if k != "score"}
        assert record["score"] == pytest.approx(expected["score"], rel=1e-5)
    capsys.readouterr()
    assert run_main("ytvis_eval", ytvis_eval.main, ["--gt", paths["val_json"], "--results", str(out / "results.json")]) == 0
    scored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["segm"]["AP"] > 0  # a model that finds the objects: the comparison means something
    for key in ("AP", "AP50", "AP75", "AR1", "AR10"):
        assert scored["segm"][key] == pytest.approx(metrics["segm"][key], abs=1e-6), key


def test_mask_pngs_are_the_drawn_instances_and_tracks_json_agrees(video, demo_run):
    out, drawn = demo_run
    frame_names = sorted(os.listdir(frames_folder(video)))
    assert sorted(os.listdir(out / "masks")) == sorted([os.path.splitext(n)[0] + ".png" for n in frame_names] + ["tracks.json"])
    assert len(drawn) == len(frame_names) and sum(len(instances) for instances in drawn) > 0
    spans = {}
    for index, (name, instances) in enumerate(zip(frame_names, drawn)):
        ids = read_indexed_png(str(out / "masks" / (os.path.splitext(name)[0] + ".png")))
        with Image.open(out / "masks" / (os.path.splitext(name)[0] + ".png")) as image:
            assert image.mode == "P"  # a handful of tracks: 8-bit with the VOS palette
        masks, scores = instances.pred_masks.numpy(), instances.scores.numpy()
        # Each drawn track's pixels: its mask less where a higher-scoring instance covers it.
        for i, track_id in enumerate(instances.track_ids.tolist()):
            covered_by_better = masks[scores > scores[i]].any(axis=0)
            assert np.array_equal(ids == track_id, masks[i] & ~covered_by_better), (index, track_id)
            spans.setdefault(track_id, [index, index])[1] = index
        assert np.array_equal(ids == 0, ~masks.any(axis=0))
    tracks = json.loads((out / "masks" / "tracks.json").read_text())
    assert {int(track_id): [t["first_frame"], t["last_frame"]] for track_id, t in tracks.items()} == spans
    # Each track's class and score are its best record's in --save-results, whose masks are the
    # drawn ones in the frames it was drawn in.
    records = json.loads((out / "results.json").read_text())
    for track_id, track in tracks.items():
        assert track["class_name"] in ("disc", "square", "triangle") and track["category_id"] in (1, 2, 3)
        record = next(r for r in records if r["category_id"] == track["category_id"] and r["score"] == pytest.approx(track["score"]))
        for index, instances in enumerate(drawn):
            for mask, drawn_id in zip(instances.pred_masks.numpy(), instances.track_ids.tolist()):
                if drawn_id == int(track_id):
                    assert np.array_equal(mask_util.decode(record["segmentations"][index]).astype(bool), mask)


def test_a_second_run_replaces_the_earlier_mask_output_whole(demo, video, trained, demo_run, tmp_path):
    weights, _, _ = trained
    out, _ = demo_run
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("tracks.json", "old_frame.png"):  # an earlier output, of another video
        (masks / name).write_text("earlier")
    assert demo.main(demo_argv(video, weights, tmp_path, "--save-masks", str(masks))) == 0
    assert sorted(os.listdir(masks)) == sorted(os.listdir(out / "masks"))
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []  # no staging folder left


@pytest.mark.parametrize(
    "case, message",
    [
        ("foreign_folder", "--save-masks {tmp}/masks: holds files that are no earlier mask output (notes.txt, 1 in all)"),
        ("masks_over_frames", "--save-masks {frames} would overwrite the input {frames}/00000.jpg"),
        ("results_over_output", "--save-results {tmp}/drawn.mp4 would overwrite --output {tmp}/drawn.mp4: choose another path"),
        ("results_in_masks", "--save-masks {tmp}/masks would overwrite --save-results {tmp}/masks/r.json"),
        ("results_not_json", "--save-results {tmp}/results.txt: must be a .json file"),
    ],
)
def test_outputs_that_would_replace_something_are_refused_in_one_line(demo, video, random_weights, tmp_path, capsys, case, message):
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "notes.txt").write_text("mine")
    frames = frames_folder(video)
    extra = {
        "foreign_folder": ["--save-masks", str(tmp_path / "masks")],
        "masks_over_frames": ["--save-masks", frames],
        "results_over_output": ["--save-results", str(tmp_path / "drawn.mp4")],
        "results_in_masks": ["--save-masks", str(tmp_path / "masks"), "--save-results", str(tmp_path / "masks" / "r.json")],
        "results_not_json": ["--save-results", str(tmp_path / "results.txt")],
    }[case]
    assert demo.main(demo_argv(video, random_weights, tmp_path, *extra)) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message.format(tmp=tmp_path, frames=frames) in error
    assert sorted(os.listdir(tmp_path)) == ["masks"] and os.listdir(tmp_path / "masks") == ["notes.txt"]


def test_an_interrupted_run_leaves_no_output_and_the_earlier_one_intact(demo, video, trained, tmp_path, monkeypatch):
    weights, _, _ = trained
    (tmp_path / "masks").mkdir()
    (tmp_path / "masks" / "tracks.json").write_text("earlier")
    frames_written = []
    write = predictor_outputs.MaskFolder.write

    def interrupted_write(self, index, instances):
        if index == 3:
            raise KeyboardInterrupt
        frames_written.append(index)
        write(self, index, instances)

    monkeypatch.setattr(predictor_outputs.MaskFolder, "write", interrupted_write)
    argv = demo_argv(video, weights, tmp_path, "--save-masks", str(tmp_path / "masks"), "--save-results", str(tmp_path / "r.json"))
    assert demo.main(argv) == 130
    assert frames_written == [0, 1, 2]
    assert sorted(os.listdir(tmp_path)) == ["masks"] and (tmp_path / "masks" / "tracks.json").read_text() == "earlier"
    assert os.listdir(tmp_path / "masks") == ["tracks.json"]


# -- the pieces ----------------------------------------------------------------------------------
def test_indexed_pngs_are_8_bit_palette_below_255_and_16_bit_above(tmp_path):
    small = np.array([[0, 1, 2], [254, 0, 7]])
    write_indexed_png(str(tmp_path / "small.png"), small)
    with Image.open(tmp_path / "small.png") as image:
        assert image.mode == "P" and image.getpalette()[3:6] == [128, 0, 0]  # id 1 in VOS red
    assert read_indexed_png(str(tmp_path / "small.png")).tolist() == small.tolist()
    large = np.array([[0, 255], [300, 65535]])
    write_indexed_png(str(tmp_path / "large.png"), large)
    with Image.open(tmp_path / "large.png") as image:
        assert image.mode == "I;16"
    assert read_indexed_png(str(tmp_path / "large.png")).tolist() == large.tolist()
    with pytest.raises(ValueError, match="not an 8-bit single-channel"):
        read_indexed_png(str(tmp_path / "large.png"), allow_16_bit=False)
    with pytest.raises(ValueError):
        write_indexed_png(str(tmp_path / "bad.png"), np.array([[65536]]))


def test_paint_ids_gives_overlaps_to_the_higher_score():
    masks = np.zeros((3, 2, 4), dtype=bool)
    masks[0, :, :3] = True
    masks[1, :, 1:] = True
    masks[2, 0, 0] = True
    painted = paint_ids(masks, np.array([5, 9, 2]), np.array([0.4, 0.8, 0.1]))
    assert painted.tolist() == [[5, 9, 9, 9], [5, 9, 9, 9]]


def test_a_streamed_accumulator_has_the_length_of_the_frames_added():
    accumulator = VideoTrackAccumulator(num_frames=None, image_size=(2, 2), num_classes=2)
    rle = {"size": [2, 2], "counts": "04"}
    for index, track_ids in enumerate([[1], [], [1, 2], []]):
        n = len(track_ids)
        accumulator.add(index, torch.tensor(track_ids, dtype=torch.long), torch.full((n, 2), 0.5), torch.zeros(n, dtype=torch.long), [rle] * n)
    result = accumulator.result()
    assert accumulator.length == 4
    assert [[m is not None for m in track] for track in result["pred_masks"]] == [[True, False, True, False], [False, False, True, False]]
    assert accumulator.best_entries() == {1: (0.5, 0), 2: (0.5, 0)}


def test_predictor_category_ids_come_from_the_checkpoint_without_a_test_set(tmp_path):
    cfg = load_config(str(TOY_CONFIG), ["DATASETS.TEST", "()"])
    classes = {"names": ["disc", "square", "triangle"], "dataset_ids": [4, 9, 12]}
    SGNetCheckpointer(build_model(cfg), save_dir=str(tmp_path), classes=classes).save("model")
    cfg.merge_from_list(["MODEL.WEIGHTS", str(tmp_path / "model.pth")])
    predictor = VideoPredictor(cfg)
    assert predictor.class_names == classes["names"] and predictor.category_ids == [4, 9, 12]
    cfg.merge_from_list(["MODEL.WEIGHTS", ""])
    assert VideoPredictor(cfg).category_ids == [1, 2, 3]  # unknown: YouTube-VIS' numbering
