#!/usr/bin/env python
"""The no-download default main job (`make demo`): on a fresh machine, with no data and no GPU,

1. generate the synthetic YouTube-VIS-format dataset (cached under $DETECTRON2_DATASETS),
2. train the small SG-Net (configs/toy/sgnet_R18_toy.yaml) on CPU with train_net.py,
3. evaluate it on the synthetic val split (video AP table + identity switches),
4. run demo/demo.py on a held-out synthetic video: an mp4 and a PNG strip of frames,

then print where everything is. Each step is the command a user would type; re-running resumes
from the last checkpoint (a finished training is only evaluated again).
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from sgnet.errors import run_main

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "toy" / "sgnet_R18_toy.yaml"
# Not a seed of the dataset's splits: the demo video is a scene the model has never seen.
DEMO_VIDEO_SEED = 2021


def run_step(title: str, command: list) -> None:
    print(f"\n=== {title}\n$ {' '.join(str(c) for c in command)}", flush=True)
    start = time.perf_counter()
    result = subprocess.run([str(c) for c in command], cwd=REPO)
    if result.returncode != 0:  # the step has said why; its status (2: a user's mistake) is ours
        print(f"default_job.py: step '{title}' failed with exit status {result.returncode}", file=sys.stderr)
        sys.exit(result.returncode)
    print(f"=== {title}: done in {time.perf_counter() - start:.0f} s", flush=True)


def final_metrics(train_dir: Path) -> dict:
    """The last evaluation's metrics from detectron2's metrics.json (one JSON object per line)."""
    metrics = {}
    with open(train_dir / "metrics.json") as f:
        for line in f:
            record = json.loads(line)
            metrics.update({k.split("/", 1)[1]: v for k, v in record.items() if k.startswith(("segm/", "tracking/"))})
    return metrics


def job(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="output/default", help="folder for the model, results and demo")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides for training, KEY VALUE pairs")
    args = parser.parse_args(argv)
    output = Path(args.output).resolve()
    train_dir, demo_dir = output / "train", output / "demo"
    python = sys.executable
    start = time.perf_counter()

    run_step(
        "1/4 synthetic dataset",
        [python, "-c", "import sgnet; from detectron2.data import DatasetCatalog; "
         "print(len(DatasetCatalog.get('sgnet_toy_train')), 'train videos,', "
         "len(DatasetCatalog.get('sgnet_toy_val')), 'val videos')"],
    )
    run_step(
        "2-3/4 train SG-Net on CPU, then evaluate on sgnet_toy_val",
        [python, "train_net.py", "--config-file", CONFIG, "--resume", "OUTPUT_DIR", train_dir, *args.opts],
    )
    video = demo_dir / "held_out_input.mp4"
    run_step(
        "4/4 render a held-out synthetic video",
        [python, "-c", f"from sgnet.data import write_synthetic_video; "
         f"write_synthetic_video({str(video)!r}, num_frames=24, seed={DEMO_VIDEO_SEED})"],
    )
    run_step(
        "4/4 demo on a held-out synthetic video",
        [python, "demo/demo.py", "--config-file", CONFIG, "--video-input", video,
         "--output", demo_dir / "sgnet_demo.mp4", "--strip", demo_dir / "sgnet_demo_strip.png",
         "--opts", "MODEL.WEIGHTS", train_dir / "model_final.pth"],
    )
    metrics = final_metrics(train_dir)
    print(f"\nDefault job finished in {(time.perf_counter() - start) / 60:.1f} min.")
    print("Synthetic val split (video AP on 0-100, identity switches): " + ", ".join(f"{k} {v:.1f}" for k, v in metrics.items()))
    print(f"  model:        {train_dir / 'model_final.pth'}")
    print(f"  results.json: {train_dir / 'inference' / 'sgnet_toy_val' / 'results.json'}")
    print(f"  training log: {train_dir / 'log.txt'} (TensorBoard: {train_dir})")
    print(f"  demo video:   {demo_dir / 'sgnet_demo.mp4'}")
    print(f"  demo strip:   {demo_dir / 'sgnet_demo_strip.png'}")


def main(argv=None) -> int:
    return run_main("default_job.py", job, argv)


if __name__ == "__main__":
    sys.exit(main())
