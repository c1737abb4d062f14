"""Online association of per-frame detections into tracks."""
