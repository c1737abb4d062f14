"""tools/predict_videos.py on a folder of 6 short videos (5 files, 1 folder of frames) with a random
toy model: each video's results are what demo.py --save-results writes for it; 2 gloo processes
do each video once; a run killed after some videos continues where it stopped and ends with the
outputs of an uninterrupted run; a corrupt video is reported in index.json while the others
finish; mistakes are one line."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import cv2
import pytest

from sgnet.data import VideoFrameReader, write_synthetic_video

from app_fixtures import REPO, load_script
from test_apps import TOY_CONFIG, demo_args

# Sorted names: the videos' ids are 1..6 in this order.
NAMES = ["a", "b", "c", "d", "e", "frames"]
TOOL = "tools/predict_videos.py"


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A folder of 5 video files and a folder of PNG frames (4 frames of 96 x 160 each) and a
    file that is no video."""
    folder = tmp_path_factory.mktemp("videos")
    for seed, name in enumerate(NAMES[:-1]):
        write_synthetic_video(str(folder / f"{name}.mp4"), num_frames=4, height=96, width=160, seed=seed)
    source = write_synthetic_video(str(tmp_path_factory.mktemp("source") / "frames.mp4"), num_frames=4, height=96, width=160, seed=9)
    (folder / "frames").mkdir()
    for index, frame in enumerate(VideoFrameReader(source)):
        cv2.imwrite(str(folder / "frames" / f"img{index:03d}.png"), frame)
    (folder / "notes.txt").write_text("not a video")
    return folder


@pytest.fixture(scope="module")
def tool():
    return load_script(TOOL, "sgnet_predict_videos")


def tool_args(inputs, output, weights, *extra) -> list:
    return [
        "--config-file", str(TOY_CONFIG), "--input", str(inputs), "--output", str(output), *extra,
        "MODEL.WEIGHTS", str(weights), "MODEL.SGNET.SCORE_THRESH_TEST", "0.0", "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160",
    ]  # fmt: skip


def tree(folder) -> dict:
    """Every file under ``folder``: relative path -> bytes."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def index(output) -> dict:
    return json.loads((output / "index.json").read_text())


def summary(out: str) -> str:
    return out.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def uninterrupted(tool, videos, random_weights, tmp_path_factory):
    """One run in this process, without --render: its OUT."""
    output = tmp_path_factory.mktemp("uninterrupted") / "out"
    assert tool.main(tool_args(videos, output, random_weights)) == 0
    return output


@pytest.fixture(scope="module")
def demo_outputs(videos, random_weights, tmp_path_factory):
    """demo.py on each video with --save-results (its video id) and --save-masks: name -> (results
    bytes, mask folder)."""
    demo = load_script("demo/demo.py", "sgnet_demo_predict_videos")
    folder = tmp_path_factory.mktemp("demo")
    outputs = {}
    for video_id, name in enumerate(NAMES, start=1):
        results, masks = folder / f"{name}.json", folder / f"{name}_masks"
        extra = ["--save-results", str(results), "--video-id", str(video_id), "--save-masks", str(masks)]
        args = demo_args(videos / f"{name}.mp4", folder / f"{name}.mp4", random_weights, *extra)
        if name == "frames":
            args[args.index("--video-input") : args.index("--video-input") + 2] = ["--input", str(videos / name)]
        assert demo.main(args) == 0
        outputs[name] = (results.read_bytes(), masks)
    return outputs


def test_each_videos_results_are_the_demos_save_results(uninterrupted, demo_outputs, videos):
    listed = index(uninterrupted)
    assert (listed["done"], listed["failed"]) == (6, 0)
    entries = listed["videos"]
    assert [(e["name"], e["video_id"], e["status"], e["frames"], e["error"]) for e in entries] == [
        (name, video_id, "done", 4, None) for video_id, name in enumerate(NAMES, start=1)
    ]
    assert [e["input"] for e in entries] == [str(videos / f"{name}.mp4") for name in NAMES[:-1]] + [str(videos / "frames")]
    for entry in entries:
        name = entry["name"]
        assert entry["outputs"] == {"results": f"{name}/results.json"}
        results = (uninterrupted / name / "results.json").read_bytes()
        assert results == demo_outputs[name][0], name
        # The toy config reports each track under its 3 best classes (TEST.CLASSES_PER_TRACK).
        assert 3 * entry["tracks"] == len(json.loads(results)) > 0
    assert sorted(p.name for p in uninterrupted.iterdir()) == sorted(["index.json", *NAMES])


def test_a_run_with_render_after_one_without_renders_the_demos_masks(tool, uninterrupted, demo_outputs, videos, random_weights, tmp_path, capsys):
    output = tmp_path / "out"
    shutil.copytree(uninterrupted, output)
    assert tool.main(tool_args(videos, output, random_weights, "--render", "--confidence-threshold", "0")) == 0
    assert summary(capsys.readouterr().out).startswith("6 videos: 6 done (0 of them before this run), 0 failed")
    for name in NAMES:
        assert (output / name / "results.json").read_bytes() == demo_outputs[name][0]
        assert tree(output / name / "masks") == tree(demo_outputs[name][1]), name
        assert VideoFrameReader(str(output / name / "video.mp4")).num_frames == 4
        assert index(output)["videos"][NAMES.index(name)]["outputs"] == {
            "results": f"{name}/results.json", "masks": f"{name}/masks", "video": f"{name}/video.mp4"
        }  # fmt: skip
    assert sorted(os.listdir(output / "frames" / "masks")) == ["img000.png", "img001.png", "img002.png", "img003.png", "tracks.json"]
    # Done with these options now: a second such run skips every video.
    assert tool.main(tool_args(videos, output, random_weights, "--render", "--confidence-threshold", "0")) == 0
    assert summary(capsys.readouterr().out).startswith("6 videos: 6 done (6 of them before this run), 0 failed")


def test_two_processes_do_each_video_exactly_once(uninterrupted, videos, random_weights, tmp_path):
    output = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, TOOL, "--num-gpus", "2", *tool_args(videos, output, random_weights)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    done = re.findall(r"video (\d)/6 (\S+) \(rank (\d)\): 4 frames", result.stdout)
    by_rank = {rank: sorted(name for _, name, r in done if r == rank) for rank in ("0", "1")}
    # InferenceSampler's shards of 6 items over 2 ranks: the first 3, the last 3.
    assert by_rank == {"0": NAMES[:3], "1": NAMES[3:]}
    assert len(done) == 6
    assert tree(output) == tree(uninterrupted)


def status_of(output, name):
    try:
        return json.loads((output / name / "status.json").read_text())["status"]
    except (OSError, ValueError):
        return None


def test_a_killed_run_continues_where_it_stopped(tool, uninterrupted, videos, random_weights, tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()  # an earlier run's index, which a stopped run must not leave listing old outputs
    (output / "index.json").write_text(json.dumps({"videos": [], "done": 0, "failed": 0}))
    process = subprocess.Popen(
        [sys.executable, TOOL, *tool_args(videos, output, random_weights)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not any(status_of(output, name) == "done" for name in NAMES) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    finished = [name for name in NAMES if status_of(output, name) == "done"]
    assert 1 <= len(finished) < len(NAMES), finished
    assert not (output / "index.json").exists()
    stamps = {name: (output / name / "results.json").stat().st_mtime_ns for name in finished}
    assert tool.main(tool_args(videos, output, random_weights)) == 0
    assert summary(capsys.readouterr().out).startswith(f"6 videos: 6 done ({len(finished)} of them before this run), 0 failed")
    assert {name: (output / name / "results.json").stat().st_mtime_ns for name in finished} == stamps  # skipped
    assert tree(output) == tree(uninterrupted)  # no leftover of the killed run either


def test_a_corrupt_video_is_reported_and_the_others_finish(tool, random_weights, tmp_path, capsys):
    inputs = tmp_path / "videos"
    for seed, name in enumerate(["good1", "good2"]):
        write_synthetic_video(str(inputs / f"{name}.mp4"), num_frames=3, height=96, width=160, seed=seed)
    (inputs / "bad.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 10)
    # OUT inside the input folder, holding files of the user's.
    output = inputs / "predictions"
    (output / "good1").mkdir(parents=True)
    (output / "notes.txt").write_text("mine")
    (output / "good1" / "notes.txt").write_text("mine too")
    assert tool.main(tool_args(inputs, output, random_weights)) == tool.EXIT_SOME_FAILED
    assert summary(capsys.readouterr().out).startswith("3 videos: 2 done (0 of them before this run), 1 failed")
    listed = index(output)
    assert (listed["done"], listed["failed"]) == (2, 1)
    bad, good1, good2 = listed["videos"]
    assert (bad["name"], bad["status"], bad["frames"], bad["outputs"]) == ("bad", "failed", None, {})
    assert bad["error"].startswith(f"OpenCV cannot open the video file {inputs / 'bad.mp4'}")
    assert [(e["name"], e["status"], e["frames"]) for e in (good1, good2)] == [("good1", "done", 3), ("good2", "done", 3)]
    assert sorted(os.listdir(output / "bad")) == ["status.json"]
    assert (output / "notes.txt").read_text() == "mine" and (output / "good1" / "notes.txt").read_text() == "mine too"
    # A re-run: the outputs are no inputs, the done videos are skipped, the failed one is retried.
    failed_at = (output / "bad" / "status.json").stat().st_mtime_ns
    assert tool.main(tool_args(inputs, output, random_weights)) == tool.EXIT_SOME_FAILED
    assert summary(capsys.readouterr().out).startswith("3 videos: 2 done (2 of them before this run), 1 failed")
    assert (output / "bad" / "status.json").stat().st_mtime_ns != failed_at


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "--input {inputs}: no such folder"),
        ("empty", "--input {inputs}: no video files (.mp4"),
        ("no match", "--input {inputs}/*.mkv: no video files (.mp4"),
        ("same name", "--input {inputs}: two videos are named a, {inputs}/a.avi and {inputs}/a.mp4"),
        ("output is the input folder", "--output {inputs} would overwrite the input {inputs}/a.mp4"),
        ("foreign output", "--output: {output}/a/results.json is no output of an earlier run"),
    ],
)
def test_mistakes_are_one_line_and_write_nothing(tool, random_weights, tmp_path, capsys, case, message):
    inputs, output = tmp_path / "videos", tmp_path / "out"
    if case != "missing":
        inputs.mkdir()
    if case not in ("missing", "empty"):
        (inputs / "a.mp4").write_bytes(b"not decoded before the checks")
    if case == "same name":
        (inputs / "a.avi").write_bytes(b"not decoded before the checks")
    if case == "output is the input folder":
        output = inputs
    if case == "foreign output":
        (output / "a").mkdir(parents=True)
        (output / "a" / "results.json").write_text("[]")
    pattern = f"{inputs}/*.mkv" if case == "no match" else inputs
    before = tree(tmp_path)
    assert tool.main(tool_args(pattern, output, random_weights)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("predict_videos.py: error: "), err
    assert message.format(inputs=inputs, output=output) in err
    assert tree(tmp_path) == before and (output.exists() == (case in ("output is the input folder", "foreign output")))
