"""Online video inference on any frame model: detect a frame, associate, accumulate a video."""
from contextlib import nullcontext
from typing import Callable, ContextManager, Optional

from detectron2.structures import Instances
from torch import Tensor

from ..tracking import TrackMemory, VideoTrackAccumulator
from .precision import autocast_disabled

# The stages of a frame's inference, in the order they first run, as ``stage_timer`` is told them.
STAGES = ("backbone+FPN", "heads", "post-processing", "mask assembly", "tracking")


class OnlineVideoInference:
    """Mixin: :meth:`inference_frame` and :meth:`inference_video` for a class with
    ``detect_frame(image, output_size) -> Instances`` (pred_boxes, scores, pred_classes,
    class_scores, pred_masks, embeddings), a ``tracker`` (:class:`~sgnet.tracking.OnlineTracker`),
    ``num_classes``, ``track_label_rule`` and ``classes_per_track``. :class:`SGNet` is one; the
    ONNX Runtime frame model (:mod:`sgnet.deploy`) is another, and tracks the same way; both
    set these with :meth:`init_video_inference`.
    """

    # Entered around each stage of a frame (see STAGES), with the stage's name: a context-manager
    # factory, e.g. the per-stage clock of tools/benchmark.py. The default does nothing
    # (``nullcontext(stage)``), at the cost of creating one object per stage.
    stage_timer: Callable[[str], ContextManager] = nullcontext

    def init_video_inference(self, *, tracker, track_label_rule: str, classes_per_track: int, nms_class_agnostic: bool):
        """Check and keep the video-inference settings (``self.num_classes`` already set)."""
        VideoTrackAccumulator.check_classes_per_track(classes_per_track, self.num_classes)
        if classes_per_track > 1 and not nms_class_agnostic:
            # Per-class NMS can keep one detection per class of an object, which would become
            # tracks reported under the same classes: duplicates.
            raise ValueError("TEST.CLASSES_PER_TRACK > 1 needs MODEL.SGNET.NMS_CLASS_AGNOSTIC True")
        self.tracker = tracker
        self.track_label_rule = track_label_rule
        self.classes_per_track = classes_per_track

    def inference_frame(self, image: Tensor, output_size, memory: TrackMemory) -> Instances:
        """Streaming API: one frame in, its tracked instances out (``track_ids`` field).

        ``memory`` holds the video's tracks and is updated in place; use a fresh
        :class:`~sgnet.tracking.TrackMemory` for each video. Detections the tracker drops as
        duplicates are removed from the output.
        """
        instances = self.detect_frame(image, output_size)
        # Association in float32 under autocast too: its similarities decide track identities.
        with autocast_disabled(), self.stage_timer("tracking"):
            track_ids = self.tracker.update(
                memory, instances.embeddings, instances.pred_boxes.tensor, instances.scores, instances.pred_classes
            )
        instances.track_ids = track_ids
        kept = track_ids >= 0
        # Indexing copies every (H, W) mask: skip it in the usual case where nothing is dropped.
        return instances if bool(kept.all()) else instances[kept]

    def video_accumulator(self, num_frames: Optional[int], output_size) -> VideoTrackAccumulator:
        """An empty accumulator of one video's tracks with this model's settings (those of
        :meth:`inference_video`, and of a stream's results, ``num_frames`` None: see
        :mod:`sgnet.predictor_outputs`)."""
        return VideoTrackAccumulator(num_frames, output_size, self.num_classes, self.track_label_rule, self.classes_per_track)

    def inference_video(self, video: dict) -> dict:
        """One video dict (``"image"``: list of (C, H, W) frames, ``"height"``, ``"width"``) ->
        ``{"image_size", "pred_scores", "pred_labels", "pred_masks"}`` (see
        :class:`~sgnet.tracking.VideoTrackAccumulator`)."""
        frames = video["image"]
        output_size = (video.get("height", frames[0].shape[-2]), video.get("width", frames[0].shape[-1]))
        memory = TrackMemory()
        accumulator = self.video_accumulator(len(frames), output_size)
        for frame_index, frame in enumerate(frames):
            instances = self.inference_frame(frame, output_size, memory)
            accumulator.add(
                frame_index, instances.track_ids, instances.class_scores, instances.pred_classes, instances.pred_masks
            )
        return accumulator.result()
