"""benchmarks/webrtc_soak.py says when the server had not closed its sessions by a reading, and
then leaves the fds and threads unjudged (issue 21): a reading with a session still open is not
the idle server's level."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from stablesync.benchmarks.webrtc_soak import compare, criteria, wait_closed


def _status_server(sessions: int) -> ThreadingHTTPServer:
    """A loopback HTTP server answering GET /status as `serve` does, with `sessions` open."""

    class Status(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"sessions": sessions, "mode": "passthrough"}).encode()
            self.send_response(200 if self.path == "/status" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            del format, args

    return ThreadingHTTPServer(("127.0.0.1", 0), Status)


@pytest.fixture(params=[0, 2])
def status_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    server = _status_server(request.param)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", request.param
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_wait_closed_says_when_sessions_are_still_open(
    status_url: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, sessions = status_url
    assert wait_closed(url, "after the soak", timeout_s=0.5) == sessions
    said = capsys.readouterr().err
    if sessions:
        assert said.strip() == f"after the soak: the server still holds {sessions} session(s) after 0.5 s"
    else:
        assert said == ""


def test_fds_and_threads_are_unjudged_with_a_session_open() -> None:
    rows = [
        {
            "minute": m,
            "glass_to_glass_ms_p50": 250.0,
            "server_latency_ms_p50": 120.0,
            "late_share": 0.2,
            "load_average_1m": 1.0,
            "rss_mb": 400.0,
            "rss_mb_min": 400.0,
            "fds": 12,
            "fds_min": 12,
            "threads": 11,
            "threads_min": 11,
        }
        for m in range(1, 4)
    ]
    baseline = {"fds": 12, "threads": 11, "sessions_open": 0}
    change = compare(rows, 1)
    idle = criteria(change, baseline, {"fds": 12, "threads": 11, "sessions_open": 0})
    assert idle["fds_back_to_baseline"] is True and idle["threads_back_to_baseline"] is True
    busy = criteria(change, baseline, {"fds": 12, "threads": 11, "sessions_open": 1})
    assert busy["fds_back_to_baseline"] is None and busy["threads_back_to_baseline"] is None
    busy_before = criteria(change, dict(baseline, sessions_open=1), {"fds": 12, "threads": 11})
    assert busy_before["threads_back_to_baseline"] is None
