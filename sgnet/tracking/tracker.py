"""Online association of each frame's detections with a video's tracks (SG-Net section 5,
MaskTrack R-CNN-style scoring)."""
from dataclasses import dataclass, field

import torch
from detectron2.config import configurable
from detectron2.structures import Boxes, pairwise_iou
from torch import Tensor
from torch.nn import functional as F


@dataclass
class TrackMemory:
    """The live tracks of one video: one row per track.

    ids: (T,) int64 track ids (never reused within the video); embeddings: (T, D); boxes: (T, 4)
    x0y0x1y1 in the frames' input coordinates; labels: (T,); last_seen: (T,) int64 the frame of
    each track's last detection. frame: the index of the next frame (the number of frames seen,
    unless the caller set it forward over frames it left out); next_id: the next new id.
    """

    ids: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    embeddings: Tensor = field(default_factory=lambda: torch.zeros(0, 0))
    boxes: Tensor = field(default_factory=lambda: torch.zeros(0, 4))
    labels: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    last_seen: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    frame: int = 0
    next_id: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def keep(self, rows: Tensor) -> None:
        """Keep only the tracks selected by ``rows`` (bool (T,) or indices)."""
        for name in ("ids", "embeddings", "boxes", "labels", "last_seen"):
            setattr(self, name, getattr(self, name)[rows])


class OnlineTracker:
    """score(d, t) = log_softmax_t([0, <e_d, e_t>, ...]) + SCORE_WEIGHT * log(score_d)
    + IOU_WEIGHT * IoU(box_d, box_t) + LABEL_WEIGHT * [label_d == label_t], where column 0 is
    "new object" with IoU 0 and label term 1. Each detection takes its best column; a track
    claimed by several detections goes to the best-scoring one, and the others are dropped
    (``DUPLICATE_POLICY="drop"``, release) or start new tracks (``"new"``). A matched track takes
    its detection's embedding and box; its label, the one the label term compares with, stays
    that of the detection that started the track (release) unless ``update_label``.

    Stateless itself: the per-video state is a :class:`TrackMemory` passed in, so one tracker
    serves any number of videos and a fresh memory means a fresh video. A track without a
    detection for ``max_age`` frames is forgotten (0: never, as the release), so that memory and
    association cost stay flat on long videos.
    """

    @configurable
    def __init__(
        self,
        *,
        score_weight: float,
        iou_weight: float,
        label_weight: float,
        update_label: bool,
        duplicate_policy: str,
        max_age: int,
    ):
        if duplicate_policy not in ("drop", "new"):
            raise ValueError(f"MODEL.SGNET.TRACKER.DUPLICATE_POLICY must be 'drop' or 'new', got {duplicate_policy!r}")
        self.score_weight = score_weight
        self.iou_weight = iou_weight
        self.label_weight = label_weight
        self.update_label = update_label
        self.duplicate_policy = duplicate_policy
        if max_age < 0:
            raise ValueError(f"MODEL.SGNET.TRACKER.MAX_AGE must be >= 0 (0: keep every track), got {max_age}")
        self.max_age = max_age

    @classmethod
    def from_config(cls, cfg):
        tracker = cfg.MODEL.SGNET.TRACKER
        return {
            "score_weight": tracker.SCORE_WEIGHT,
            "iou_weight": tracker.IOU_WEIGHT,
            "label_weight": tracker.LABEL_WEIGHT,
            "update_label": tracker.UPDATE_LABEL,
            "duplicate_policy": tracker.DUPLICATE_POLICY,
            "max_age": tracker.MAX_AGE,
        }

    def association_scores(self, memory: TrackMemory, embeddings: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor) -> Tensor:
        """(N, 1 + T) scores of N detections against "new" (column 0) and the T tracks."""
        num_dets = len(labels)
        new_column = embeddings.new_zeros(num_dets, 1)
        if len(memory):
            similarity = embeddings @ memory.embeddings.t()
            ious = pairwise_iou(Boxes(boxes), Boxes(memory.boxes))
            same_label = (labels[:, None] == memory.labels[None, :]).to(embeddings.dtype)
        else:
            similarity = ious = same_label = embeddings.new_zeros(num_dets, 0)
        log_likelihood = F.log_softmax(torch.cat([new_column, similarity], dim=1), dim=1)
        ious = torch.cat([new_column, ious], dim=1)
        same_label = torch.cat([new_column + 1, same_label], dim=1)
        return (
            log_likelihood
            + self.score_weight * scores.clamp(min=1e-12).log()[:, None]
            + self.iou_weight * ious
            + self.label_weight * same_label
        )

    def update(self, memory: TrackMemory, embeddings: Tensor, boxes: Tensor, scores: Tensor, labels: Tensor) -> Tensor:
        """Associate one frame's N detections and update ``memory`` in place.

        Args:
            embeddings: (N, D); boxes: (N, 4); scores: (N,); labels: (N,).
        Returns:
            (N,) int64 track id per detection, -1 for detections dropped as duplicates.
        """
        num_dets = len(labels)
        if memory.embeddings.shape[1] != embeddings.shape[1]:  # a fresh memory takes the inputs' shapes
            memory.ids, memory.last_seen = labels.new_zeros(0), labels.new_zeros(0)
            memory.embeddings = embeddings.new_zeros(0, embeddings.shape[1])
            memory.boxes, memory.labels = boxes.new_zeros(0, 4), labels.new_zeros(0)
        self._forget_old(memory, memory.frame)  # the caller may have moved memory.frame over a gap
        track_ids = labels.new_zeros(0)
        if num_dets:
            track_ids = self._associate(memory, embeddings, boxes, scores, labels)
        memory.frame += 1
        self._forget_old(memory, memory.frame)  # memory stays flat on long videos
        return track_ids

    def _forget_old(self, memory: TrackMemory, frame: int) -> None:
        """Drop the tracks too old to be matched at ``frame`` (unseen for more than ``max_age``)."""
        if self.max_age > 0:
            memory.keep(frame - memory.last_seen <= self.max_age)

    def _associate(self, memory: TrackMemory, embeddings, boxes, scores, labels) -> Tensor:
        num_dets = len(labels)
        combined = self.association_scores(memory, embeddings, boxes, scores, labels)
        choice = combined.argmax(dim=1)  # 0 = new track, t + 1 = track row t
        chosen_score = combined.gather(1, choice[:, None])[:, 0]
        # Best claimant per column; ties go to the earlier (higher-scoring) detection.
        claims = combined.new_full(combined.shape, float("-inf"))
        claims[torch.arange(num_dets), choice] = chosen_score
        winner = claims.argmax(dim=0)[choice] == torch.arange(num_dets, device=choice.device)

        matched = (choice > 0) & winner
        matched_rows = choice[matched] - 1
        starts_track = choice == 0
        if self.duplicate_policy == "new":
            starts_track |= (choice > 0) & ~winner
        new_ids = memory.next_id + torch.arange(int(starts_track.sum()), device=choice.device)
        memory.next_id += len(new_ids)
        track_ids = torch.full_like(choice, -1)
        track_ids[matched] = memory.ids[matched_rows]
        track_ids[starts_track] = new_ids

        memory.embeddings[matched_rows] = embeddings[matched]
        memory.boxes[matched_rows] = boxes[matched]
        if self.update_label:
            memory.labels[matched_rows] = labels[matched]
        memory.last_seen[matched_rows] = memory.frame
        memory.ids = torch.cat([memory.ids, new_ids])
        memory.embeddings = torch.cat([memory.embeddings, embeddings[starts_track]])
        memory.boxes = torch.cat([memory.boxes, boxes[starts_track]])
        memory.labels = torch.cat([memory.labels, labels[starts_track]])
        memory.last_seen = torch.cat([memory.last_seen, torch.full_like(new_ids, memory.frame)])
        return track_ids
