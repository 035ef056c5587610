"""Where frames come from: microphone, audio file, webcam, still image, looping video file.

Every source has `async run(emit)`: it calls `await emit(frame_or_chunk)` for each item, on the
event loop, and returns at the end of its stream (or raises `SourceError` when the device
fails for good). Blocking device reads happen on the source's own executor thread.
"""

from stablesync.realtime.local.sources.audio import (
    AudioFileSource,
    MicSource,
    StreamResampler,
    load_audio_file,
    load_captured_audio,
)
from stablesync.realtime.local.sources.errors import SourceError
from stablesync.realtime.local.sources.video import CameraSource, ImageSource, VideoFileSource, load_image

__all__ = [
    "AudioFileSource",
    "CameraSource",
    "ImageSource",
    "MicSource",
    "SourceError",
    "StreamResampler",
    "VideoFileSource",
    "load_audio_file",
    "load_captured_audio",
    "load_image",
]
