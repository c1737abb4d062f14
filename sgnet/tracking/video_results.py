"""Collects a video's per-frame tracked detections into the per-track video output."""
from collections import defaultdict
from typing import Dict, List

import torch
from torch import Tensor

LABEL_RULES = ("score_sum", "vote")


class VideoTrackAccumulator:
    """Per-track frame scores, labels and masks of one video, turned into the model's video output:

    ``{"image_size": (h, w), "pred_scores": [float per track], "pred_labels": [int per track],
    "pred_masks": [per track: list of per-frame (h, w) bool tensors or None]}``

    A track's score is the mean of its frame scores; its label is, by ``label_rule``, the label
    with the highest summed frame score ("score_sum") or the most frequent frame label ("vote").
    """

    def __init__(self, num_frames: int, image_size, num_classes: int, label_rule: str = "score_sum"):
        if label_rule not in LABEL_RULES:
            raise ValueError(f"TEST.TRACK_LABEL_RULE must be one of {LABEL_RULES}, got {label_rule!r}")
        self.num_frames = num_frames
        self.image_size = tuple(image_size)
        self.num_classes = num_classes
        self.label_rule = label_rule
        self._masks: Dict[int, Dict[int, Tensor]] = defaultdict(dict)
        self._label_scores: Dict[int, Tensor] = {}
        self._label_votes: Dict[int, Tensor] = {}
        self._score_sums: Dict[int, float] = defaultdict(float)
        self._frame_counts: Dict[int, int] = defaultdict(int)

    def add(self, frame_index: int, track_ids: Tensor, scores: Tensor, labels: Tensor, masks: Tensor) -> None:
        """One frame's detections: track_ids, scores, labels (N,), masks (N, h, w) bool.
        Detections with track id -1 (dropped by the tracker) are ignored."""
        if not 0 <= frame_index < self.num_frames:
            raise IndexError(f"frame {frame_index} outside a {self.num_frames}-frame video")
        for track_id, score, label, mask in zip(track_ids.tolist(), scores.tolist(), labels.tolist(), masks.cpu()):
            if track_id < 0:
                continue
            if track_id not in self._label_scores:
                self._label_scores[track_id] = torch.zeros(self.num_classes)
                self._label_votes[track_id] = torch.zeros(self.num_classes)
            self._masks[track_id][frame_index] = mask
            self._label_scores[track_id][label] += score
            self._label_votes[track_id][label] += 1
            self._score_sums[track_id] += score
            self._frame_counts[track_id] += 1

    def result(self) -> dict:
        track_ids = sorted(self._masks)
        label_table = self._label_scores if self.label_rule == "score_sum" else self._label_votes
        return {
            "image_size": self.image_size,
            "pred_scores": [self._score_sums[t] / self._frame_counts[t] for t in track_ids],
            "pred_labels": [int(label_table[t].argmax()) for t in track_ids],
            "pred_masks": [[self._masks[t].get(f) for f in range(self.num_frames)] for t in track_ids],
        }
