"""Collects a video's per-frame tracked detections into the per-track video output."""
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

LABEL_RULES = ("score_sum", "vote")


class VideoTrackAccumulator:
    """Per-track frame scores, labels and masks of one video, turned into the model's video output:

    ``{"image_size": (h, w), "pred_scores": [float per entry], "pred_labels": [int per entry],
    "pred_masks": [per entry: list of per-frame (h, w) bool tensors or None]}``

    With ``classes_per_track`` 1 (release), each track is one entry: its score is the mean of its
    frame scores; its label is, by ``label_rule``, the most frequent frame label ("vote",
    release) or the label with the highest summed frame score ("score_sum"), ties going to the
    lowest class index (``argmax`` returns the first maximum, as the release's ``np.bincount``
    vote does). With K > 1, each track is K entries (sharing one list of masks), one for each of
    the K classes with the highest mean class score m_c over the track's frames, scored
    m_c * (m_c / max m): a track whose class is uncertain is still found under its true class, instead of only under one guess, while a confident track's
    runner-up classes (m_c / max m small) rank below the other tracks' best guesses.

    ``num_frames`` None: a stream whose length is known only at its end, that of the frames added
    (add every frame, with or without detections).
    """

    def __init__(
        self, num_frames: Optional[int], image_size, num_classes: int, label_rule: str = "vote", classes_per_track: int = 1
    ):
        if label_rule not in LABEL_RULES:
            raise ValueError(f"TEST.TRACK_LABEL_RULE must be one of {LABEL_RULES}, got {label_rule!r}")
        self.check_classes_per_track(classes_per_track, num_classes)
        self.num_frames = num_frames
        self._frames_added = 0  # the stream's length so far (num_frames None)
        self.image_size = tuple(image_size)
        self.num_classes = num_classes
        self.label_rule = label_rule
        self.classes_per_track = classes_per_track
        self._masks: Dict[int, Dict[int, object]] = defaultdict(dict)  # track id -> {frame: its mask}
        self._label_scores: Dict[int, Tensor] = {}
        self._label_votes: Dict[int, Tensor] = {}
        self._class_score_sums: Dict[int, Tensor] = {}

    @staticmethod
    def check_classes_per_track(classes_per_track: int, num_classes: int) -> None:
        if not 1 <= classes_per_track <= num_classes:
            raise ValueError(f"TEST.CLASSES_PER_TRACK must be in [1, {num_classes}], got {classes_per_track}")

    def add(self, frame_index: int, track_ids: Tensor, class_scores: Tensor, labels: Tensor, masks: Sequence) -> None:
        """One frame's N detections: track_ids (N,), class_scores (N, C) every class's score at
        the detection, labels (N,) its class (its score is ``class_scores[i, labels[i]]``), masks
        (N, h, w) bool, or N masks in another form, kept as they are (compressed RLE dicts: a
        stream's caller encodes them per frame, so that memory stays small). Detections with
        track id -1 (dropped by the tracker) are ignored."""
        if frame_index < 0 or (self.num_frames is not None and frame_index >= self.num_frames):
            raise IndexError(f"frame {frame_index} outside a {self.num_frames}-frame video")
        self._frames_added = max(self._frames_added, frame_index + 1)
        if isinstance(masks, Tensor):
            masks = masks.cpu()
        class_scores = class_scores.detach().float().cpu()
        labels = labels.long().cpu()
        scores = class_scores.gather(1, labels[:, None])[:, 0]
        for track_id, score, label, row, mask in zip(
            track_ids.tolist(), scores.tolist(), labels.tolist(), class_scores, masks
        ):
            if track_id < 0:
                continue
            if track_id not in self._label_scores:
                self._label_scores[track_id] = torch.zeros(self.num_classes)
                self._label_votes[track_id] = torch.zeros(self.num_classes)
                self._class_score_sums[track_id] = torch.zeros(self.num_classes)
            self._masks[track_id][frame_index] = mask
            self._label_scores[track_id][label] += score
            self._label_votes[track_id][label] += 1
            self._class_score_sums[track_id] += row

    @property
    def length(self) -> int:
        """The video's frame count: ``num_frames``, or a stream's frames added so far."""
        return self._frames_added if self.num_frames is None else self.num_frames

    def _entries(self, track_id: int) -> List[Tuple[float, int]]:
        """The (score, label) entries of one track, best first (see the class docstring)."""
        count = self._label_votes[track_id].sum()  # frames with a detection
        if self.classes_per_track == 1:
            table = self._label_scores if self.label_rule == "score_sum" else self._label_votes
            return [(float(self._label_scores[track_id].sum() / count), int(table[track_id].argmax()))]
        top = (self._class_score_sums[track_id] / count).topk(self.classes_per_track)
        return list(zip((top.values * top.values / top.values[0].clamp(min=1e-12)).tolist(), top.indices.tolist()))

    def best_entries(self) -> Dict[int, Tuple[float, int]]:
        """Per track id, the (score, label) of its first entry in :meth:`result` (its only one
        with ``classes_per_track`` 1, else its best class): one class per track."""
        return {track_id: self._entries(track_id)[0] for track_id in sorted(self._masks)}

    def result(self) -> dict:
        scores, labels, masks = [], [], []
        for track_id in sorted(self._masks):
            track_masks = [self._masks[track_id].get(f) for f in range(self.length)]
            for score, label in self._entries(track_id):
                scores.append(score)
                labels.append(label)
                masks.append(track_masks)
        return {"image_size": self.image_size, "pred_scores": scores, "pred_labels": labels, "pred_masks": masks}
