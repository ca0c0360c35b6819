"""Video and streams: faces detected every few frames and tracked in between, one name per
track from the votes of its views, appeared/left events; files, cameras and network streams.

    from facecnn.faces.recognize import Recognizer
    from facecnn.video import VideoRecognizer, VideoSource

    result = VideoRecognizer(Recognizer(gallery="team.db")).run(VideoSource("clip.mp4"))
    result.track_records()   # [{"track": 1, "name": "dora", "first_time": 0.0, ...}, ...]
"""

from facecnn.video.events import EventLog
from facecnn.video.recognize import TrackingOptions, VideoRecognizer, VideoResult
from facecnn.video.streams import VideoSource

__all__ = ["EventLog", "TrackingOptions", "VideoRecognizer", "VideoResult", "VideoSource"]
