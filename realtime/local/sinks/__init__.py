"""Where processed frames go: an mp4 file, a virtual camera, a virtual microphone."""

from stablesync.realtime.local.sinks.file import FileSink, FileSinkConfig
from stablesync.realtime.local.sinks.virtual_camera import VirtualCameraConfig, VirtualCameraSink
from stablesync.realtime.local.sinks.virtual_mic import AudioDelayLine, VirtualMicConfig, VirtualMicSink

__all__ = [
    "AudioDelayLine",
    "FileSink",
    "FileSinkConfig",
    "VirtualCameraConfig",
    "VirtualCameraSink",
    "VirtualMicConfig",
    "VirtualMicSink",
]
