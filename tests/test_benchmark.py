"""tools/benchmark.py end to end at tiny sizes: every section runs, the JSON has the issue's
schema, the report and its plot are written, the ratios are those of the figures they are
computed from, and the peak RSS is the child's. No assertion relates one timing to another:
under a loaded CPU any of them may drift."""
import json
import sys

import pytest
import torch

from sgnet.modeling.online import STAGES
from sgnet.tracking import TrackMemory

from app_fixtures import load_script


@pytest.fixture(scope="module")
def benchmark():
    return load_script("tools/benchmark.py", "sgnet_benchmark")


def test_benchmark_json_and_report(benchmark, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(benchmark, "INSTANCE_COUNTS", (1, 3))
    monkeypatch.setattr(benchmark, "STREAM_FRAMES", (2, 4))
    monkeypatch.setattr(benchmark, "EVAL_SIZES", {"videos": 3, "frames": 4, "tracks": 2})
    report = tmp_path / "benchmarks.md"
    threads = torch.get_num_threads()
    try:
        status = benchmark.main(["--quick", "--json", "--height", "64", "--width", "96", "--report", str(report)])
    finally:
        torch.set_num_threads(threads)
    assert status == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])

    for key in ("device", "threads", "latency_ms", "latency_ratio", "sgnet_100_over_1", "rss_1000_over_100",
                "train_step_ratio", "eval_seconds"):
        assert key in result
    latency = result["latency_ms"]
    assert set(latency["sgnet"]) == set(latency["mask_rcnn"]) == set(result["latency_ratio"]) == {"1", "3"}
    for n in ("1", "3"):
        assert latency["sgnet"][n] > 0 and latency["mask_rcnn"][n] > 0
        assert result["latency_ratio"][n] == pytest.approx(latency["sgnet"][n] / latency["mask_rcnn"][n])
        # Every stage SG-Net reports to its stage_timer, and the rest of the step.
        breakdown = result["sgnet_breakdown_ms"][n]
        assert list(breakdown) == [*STAGES, "other"] and all(ms >= 0 for ms in breakdown.values())
    assert latency["fcos_torchvision"] > 0
    assert result["sgnet_100_over_1"] == pytest.approx(latency["sgnet"]["3"] / latency["sgnet"]["1"])
    # A demo process imports torch and detectron2: hundreds of MiB.
    anonymous, total = result["peak_anonymous_rss_mib"], result["peak_rss_mib"]
    assert all(total[n] > anonymous[n] > 100 for n in total)
    assert result["rss_1000_over_100"] == pytest.approx(anonymous["4"] / anonymous["2"])
    assert result["total_rss_1000_over_100"] == pytest.approx(total["4"] / total["2"])
    assert result["train_step_ratio"] == pytest.approx(
        result["train_step_ms"]["sgnet"] / result["train_step_ms"]["mask_rcnn"]
    )

    # ONNX Runtime and OpenVINO against eager PyTorch, interleaved, on the same N detections,
    # and equal to it (R50-FPN at random weights: the release config's graph in both runtimes).
    for prefix in ("onnx", "openvino"):
        assert set(result[f"{prefix}_latency_ms"]) == set(result[f"{prefix}_over_eager"]) == {"1", "3"}
        for n in ("1", "3"):
            ms, eager_ms = result[f"{prefix}_latency_ms"][n], result["onnx_eager_latency_ms"][n]
            assert ms > 0 and result[f"{prefix}_over_eager"][n] == pytest.approx(ms / eager_ms)
        difference = result[f"{prefix}_difference"]
        assert difference["instances"] == 3 and difference["mask_pixels"] == 3 * 64 * 96
        assert difference["max_box_px"] < 1e-2 and difference["mask_pixels_differ"] == 0
        # int8 at the reported N only, in the same rounds.
        int8_ms = result[f"{prefix}_int8_latency_ms"]
        assert list(int8_ms) == ["3"] and int8_ms["3"] > 0
        assert result[f"{prefix}_int8_over_eager"]["3"] == pytest.approx(int8_ms["3"] / result["onnx_eager_latency_ms"]["3"])
    assert result["onnx_export_seconds"] > 0 and result["onnx_file_mib"] > 50  # R50-FPN: ~130 MiB of weights
    # int8 weights: about a quarter of the float32 file.
    assert result["onnx_int8_instances"] == 3 and 0.2 < result["onnx_int8_file_mib"] / result["onnx_file_mib"] < 0.4
    assert 0 < result["onnx_nodes"] < result["onnx_traced_nodes"]
    assert result["onnx_100_over_1"] == pytest.approx(result["onnx_latency_ms"]["3"] / result["onnx_latency_ms"]["1"])
    # The step's peak memory with 3 masks at 1080 x 1920, each backend in its own process: at
    # least the (3, 1080, 1920) bool masks it returns (~6 MiB). (Its ratio to the whole-frame
    # graph's, the target, is the full run's: at 3 detections both are small.)
    assert result["step_memory_output"] == [1080, 1920]
    assert set(result["step_memory_mib"]) == {"eager", "onnxruntime", "openvino"}
    assert all(5 < mib < 1000 for mib in result["step_memory_mib"].values())

    text = report.read_text()
    assert "| 3 |" in text and "Top operators" in text and "aten::" in text
    assert "| 3 |" in text.split("ONNX Runtime int8 / eager", 1)[1]
    assert "## ONNX Runtime and OpenVINO" in text and "Conv " in text  # ONNX Runtime's profile names its operators
    assert "Peak memory of one step at 3 detections with masks at 1080 x 1920" in text
    assert (tmp_path / "benchmarks_latency.png").stat().st_size > 1000


def test_sgnet_is_forced_to_n_detections_of_realistic_size(benchmark):
    """The latency benchmark's SG-Net gives exactly N detections with boxes that are not empty,
    and its tracker memory then holds them as tracks."""
    model = benchmark.build_sgnet(benchmark.TOY_CONFIG, "cpu", num_detections=7).eval()
    frame = benchmark.random_frame(96, 160)
    memory = TrackMemory()
    with torch.inference_mode():
        instances = model.inference_frame(frame, (96, 160), memory)
    boxes = instances.pred_boxes.tensor
    assert len(instances) == 7 and len(memory) == 7
    assert ((boxes[:, 2] - boxes[:, 0]) >= 8).all() and ((boxes[:, 3] - boxes[:, 1]) >= 8).all()
    assert instances.pred_masks.flatten(1).any(dim=1).all()


def test_peak_rss_measures_the_child(benchmark):
    """The child's own peak, not this (large) process's RSS: a child holding 300 MiB more peaks
    at least 300 MiB higher, and an idle one far below this process."""
    hold = "import time; b = bytearray({} * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.5)"
    small = benchmark.peak_rss_mib([sys.executable, "-c", hold.format(0)])
    large = benchmark.peak_rss_mib([sys.executable, "-c", hold.format(300)])
    assert 0 < small["total"] < 100 and large["total"] - small["total"] > 280
    # The bytearray is anonymous memory; the interpreter's own pages are mostly file-backed.
    assert 0 < small["anonymous"] < small["total"] and large["anonymous"] - small["anonymous"] > 280
    with pytest.raises(RuntimeError, match="failed"):
        benchmark.peak_rss_mib([sys.executable, "-c", "raise SystemExit(3)"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--threads", "-1"], "--threads -1: must be 0 (torch's default) or more"),
        (["--height", "0"], "--height 0 --width 640: the frame needs at least one pixel"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_status_2(benchmark, capsys, argv, message):
    assert benchmark.main(argv) == 2
    assert capsys.readouterr().err == f"benchmark.py: error: {message}\n"
