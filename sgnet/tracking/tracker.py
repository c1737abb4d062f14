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
    """The tracks of one video so far. Track ids are row indices: tracks are never deleted.

    embeddings: (T, D); boxes: (T, 4) x0y0x1y1 in the frames' input coordinates; labels: (T,).
    """

    embeddings: Tensor = field(default_factory=lambda: torch.zeros(0, 0))
    boxes: Tensor = field(default_factory=lambda: torch.zeros(0, 4))
    labels: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))

    def __len__(self) -> int:
        return len(self.labels)


class OnlineTracker:
    """score(d, t) = log_softmax_t([0, <e_d, e_t>, ...]) + SCORE_WEIGHT * log(score_d)
    + IOU_WEIGHT * IoU(box_d, box_t) + LABEL_WEIGHT * [label_d == label_t], where column 0 is
    "new object" with IoU 0 and label term 1. Each detection takes its best column; a track
    claimed by several detections goes to the best-scoring one, and the others are dropped
    (``DUPLICATE_POLICY="drop"``, release) or start new tracks (``"new"``).

    Stateless itself: the per-video state is a :class:`TrackMemory` passed in, so one tracker
    serves any number of videos and a fresh memory means a fresh video.
    """

    @configurable
    def __init__(self, *, score_weight: float, iou_weight: float, label_weight: float, duplicate_policy: str):
        if duplicate_policy not in ("drop", "new"):
            raise ValueError(f"MODEL.SGNET.TRACKER.DUPLICATE_POLICY must be 'drop' or 'new', got {duplicate_policy!r}")
        self.score_weight = score_weight
        self.iou_weight = iou_weight
        self.label_weight = label_weight
        self.duplicate_policy = duplicate_policy

    @classmethod
    def from_config(cls, cfg):
        tracker = cfg.MODEL.SGNET.TRACKER
        return {
            "score_weight": tracker.SCORE_WEIGHT,
            "iou_weight": tracker.IOU_WEIGHT,
            "label_weight": tracker.LABEL_WEIGHT,
            "duplicate_policy": tracker.DUPLICATE_POLICY,
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
        if len(memory) == 0:
            memory.embeddings = embeddings.new_zeros(0, embeddings.shape[1])
            memory.boxes = boxes.new_zeros(0, 4)
            memory.labels = labels.new_zeros(0)
        if num_dets == 0:
            return labels.new_zeros(0)
        combined = self.association_scores(memory, embeddings, boxes, scores, labels)
        choice = combined.argmax(dim=1)  # 0 = new track, t + 1 = track t
        chosen_score = combined.gather(1, choice[:, None])[:, 0]
        # Best claimant per column; ties go to the earlier (higher-scoring) detection.
        claims = combined.new_full(combined.shape, float("-inf"))
        claims[torch.arange(num_dets), choice] = chosen_score
        winner = claims.argmax(dim=0)[choice] == torch.arange(num_dets, device=choice.device)

        matched = (choice > 0) & winner
        track_ids = torch.where(matched, choice - 1, torch.full_like(choice, -1))
        starts_track = choice == 0
        if self.duplicate_policy == "new":
            starts_track |= (choice > 0) & ~winner
        new_ids = len(memory) + torch.arange(int(starts_track.sum()), device=choice.device)
        track_ids[starts_track] = new_ids

        matched_tracks = track_ids[matched]
        memory.embeddings = torch.cat([memory.embeddings, embeddings[starts_track]])
        memory.boxes = torch.cat([memory.boxes, boxes[starts_track]])
        memory.labels = torch.cat([memory.labels, labels[starts_track]])
        memory.embeddings[matched_tracks] = embeddings[matched]
        memory.boxes[matched_tracks] = boxes[matched]
        memory.labels[matched_tracks] = labels[matched]
        return track_ids
