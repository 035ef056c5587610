"""The small things a user trips over: where `bench` writes, what `eval` says about an empty
split, the offline status line, the serve page's token message, `export` and `average` never
overwriting (or reading their own output), and `--help` staying quick (no torch)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stablesync.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


def test_bench_writes_a_relative_out_and_its_table_under_the_current_folder(tmp_path: Path) -> None:
    results_md = ROOT / "benchmarks" / "RESULTS.md"
    before = results_md.read_bytes()
    cmd = [sys.executable, "-m", "stablesync", "bench", "--quick", "--only", "stall_recovery", "--out", "rel"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "rel" / "stall_recovery.json").read_text())
    assert result["benchmark"] == "stall_recovery"
    assert "## stall_recovery" in (tmp_path / "benchmarks" / "RESULTS.md").read_text()
    assert results_md.read_bytes() == before  # the package's own table is left alone
    assert not (ROOT / "rel").exists()


def test_eval_on_a_corpus_without_test_clips_says_so(
    random_prepared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import dataclasses

    import torch

    from stablesync import checkpoint
    from stablesync.models import get_preset
    from stablesync.models.lipsync import LipSyncModel
    from stablesync.models.syncnet import AVSyncNet
    from stablesync.train.generator_stage import lipsync_config

    data = tmp_path / "prepared"
    shutil.copytree(random_prepared, data)
    (data / "test.txt").write_text("")  # a corpus too small to hold a test clip
    torch.manual_seed(0)
    cfg, _ = lipsync_config("cpu-rt", 32)
    checkpoint.save(tmp_path / "model.safetensors", LipSyncModel(cfg), cfg)
    sync_cfg = get_preset("cpu-rt").syncnet
    net = AVSyncNet(dataclasses.replace(sync_cfg, visual=dataclasses.replace(sync_cfg.visual, image_size=32)))
    checkpoint.save(tmp_path / "syncnet.safetensors", net, net.cfg)
    args = ["eval", "--checkpoint", str(tmp_path / "model.safetensors"), "--data", str(data)]
    assert cli_main([*args, "--out", str(tmp_path / "report.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "the test split is empty" in err and "at least 10 frames" not in err, err


def test_the_offline_status_line_shows_no_latency() -> None:
    import numpy as np

    from stablesync.realtime.pipeline.frames import OutputFrame, StageTimes, VideoFrame
    from stablesync.realtime.pipeline.telemetry import Telemetry

    tel = Telemetry()
    frame = VideoFrame(np.zeros((4, 4, 3), np.uint8), 0, 0, 0)
    out = OutputFrame(frame=frame, image=frame.image, mode="lipsync", stages=StageTimes(), deadline_ns=0)
    tel.record_output(out, 10_000_000, None, latency=False)  # --fast: capture times are synthetic
    line = tel.status_line()
    assert "g2g" not in line and "lipsync 1" in line, line
    tel.record_output(out, 120_000_000, None, latency=True)
    assert "g2g   120 ms" in tel.status_line()


def test_export_refuses_to_replace_an_export_without_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "weights"
    out.mkdir()
    (out / "manifest.json").write_text('{"kept": true}')
    assert cli_main(["export", "--random-init", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--out {out}" in err and "--overwrite" in err, err
    assert (out / "manifest.json").read_text() == '{"kept": true}'


@pytest.mark.parametrize("case", ["twice", "twice-other-spelling", "input-as-out", "existing-out"])
def test_average_refuses_duplicates_an_input_as_out_and_an_existing_out(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b, out = tmp_path / "a.safetensors", tmp_path / "b.safetensors", tmp_path / "avg.safetensors"
    for path in (a, b):
        path.write_bytes(b"checkpoint " + path.name.encode())
    (tmp_path / "sub").mkdir()
    cases: dict[str, tuple[list[Path], Path, str]] = {
        "twice": ([a, b, a], out, "given twice"),
        "twice-other-spelling": ([a, tmp_path / "sub" / ".." / "a.safetensors"], out, "given twice"),
        "input-as-out": ([a, b], b, "is also an input checkpoint"),
        "existing-out": ([a, b], out, "exists; pass --overwrite"),
    }
    inputs, target, expected = cases[case]
    if case == "existing-out":
        out.write_bytes(b"an earlier average")
    assert cli_main(["average", *map(str, inputs), "--out", str(target)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and expected in err, err
    assert a.read_bytes() == b"checkpoint a.safetensors" and b.read_bytes() == b"checkpoint b.safetensors"
    if case == "existing-out":
        assert out.read_bytes() == b"an earlier average"


@pytest.mark.parametrize("command", ["presets", "average"])
def test_help_does_not_load_torch(command: str) -> None:
    code = (
        "import sys\nfrom stablesync.cli import main\n"
        f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage: stablesync " + command in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("page_token", [None, "not-the-token"])
async def test_the_serve_page_tells_a_browser_user_how_to_get_in(
    page_token: str | None, tmp_path: Path
) -> None:
    """A browser user without the right token is told to open the address `serve` printed, not
    to send an HTTP header they cannot send."""
    import asyncio

    from stablesync.realtime.webrtc import ServeConfig, running_server
    from stablesync.realtime.webrtc.clip import synthetic_clip
    from stablesync.realtime.webrtc.processing import PassthroughFactory
    from tests import webrtc_browser

    if not webrtc_browser.available():
        pytest.skip("needs Debian's chromium and chromium-driver")
    y4m, wav = webrtc_browser.write_fake_media(synthetic_clip(seconds=1.0), tmp_path)
    config = ServeConfig(port=0, token="the-right-token")
    async with running_server(config, PassthroughFactory()) as server:
        with webrtc_browser.Browser(y4m, wav) as browser:
            fragment = f"#token={page_token}" if page_token else ""
            await asyncio.to_thread(browser.open, f"{server.url}?autostart=1{fragment}")
            error = ""
            for _ in range(60):
                await asyncio.sleep(0.5)
                error = await asyncio.to_thread(
                    browser.script, "return document.getElementById('error').textContent"
                )
                if error:
                    break
    assert "open the" in error and "address `stablesync serve` printed" in error, error
    assert "Authorization" not in error and "Bearer" not in error, error
