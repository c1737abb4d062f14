"""Online association of per-frame detections into tracks, and per-video track outputs."""
from .tracker import OnlineTracker, TrackMemory
from .video_results import VideoTrackAccumulator

__all__ = ["OnlineTracker", "TrackMemory", "VideoTrackAccumulator"]
