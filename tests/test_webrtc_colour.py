"""The colour round trip of `serve`: a colour chart through aiortc's real VP8 encoder and decoder
(the peer sending, the server receiving), then back either as a passed-through frame (the
decoded frame re-encoded as it came) or as a lip-synced one (through the server's RGB
conversions, `stablesync.realtime.webrtc.lipsync`). A lip-synced frame must come back with the colours of a
passed-through one: with swscale's default conversions it came back warmer (blue -3 levels)
and more saturated (+1.8%)."""

from __future__ import annotations

import fractions

import av
import numpy as np
from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, VpxPayloadDescriptor
from aiortc.jitterbuffer import JitterFrame
from numpy.typing import NDArray

from stablesync.realtime.webrtc.lipsync import _from_rgb, _to_rgb

# skin tones, saturated primaries, greys, a yellow: 5 x 2 patches of 64 x 120 px
CHART = (
    (200, 150, 120), (230, 190, 160), (120, 80, 60), (200, 40, 40), (40, 180, 60),
    (40, 60, 200), (128, 128, 128), (240, 240, 240), (20, 20, 20), (220, 200, 60),
)  # fmt: skip
F64 = NDArray[np.float64]


def chart() -> NDArray[np.uint8]:
    image = np.zeros((240, 320, 3), np.uint8)
    for i, rgb in enumerate(CHART):
        image[(i // 5) * 120 : (i // 5 + 1) * 120, (i % 5) * 64 : (i % 5 + 1) * 64] = rgb
    return image


def patch_means(image: NDArray[np.generic]) -> F64:
    """Each patch's mean colour, away from its edges (chroma is subsampled across them)."""
    return np.array(
        [
            image[(i // 5) * 120 + 30 : (i // 5 + 1) * 120 - 30, (i % 5) * 64 + 16 : (i % 5 + 1) * 64 - 16]
            .reshape(-1, 3)
            .mean(0)
            for i in range(len(CHART))
        ]
    )


def vp8(frame: av.VideoFrame) -> av.VideoFrame:
    """`frame` through aiortc's VP8 encoder, RTP payloads and decoder (a few frames, so the
    decoded one is not the first key frame's)."""
    encoder, decoder = Vp8Encoder(), Vp8Decoder()
    decoded: list[av.VideoFrame] = []
    for k in range(5):
        frame.pts, frame.time_base = k * 3000, fractions.Fraction(1, 90_000)
        payloads, timestamp = encoder.encode(frame, force_keyframe=k == 0)
        data = b"".join(VpxPayloadDescriptor.parse(p)[1] for p in payloads)
        decoded = [
            f
            for f in decoder.decode(JitterFrame(data=data, timestamp=timestamp))
            if isinstance(f, av.VideoFrame)
        ]
    return decoded[-1]


def saturation(patches: F64) -> float:
    return float((patches.max(axis=1) - patches.min(axis=1)).mean())


def test_a_lip_synced_frame_keeps_the_colours_of_a_passed_through_one() -> None:
    received = vp8(av.VideoFrame.from_ndarray(chart(), format="rgb24"))  # at the server
    passed = patch_means(vp8(received).to_ndarray(format="rgb24"))  # what the peer sees
    synced = patch_means(vp8(_from_rgb(_to_rgb(received))).to_ndarray(format="rgb24"))
    shift = (synced - passed).mean(axis=0)  # per channel, in levels
    assert np.all(np.abs(shift) <= 1.0), shift
    assert abs(saturation(synced) / saturation(passed) - 1.0) <= 0.01
    assert np.abs(patch_means(chart()) - passed).max() <= 12.0  # the chart itself survived VP8


def test_the_server_decodes_by_the_frame_s_own_range() -> None:
    """A frame tagged full range (an H.264 peer's VUI may say so) is read as full range."""
    image = chart()
    limited = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    full = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
        format="yuv420p", dst_colorspace="ITU601", dst_color_range="JPEG"
    )
    assert full.color_range == 2 and not np.array_equal(full.to_ndarray(), limited.to_ndarray())
    for frame in (limited, full):
        assert np.abs(patch_means(_to_rgb(frame)) - patch_means(image)).max() <= 2.0
