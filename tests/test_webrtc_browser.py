"""A real headless Chromium opens the page, sends its fake camera and microphone (fed from a
corpus clip) through the lip-sync pipeline, and gets video and audio back; the page's figures
fill in from the stats channel and the browser's own getStats()."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from stablesync.realtime.webrtc import ServeConfig, running_server
from stablesync.realtime.webrtc.clip import load_clip
from tests import webrtc_browser

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not webrtc_browser.available(), reason="needs Debian's chromium and chromium-driver"),
]
FIGURES = ("fps", "g2g", "server-latency", "av-offset", "late", "dropped", "lipsync", "backend")
READ_PAGE = """
const s = window.stablesync, v = document.getElementById('remote');
return {figures: s.figures, browser: s.browser, server: s.server, state: s.pc && s.pc.connectionState,
        videoWidth: v.videoWidth, error: document.getElementById('error').textContent};
"""


async def _watch(browser: webrtc_browser.Browser, url: str, timeout_s: float) -> dict[str, Any]:
    await asyncio.to_thread(browser.open, url)
    page: dict[str, Any] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await asyncio.sleep(1.0)
        page = await asyncio.to_thread(browser.script, READ_PAGE)
        assert not page["error"], page["error"]
        b = page["browser"] or {}
        filled = all(page["figures"].get(k, "–") != "–" for k in FIGURES)
        if filled and b.get("framesDecoded", 0) > 50 and b.get("audioSamples", 0) > 48_000:
            break
    return page


async def test_chromium_sends_camera_and_mic_and_gets_lipsync_back(
    tiny_corpus: Path, cpu_rt_export: Path, tmp_path: Path
) -> None:
    from stablesync.export import load_engine
    from stablesync.realtime.webrtc.lipsync import LipSyncFactory

    y4m, wav = webrtc_browser.write_fake_media(load_clip(tiny_corpus / "clip00001.mp4"), tmp_path)
    pipelines = LipSyncFactory(load_engine(cpu_rt_export, "ort-cpu"))
    async with running_server(ServeConfig(port=0), pipelines) as server:
        with webrtc_browser.Browser(y4m, wav) as browser:
            page = await _watch(browser, server.url + "?autostart=1", timeout_s=60)
            sessions = server.registry.sessions()
            assert len(sessions) == 1
            session_stats = sessions[0].stats
        b, figures = page["browser"], page["figures"]
        assert page["state"] == "connected" and page["videoWidth"] == 256
        assert b["framesDecoded"] > 50, b  # the returned video plays
        assert b["audioSamples"] > 48_000 and b["audioEnergy"] > 0, b  # the returned audio plays
        missing = [k for k in FIGURES if figures.get(k, "–") == "–"]
        assert not missing, (missing, figures)
        assert figures["backend"] == "ort-cpu" and figures["g2g"].endswith("ms")
        assert session_stats.frames_received > 50 and session_stats.frames_out > 50
        assert session_stats.modes["lipsync"] > 0, session_stats.modes  # the face went through the model
        assert await server.registry.wait_empty(10.0)  # closing the browser freed the session


async def test_demo_sample_page_sends_the_bundled_face_without_a_camera(
    rt_face_photo: Path, tmp_path: Path
) -> None:
    """`stablesync demo --serve`: the page plays the sample WebM instead of a camera and sends it."""
    from stablesync.realtime.local.sources import load_image
    from stablesync.realtime.webrtc import PassthroughFactory
    from stablesync.realtime.webrtc.clip import synthetic_clip
    from stablesync.realtime.webrtc.sample import write_sample_webm

    speech = synthetic_clip(3.0).audio[::3].copy()  # 16 kHz hum
    sample = write_sample_webm(load_image(rt_face_photo), speech, 16_000, tmp_path / "sample.webm")
    y4m, wav = webrtc_browser.write_fake_media(synthetic_clip(1.0), tmp_path)  # unused: no camera asked
    async with running_server(ServeConfig(port=0, sample_path=sample), PassthroughFactory()) as server:
        with webrtc_browser.Browser(y4m, wav) as browser:
            page = await _watch(browser, server.url + "?source=sample&autostart=1", timeout_s=40)
            (session,) = server.registry.sessions()
            frames_in = session.stats.frames_received
    b = page["browser"]
    assert frames_in > 50 and page["videoWidth"] == load_image(rt_face_photo).shape[1]
    assert b["framesDecoded"] > 50 and b["audioSamples"] > 48_000 and b["audioEnergy"] > 0, b
