"""train_net.py and demo/demo.py as users run them: subprocesses on a tiny synthetic dataset."""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from detectron2.utils.events import EventStorage

from sgnet.data import generate_synthetic_ytvis, write_synthetic_video

from app_fixtures import load_script

REPO = Path(__file__).resolve().parents[1]
TOY_CONFIG = REPO / "configs" / "toy" / "sgnet_R18_toy.yaml"
# Small and fast: 96-pixel frames, batch of 2 pairs, no loader workers.
FAST = [
    "INPUT.MIN_SIZE_TRAIN", "(96, 96)", "INPUT.MAX_SIZE_TRAIN", "160", "INPUT.MIN_SIZE_TEST", "96",
    "INPUT.MAX_SIZE_TEST", "160", "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0",
    "SOLVER.WARMUP_ITERS", "2", "TEST.EVAL_PERIOD", "0",
]  # fmt: skip


def run(args, env, check=True):
    result = subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def toy_env(tmp_path_factory):
    """$DETECTRON2_DATASETS with a tiny `sgnet_toy` dataset (3 train, 2 val videos of 4 frames)."""
    root = tmp_path_factory.mktemp("datasets")
    generate_synthetic_ytvis(root / "sgnet_toy", num_train_videos=3, num_val_videos=2, num_frames=4, height=96, width=160)
    return dict(os.environ, DETECTRON2_DATASETS=str(root))


@pytest.fixture(scope="module")
def trained(toy_env, tmp_path_factory):
    """4 iterations of train_net.py, checkpointing every 2, then the final evaluation."""
    output = tmp_path_factory.mktemp("train")
    result = run(
        ["train_net.py", "--config-file", TOY_CONFIG, *FAST, "SOLVER.MAX_ITER", "4", "SOLVER.CHECKPOINT_PERIOD", "2", "OUTPUT_DIR", output],
        toy_env,
    )
    return output, result


def metrics_records(output: Path) -> list:
    return [json.loads(line) for line in (output / "metrics.json").read_text().splitlines()]


def test_train_net_trains_checkpoints_and_evaluates(trained):
    output, result = trained
    assert {"model_0000001.pth", "model_0000003.pth", "model_final.pth", "last_checkpoint"} <= {p.name for p in output.iterdir()}
    records = metrics_records(output)
    assert [r["iteration"] for r in records if "total_loss" in r][-1] == 3
    assert all(np.isfinite(r["total_loss"]) for r in records if "total_loss" in r)
    # The final evaluation on sgnet_toy_val: AP table and results for the server.
    assert "segm/AP" in records[-1] and "tracking/IDSW" in records[-1]
    results = json.loads((output / "inference" / "sgnet_toy_val" / "results.json").read_text())
    assert {r["video_id"] for r in results} <= {1, 2}
    assert "copypaste: AP,AP50,AP75,APs,APm,APl,AR1,AR10" in result.stdout + result.stderr
    checkpoint = torch.load(output / "model_final.pth", weights_only=False)
    assert checkpoint["iteration"] == 3
    # Saved by SG-Net's checkpointer (the periodic hook's too): the training set's classes.
    for name in ("model_0000001.pth", "model_final.pth"):
        saved = torch.load(output / name, weights_only=False)
        assert saved["classes"] == {"names": ["disc", "square", "triangle"], "dataset_ids": [1, 2, 3]}
    assert checkpoint["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 4
    # The toy config's AdamW: its moments and step count (iterations 0-3) are in the checkpoint.
    adam_state = checkpoint["trainer"]["_trainer"]["optimizer"]["state"]
    assert len(adam_state) > 0 and all("exp_avg" in s and int(s["step"]) == 4 for s in adam_state.values())


def test_resume_continues_at_the_next_iteration_with_the_saved_state(trained, toy_env):
    output, _ = trained
    saved = torch.load(output / "model_final.pth", weights_only=False)
    assert saved["iteration"] == 3
    result = run(
        ["train_net.py", "--config-file", TOY_CONFIG, "--resume", *FAST, "SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "2", "OUTPUT_DIR", output],
        toy_env,
    )
    log = result.stdout + result.stderr
    assert "Starting training from iteration 4" in log
    iterations = [r["iteration"] for r in metrics_records(output) if "total_loss" in r]
    assert iterations[-1] == 5
    resumed = torch.load(output / "model_final.pth", weights_only=False)
    assert resumed["iteration"] == 5
    # The LR schedule and the optimizer went on from the saved state.
    assert resumed["trainer"]["hooks"]["LRScheduler"]["last_epoch"] == 6
    lrs = [r["lr"] for r in metrics_records(output) if "lr" in r]
    assert lrs[-1] == pytest.approx(0.001)  # warm-up (2 iterations) over: the toy config's base LR
    saved_state = saved["trainer"]["_trainer"]["optimizer"]["state"]
    resumed_state = resumed["trainer"]["_trainer"]["optimizer"]["state"]
    assert set(resumed_state) == set(saved_state)
    # AdamW went on from the saved moments: 4 steps before, 2 after (a cold restart would say 2).
    assert all(int(s["step"]) == 6 for s in resumed_state.values())


def copied_run(trained, folder: Path) -> Path:
    """The run's periodic checkpoints copied into a new folder without its last_checkpoint tag
    (a copied or synced run folder)."""
    output, _ = trained
    folder.mkdir()
    for name in ("model_0000001.pth", "model_0000003.pth"):
        (folder / name).write_bytes((output / name).read_bytes())
    return folder


def digests(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.suffix == ".pth"}


def test_resume_without_last_checkpoint_continues_from_the_newest_and_keeps_it(trained, toy_env, tmp_path):
    run_dir = copied_run(trained, tmp_path / "copied")
    before = digests(run_dir)
    result = run(["train_net.py", "--config-file", TOY_CONFIG, "--resume", *FAST, "SOLVER.MAX_ITER", "5", "OUTPUT_DIR", run_dir], toy_env)
    log = result.stdout + result.stderr
    assert "no last_checkpoint tag: resuming from the newest that loads" in log
    assert "Starting training from iteration 4" in log
    after = digests(run_dir)
    assert {name: after[name] for name in before} == before  # the copied checkpoints are untouched
    assert torch.load(run_dir / "model_final.pth", weights_only=False)["iteration"] == 4


def test_resume_skips_a_truncated_newest_checkpoint(trained, toy_env, tmp_path):
    run_dir = copied_run(trained, tmp_path / "copied")
    newest = run_dir / "model_0000003.pth"
    newest.write_bytes(newest.read_bytes()[:4096])
    result = run(["train_net.py", "--config-file", TOY_CONFIG, "--resume", *FAST, "SOLVER.MAX_ITER", "3", "OUTPUT_DIR", run_dir], toy_env)
    log = result.stdout + result.stderr
    assert f"Skipping {newest}" in log and "Starting training from iteration 2" in log


def test_training_into_a_folder_with_checkpoints_is_refused_without_resume(trained, toy_env, tmp_path):
    run_dir = copied_run(trained, tmp_path / "copied")
    before = digests(run_dir)
    result = run(["train_net.py", "--config-file", TOY_CONFIG, *FAST, "SOLVER.MAX_ITER", "2", "OUTPUT_DIR", run_dir], toy_env, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"train_net.py: error: OUTPUT_DIR {run_dir} holds checkpoints of an earlier run (model_0000003.pth, 2 in all), "
        "which training would overwrite: add --resume to continue that run, --start-over to train anew over it, "
        "or choose another OUTPUT_DIR"
    )
    assert digests(run_dir) == before and sorted(p.name for p in run_dir.iterdir()) == ["model_0000001.pth", "model_0000003.pth"]
    # Asked to, it starts over from MODEL.WEIGHTS (iteration 0).
    result = run(["train_net.py", "--config-file", TOY_CONFIG, "--start-over", *FAST, "SOLVER.MAX_ITER", "1", "OUTPUT_DIR", run_dir], toy_env)
    assert "Starting training from iteration 0" in result.stdout + result.stderr


@pytest.mark.parametrize("kind", ["text", "empty"])
def test_train_net_reports_weights_that_are_no_checkpoint_in_one_line(toy_env, tmp_path, kind):
    weights = tmp_path / "weights.pth"
    weights.write_text("101 epochs\n" if kind == "text" else "")
    result = run(
        ["train_net.py", "--config-file", TOY_CONFIG, *FAST, "SOLVER.MAX_ITER", "1", "MODEL.WEIGHTS", weights, "OUTPUT_DIR", tmp_path / "out"],
        toy_env,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(f"train_net.py: error: {weights}: not a checkpoint torch or detectron2 can read")


def test_eval_only_writes_results_and_reports_ap(trained, toy_env, tmp_path):
    output, _ = trained
    result = run(
        ["train_net.py", "--config-file", TOY_CONFIG, "--eval-only", *FAST, "MODEL.WEIGHTS", output / "model_final.pth", "OUTPUT_DIR", tmp_path],
        toy_env,
    )
    results_dir = tmp_path / "inference" / "sgnet_toy_val"
    assert (results_dir / "results.json").is_file() and (results_dir / "results.zip").is_file()
    assert "copypaste: AP,AP50,AP75,APs,APm,APl,AR1,AR10" in result.stdout + result.stderr


@pytest.mark.parametrize("mode", [[], ["--eval-only"]], ids=["train", "eval-only"])
def test_train_net_loads_weights_through_sgnet_checkpointer(toy_env, tmp_path, mode):
    """MODEL.WEIGHTS goes through sgnet.checkpoint, for training and evaluation: a detectron2 FCOS
    checkpoint (recognised by its head) without the toy config's backbone is refused."""
    weights = tmp_path / "fcos_head_only.pth"
    torch.save({"model": {f"head.{module}.weight": torch.zeros(1) for module in ("cls_subnet.0", "bbox_subnet.0", "ctrness")}}, weights)
    result = run(
        ["train_net.py", "--config-file", TOY_CONFIG, *mode, *FAST, "MODEL.WEIGHTS", weights, "OUTPUT_DIR", tmp_path],
        toy_env,
        check=False,
    )
    assert result.returncode != 0
    assert f"{weights}: the backbone of this detectron2 FCOS checkpoint does not fit SG-Net's" in result.stderr


def test_amp_training_without_cuda_stops_at_once_in_one_line(tmp_path, monkeypatch, capsys):
    """detectron2's AMPTrainer asserts CUDA at its first step, once everything is built: train_net
    stops before setting anything up."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    train_net = load_script("train_net.py", "sgnet_train_net")
    output = tmp_path / "output"
    assert train_net.cli(["--config-file", str(TOY_CONFIG), "SOLVER.AMP.ENABLED", "True", "OUTPUT_DIR", str(output)]) == 2
    assert capsys.readouterr().err == (
        f"train_net.py: error: {TOY_CONFIG}: SOLVER.AMP.ENABLED: AMP training needs a CUDA device, and torch sees none "
        "(train without it on CPU)\n"
    )
    assert not output.exists()  # no config written, no log, no model built


@pytest.fixture(scope="module")
def gpu_check():
    return load_script("tools/gpu_check.py", "sgnet_gpu_check")


def test_gpu_check_without_cuda_says_so_and_checks_nothing(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"gpu_check.py: no CUDA device (torch {torch.__version__} sees none); these checks need one, nothing was checked\n"


def test_gpu_check_counts_the_steps_the_grad_scaler_skipped(gpu_check):
    """A GradScaler skips the optimizer step and halves its scale on an inf gradient: 2 of 4 here;
    a run where it skips every step fails the check."""
    weight = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([weight], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    recorder = gpu_check.GradScaleRecorder(SimpleNamespace(grad_scaler=scaler))
    for factor in (1.0, float("inf"), 1.0, float("inf")):
        optimizer.zero_grad()
        scaler.scale((weight * factor).sum()).backward()
        scaler.step(optimizer)
        scaler.update()
        recorder.after_step()
    assert recorder.skipped_steps() == 2 and recorder.scales == [4.0, 4.0, 2.0, 2.0, 1.0]
    assert float(weight.detach()) == pytest.approx(1 - 2 * 0.1)  # the two finite steps only
    recorder.scales = [4.0, 2.0, 1.0]
    with EventStorage() as storage:
        storage.put_scalar("total_loss", 1.0)
        with pytest.raises(RuntimeError, match="skipped all 2 steps"):
            gpu_check.amp_steps_summary(SimpleNamespace(precision=torch.float16), storage, recorder)


def test_train_net_trains_the_r50_joint_config_on_videos_and_coco_images(tmp_path):
    """configs/ytvis_2019/sgnet_R50_FPN_coco_joint_1x.yaml as a user runs it, on the builtin
    splits read from $DETECTRON2_DATASETS: a YouTube-VIS-layout folder (synthetic videos whose
    categories are YouTube-VIS 2019's) and a COCO-layout folder (synthetic images)."""
    from sgnet.data.datasets.builtin import YTVIS_2019_CLASSES
    from sgnet.data.synthetic import generate_synthetic_coco

    root = tmp_path / "datasets"
    videos = generate_synthetic_ytvis(tmp_path / "videos", num_train_videos=3, num_val_videos=1, num_frames=4, height=96, width=160)
    content = json.loads(Path(videos["train_json"]).read_text())
    content["categories"] = [{"id": i + 1, "name": name} for i, name in enumerate(YTVIS_2019_CLASSES)]
    (root / "ytvis_2019" / "train").mkdir(parents=True)
    (root / "ytvis_2019" / "train.json").write_text(json.dumps(content))
    (root / "ytvis_2019" / "train" / "JPEGImages").symlink_to(videos["train_root"])
    generate_synthetic_coco(str(root / "coco"), num_images=6, height=96, width=160)
    output = tmp_path / "output"
    config = REPO / "configs" / "ytvis_2019" / "sgnet_R50_FPN_coco_joint_1x.yaml"
    run(
        ["train_net.py", "--config-file", config, *FAST, "MODEL.WEIGHTS", "", "MODEL.DEVICE", "cpu",
         "DATASETS.TEST", "()", "SOLVER.MAX_ITER", "3", "SOLVER.CHECKPOINT_PERIOD", "100", "OUTPUT_DIR", output],
        dict(os.environ, DETECTRON2_DATASETS=str(root)),
    )  # fmt: skip
    records = [r for r in metrics_records(output) if "total_loss" in r]
    assert records and records[-1]["iteration"] == 2  # all 3 iterations ran (metrics written at the end)
    for record in records:
        losses = [record[k] for k in ("loss_fcos_cls", "loss_fcos_loc", "loss_fcos_ctr", "loss_mask", "loss_track")]
        assert all(np.isfinite(losses)), record
    assert (output / "model_final.pth").exists()


@pytest.fixture(scope="module")
def demo_module():
    return load_script("demo/demo.py", "sgnet_demo")


def demo_args(video, output, weights, *extra):
    return [
        "--config-file", str(TOY_CONFIG), "--video-input", str(video), "--output", str(output),
        "--confidence-threshold", "0", *extra,
        "--opts", "MODEL.WEIGHTS", str(weights), "MODEL.SGNET.SCORE_THRESH_TEST", "0.0",
        "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160",
    ]  # fmt: skip


def read_frames(path) -> list:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_demo_writes_a_video_with_every_frame_and_drawn_masks(random_weights, tmp_path):
    video = write_synthetic_video(str(tmp_path / "input.mp4"), num_frames=6, height=96, width=160, seed=3)
    output = tmp_path / "out" / "demo.mp4"
    result = run(["demo/demo.py", *demo_args(video, output, random_weights, "--strip", tmp_path / "strip.png")], os.environ)
    assert "Wrote 6 frames" in result.stdout
    inputs, outputs = read_frames(video), read_frames(output)
    assert len(outputs) == 6 and outputs[0].shape == inputs[0].shape == (96, 160, 3)
    # Masks were drawn: a large part of the frame changed colour (overlays at 50% opacity),
    # far beyond what re-encoding alone changes.
    changed = np.mean([(np.abs(o.astype(int) - i.astype(int)).max(axis=2) > 40).mean() for o, i in zip(outputs, inputs)])
    assert changed > 0.05, changed
    strip = cv2.imread(str(tmp_path / "strip.png"))
    assert strip.shape == (96, 160 * 4, 3)


def test_demo_writes_png_frames_into_a_folder(demo_module, random_weights, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    image = np.full((64, 96, 3), 120, np.uint8)
    for index in range(3):
        cv2.imwrite(str(frames / f"{index:05d}.jpg"), image)
    args = demo_args("unused", tmp_path / "drawn", random_weights)
    args[args.index("--video-input") : args.index("--video-input") + 2] = ["--input", str(frames)]
    assert demo_module.main(args) == 0
    assert sorted(p.name for p in (tmp_path / "drawn").iterdir()) == ["000000.png", "000001.png", "000002.png"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "Video source not found"),
        ("corrupt", "cannot open the video file"),
        ("empty", "no decodable frames"),
        ("unwritable", "cannot write the output"),
    ],
)
def test_demo_bad_input_fails_clearly_and_leaves_nothing(demo_module, random_weights, tmp_path, capsys, case, message):
    video = tmp_path / "input.mp4"
    output = tmp_path / "out" / "demo.mp4"
    if case == "corrupt":
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    elif case == "empty":  # a valid AVI container holding no frame
        video = tmp_path / "input.avi"
        cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 6, (160, 96)).release()
    elif case == "unwritable":
        write_synthetic_video(str(video), num_frames=2, height=96, width=160)
        (tmp_path / "a_file").write_text("not a folder")
        output = tmp_path / "a_file" / "demo.mp4"
    assert demo_module.main(demo_args(video, output, random_weights)) == 2
    assert message in capsys.readouterr().err
    assert not output.exists()
    if output.parent.is_dir():
        assert list(output.parent.iterdir()) == []


def test_eval_only_of_an_exported_model_equals_the_checkpoints(trained, toy_env, tmp_path):
    """train_net.py --eval-only --onnx: the exported file in each runtime, through the same loader,
    tracker and evaluator, gives the checkpoint's results (the same tracks and scores)."""
    output, _ = trained
    # A low score threshold: the briefly trained model's tracks are many and weak.
    config = [*FAST, "MODEL.SGNET.SCORE_THRESH_TEST", "0.01", "MODEL.WEIGHTS", output / "model_final.pth"]
    run(["tools/export_model.py", "--config-file", TOY_CONFIG, "--output", tmp_path / "onnx", *config], toy_env)
    results = {}
    for name, extra in (
        ("eager", []),
        ("onnxruntime", ["--onnx", tmp_path / "onnx" / "model.onnx"]),
        ("openvino", ["--onnx", tmp_path / "onnx" / "model.onnx", "--runtime", "openvino"]),
    ):
        result = run(["train_net.py", "--config-file", TOY_CONFIG, "--eval-only", *extra, *config, "OUTPUT_DIR", tmp_path / name], toy_env)
        assert "copypaste: AP,AP50,AP75,APs,APm,APl,AR1,AR10" in result.stdout + result.stderr
        results[name] = json.loads((tmp_path / name / "inference" / "sgnet_toy_val" / "results.json").read_text())
    assert len(results["eager"]) >= 2
    for name in ("onnxruntime", "openvino"):
        assert [(r["video_id"], r["category_id"]) for r in results[name]] == [(r["video_id"], r["category_id"]) for r in results["eager"]]
        assert [r["score"] for r in results[name]] == pytest.approx([r["score"] for r in results["eager"]], rel=1e-4)
    # --onnx belongs to --eval-only, --runtime to --onnx: one line each.
    misuse = "--onnx FILE evaluates an exported model with --eval-only; --runtime goes with --onnx"
    missing = tmp_path / "none.onnx"
    for argv, message in (
        (["--onnx", tmp_path / "onnx" / "model.onnx"], misuse),
        (["--eval-only", "--runtime", "openvino"], misuse),
        (["--eval-only", "--onnx", missing], f"--onnx {missing}: no such file"),
    ):
        result = run(["train_net.py", "--config-file", TOY_CONFIG, *argv, *config, "OUTPUT_DIR", tmp_path / "x"], toy_env, check=False)
        assert result.returncode == 2 and result.stderr.strip().splitlines()[-1] == f"train_net.py: error: {message}"
    assert not (tmp_path / "x").exists()  # refused before anything is written
