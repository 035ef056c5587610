"""Per-session profiles in `stablesync serve` (issue 16), with real aiortc peers and real engines:
offers naming one profile share its engine and batcher, another profile gets its own, an
unknown one is a 400, GET /profiles lists names only behind the token, and an idle profile's
engine is closed. The profiles are copies of the shipped weights in a private XDG_DATA_HOME,
each marked in its manifest so a test can tell which folder an engine was loaded from."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

import stablesync
from stablesync.realtime.cli import serve as serve_cli
from stablesync.realtime.cli.serve import build_parser, open_pipelines, open_profiles
from stablesync.realtime.pipeline.loading import default_weights_dir
from stablesync.realtime.webrtc import running_server
from stablesync.realtime.webrtc.client import ClientResult, run_client
from stablesync.realtime.webrtc.clip import load_clip
from stablesync.realtime.webrtc.processing import PipelineFactory
from stablesync.realtime.webrtc.server import RunningServer
from tests import webrtc_browser

DEMO = Path(stablesync.__file__).parent / "assets" / "demo"
TOKEN = "profile-test-token"


@pytest.fixture
def profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Profiles A and B (the shipped weights, each manifest's `parity_inputs` naming its
    profile) and an unfinished one, `half`, in a private XDG_DATA_HOME; returns their folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "xdg" / "stablesync" / "profiles"
    for name in ("A", "B"):
        folder = root / name
        shutil.copytree(default_weights_dir(), folder)
        folder.chmod(0o700)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["parity_inputs"] = f"test profile {name}"
        (folder / "manifest.json").write_text(json.dumps(manifest))
    (root / "half" / "work").mkdir(parents=True)  # an enroll that did not finish
    return root


def _marker(factory: PipelineFactory | None) -> str:
    """Which folder a lip-sync factory's engine was loaded from (its manifest's marker)."""
    from stablesync.realtime.webrtc.lipsync import LipSyncFactory
    from stablesync.realtime.webrtc.worker_process import WorkerPipelines

    if isinstance(factory, WorkerPipelines):  # serve's default on ort-cpu: the workers load spec.weights
        assert factory.engine is not None
        marker = factory.engine.manifest.parity_inputs
        assert json.loads((factory.spec.weights / "manifest.json").read_text())["parity_inputs"] == marker
        return marker
    assert isinstance(factory, LipSyncFactory)
    return factory.batcher.engine.manifest.parity_inputs


@contextlib.asynccontextmanager
async def _serve(argv: list[str], **config: Any) -> AsyncIterator[RunningServer]:
    """`stablesync serve ARGV` as its main() opens it (the default engine, the profiles'
    opener), on a free port; `config` overrides ServeConfig fields."""
    args = build_parser("stablesync serve").parse_args(["--backend", "ort-cpu", "--budget-ms", "1000", *argv])
    # a free port; engines load slowly on a loaded machine
    serve_config = dataclasses.replace(serve_cli._config(args), port=0, handler_timeout_s=120.0, **config)
    async with running_server(
        serve_config, open_profiles(args, open_pipelines(args, args.in_process), serve_config)
    ) as server:
        yield server


async def _offer_sdp() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="sendrecv")
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = str(pc.localDescription.sdp)
    await pc.close()
    return sdp


async def _post_offer(
    server: RunningServer, offer: dict[str, Any], token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(server.url + "offer", json=offer, headers=headers) as r,
    ):
        return r.status, await r.json(content_type=None)


async def _get_profiles(server: RunningServer, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(server.url + "profiles", headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def _until(condition: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Polls `condition` every 0.05 s; whether it came true within `timeout_s` (a bound on waiting,
    not a timing check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_profiles_are_listed_by_name_behind_the_token_and_unknown_ones_refused(profiles: Path) -> None:
    async with _serve(["--token", TOKEN], auth_backoff_s=0.0) as server:
        assert (await _get_profiles(server))[0] == 401  # the same token as /offer
        status, listing = await _get_profiles(server, TOKEN)
        assert status == 200 and listing == {"profiles": ["A", "B"], "default": None}  # names only
        sdp = await _offer_sdp()
        refused = {
            "nobody": "profile 'nobody': not one of this server's profiles",
            "half": "profile 'half': not one of this server's profiles",  # unfinished: not served
            "../A": "profile: expected a profile name",
            "": "profile: expected a profile name",
            7: "profile: expected a profile name (a string), got 7",
        }
        for name, message in refused.items():
            status, answer = await _post_offer(server, {"sdp": sdp, "type": "offer", "profile": name}, TOKEN)
            assert status == 400 and answer["error"].startswith(message), (name, answer)
            assert "\n" not in answer["error"] and str(profiles) not in answer["error"]
        assert len(server.registry) == 0 and server.profiles.in_use() == {}  # nothing was opened


@pytest.mark.parametrize("mode", ["workers", "in-process"])
async def test_serve_profile_is_the_default_and_an_idle_profile_engine_is_reused_then_replaced(
    profiles: Path, mode: str
) -> None:
    in_process = ["--in-process"] if mode == "in-process" else []
    async with _serve(["--profile", "A", *in_process], profile_idle_s=600.0) as server:
        assert (await _get_profiles(server))[1] == {"profiles": ["A", "B"], "default": "A"}
        default = server.profiles.default
        assert _marker(default) == "test profile A"
        sdp = await _offer_sdp()
        # naming no profile, or the server's own, is the default engine: no other opened
        for offer in ({}, {"profile": "A"}):
            status, answer = await _post_offer(server, {"sdp": sdp, "type": "offer", **offer})
            assert status == 200 and answer["profile"] == "A", answer
        assert server.profiles.in_use() == {}
        status, answer = await _post_offer(server, {"sdp": sdp, "type": "offer", "profile": "B"})
        assert status == 200 and answer["profile"] == "B"
        b_factory = server.profiles.factory_of("B")
        assert _marker(b_factory) == "test profile B" and server.profiles.in_use() == {"B": 1}
        for session in server.registry.sessions():
            await session.close("test")
        assert server.profiles.in_use() == {"B": 0}  # idle, kept for profile_idle_s
        status, answer = await _post_offer(server, {"sdp": sdp, "type": "offer", "profile": "B"})
        assert status == 200 and server.profiles.factory_of("B") is b_factory  # reused
        (session,) = server.registry.sessions()
        await session.close("test")
        # another profile's engine opening closes the idle one at once
        shutil.copytree(profiles / "B", profiles / "C")
        assert (await _get_profiles(server))[1]["profiles"] == ["A", "B", "C"]  # listed as it appears
        status, answer = await _post_offer(server, {"sdp": sdp, "type": "offer", "profile": "C"})
        assert status == 200 and answer["profile"] == "C"
        assert server.profiles.in_use() == {"C": 1} and server.profiles.factory_of("B") is None
        if in_process:  # closed: its batcher's inference threads were shut down (the pool's own flag)
            assert await _until(lambda: b_factory.batcher._executor._shutdown)  # type: ignore[attr-defined]
        else:  # closed: its spare worker closed, none started again
            assert await _until(lambda: b_factory.closed)  # type: ignore[attr-defined]
        (session,) = server.registry.sessions()
        await session.close("test")
    finals = list(server.registry.finished)
    assert [f["profile"] for f in finals] == ["A", "A", "B", "B", "C"]  # in --stats-json too


def _lipsynced(result: ClientResult) -> int:
    assert result.error is None and result.stats, result.error
    return int(result.stats[-1]["modes"].get("lipsync", 0))


@pytest.mark.timeout(600)
async def test_sessions_of_one_profile_share_its_engine_and_another_profile_gets_its_own(
    profiles: Path,
) -> None:
    clip = load_clip(DEMO / "face.png", max_seconds=4.0)
    # in one process, where the profiles' batchers can be seen (with workers, each session has its own)
    async with _serve(["--in-process", "--threads", "1"], profile_idle_s=0.0) as server:
        seen: dict[str, Any] = {}

        async def watch() -> None:
            """While all three sessions are open: which profile engines, how many sessions each."""
            assert await _until(lambda: len(server.registry) == 3, timeout_s=120.0)
            seen["in_use"] = server.profiles.in_use()
            seen["A"], seen["B"] = server.profiles.factory_of("A"), server.profiles.factory_of("B")
            seen["clients"] = [seen[p].batcher.clients for p in ("A", "B")]  # type: ignore[union-attr]
            seen["sessions"] = sorted(
                str(server.registry.profile_of(s.id)) for s in server.registry.sessions()
            )

        a1, a2, b, _ = await asyncio.gather(
            run_client(server.url, clip, 5.0, settle_s=2.0, profile="A"),
            run_client(server.url, clip, 5.0, settle_s=2.0, profile="A"),
            run_client(server.url, clip, 5.0, settle_s=2.0, profile="B"),
            watch(),
        )
        assert await server.registry.wait_empty(10.0)
        assert await _until(lambda: server.profiles.in_use() == {})  # closed after the last session
        default = server.profiles.default
    assert seen["in_use"] == {"A": 2, "B": 1} and seen["sessions"] == ["A", "A", "B"], seen
    a_factory, b_factory = seen["A"], seen["B"]
    assert a_factory is not b_factory and a_factory is not default
    assert _marker(a_factory) == "test profile A" and _marker(b_factory) == "test profile B"
    assert seen["clients"] == [2, 1]  # both A sessions submit to A's one batcher
    # each session's lip-synced frames went through its profile's batcher, none through another's:
    # A's ran at least both A sessions' lip-synced frames and no more than every frame they sent
    # (out, or dropped inside the pipeline, plus up to a second after the last stats message)
    a_lipsync, b_lipsync = _lipsynced(a1) + _lipsynced(a2), _lipsynced(b)
    assert _lipsynced(a1) > 0 and _lipsynced(a2) > 0 and b_lipsync > 0, (
        a1.stats[-1],
        a2.stats[-1],
        b.stats[-1],
    )
    a_frames = sum(sum(r.stats[-1]["modes"].values()) + r.stats[-1]["dropped_frames"] for r in (a1, a2))
    assert a_lipsync <= a_factory.batcher.items_run <= a_frames + 60, (a_factory.batcher.items_run, a_frames)
    b_frames = sum(b.stats[-1]["modes"].values()) + b.stats[-1]["dropped_frames"]
    assert b_lipsync <= b_factory.batcher.items_run <= b_frames + 30, (b_factory.batcher.items_run, b_frames)
    assert default.batcher.items_run == 0 and default.batcher.batches_run == 0  # type: ignore[attr-defined]


READ_PAGE = """
const select = document.getElementById('profile'), s = window.stablesync;
return {options: Array.from(select.options, (o) => o.value), chosen: select.value,
        shown: !document.getElementById('profile-choice').hidden, figures: s.figures,
        state: s.pc && s.pc.connectionState, error: document.getElementById('error').textContent};
"""


@pytest.mark.slow
@pytest.mark.skipif(not webrtc_browser.available(), reason="needs Debian's chromium and chromium-driver")
async def test_the_page_lists_the_profiles_and_starts_with_the_one_chosen(
    profiles: Path, tmp_path: Path
) -> None:
    y4m, wav = webrtc_browser.write_fake_media(load_clip(DEMO / "face.png", max_seconds=2.0), tmp_path)
    async with _serve(["--token", TOKEN]) as server:
        with webrtc_browser.Browser(y4m, wav) as browser:
            # ?profile=B picks B in the chooser before the autostart; the token rides in the hash
            await asyncio.to_thread(browser.open, f"{server.url}?profile=B&autostart=1#token={TOKEN}")
            page: dict[str, Any] = {}

            def connected() -> bool:
                return page.get("state") == "connected" or bool(page.get("error"))

            for _ in range(120):
                page = await asyncio.to_thread(browser.script, READ_PAGE)
                if connected():
                    break
                await asyncio.sleep(0.5)
            in_use = server.profiles.in_use()
            session_profiles = [server.registry.profile_of(s.id) for s in server.registry.sessions()]
            # a wrong token: no chooser, and Start says what to open (its /profiles request counted
            # as a wrong token, so the offer may meet the back-off's 429 rather than a 401)
            await asyncio.to_thread(browser.open, f"{server.url}?autostart=1#token=wrong-token-value")
            wrong: dict[str, Any] = {}
            for _ in range(60):
                wrong = await asyncio.to_thread(browser.script, READ_PAGE)
                if wrong["error"]:
                    break
                await asyncio.sleep(0.5)
    assert not page["error"] and page["state"] == "connected", page
    assert page["options"] == ["", "A", "B"] and page["shown"] and page["chosen"] == "B", page
    assert page["figures"]["profile-used"] == "B"
    assert session_profiles == ["B"] and in_use == {"B": 1}
    assert "refused the token in the address" in wrong["error"] and not wrong["shown"], wrong
