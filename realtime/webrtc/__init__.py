"""`stablesync serve`: the filter over WebRTC (aiohttp + aiortc), many sessions on one engine."""

from stablesync.realtime.webrtc.config import ServeConfig
from stablesync.realtime.webrtc.processing import (
    PassthroughFactory,
    PipelineFactory,
    ProcessedFrame,
    SessionPipeline,
)
from stablesync.realtime.webrtc.server import create_app, running_server, serve_until_signal

__all__ = [
    "PassthroughFactory",
    "PipelineFactory",
    "ProcessedFrame",
    "ServeConfig",
    "SessionPipeline",
    "create_app",
    "running_server",
    "serve_until_signal",
]
