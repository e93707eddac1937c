"""Downloads are capped in size: a server that streams without end (or declares a huge
Content-Length) is cut off at the cap with one line, and nothing is left on disk. Served by
a real local HTTP server, through the real download code."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmark.errors import BenchmarkError
from models.weights import MAX_DOWNLOAD_ENV, download


class _Endless(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        if self.path == "/declared":
            self.send_header("Content-Length", str(10**12))
        self.end_headers()
        block = b"\0" * (1 << 20)
        try:
            for _ in range(64):  # 64 MiB at most, far above the test's cap
                self.wfile.write(block)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endless)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("path", ["/endless", "/declared"])
def test_a_checkpoint_download_stops_at_its_cap(server, tmp_path: Path, monkeypatch, path):
    monkeypatch.setenv(MAX_DOWNLOAD_ENV, str(3 << 20))
    target = tmp_path / "weights.pt"
    with pytest.raises(BenchmarkError, match="cap of 3145728") as caught:
        download(server + path, "0" * 64, target, progress=False)
    assert "\n" not in str(caught.value)
    assert not target.exists() and list(tmp_path.iterdir()) == []


def test_a_bad_cap_setting_is_one_line(monkeypatch, tmp_path: Path):
    monkeypatch.setenv(MAX_DOWNLOAD_ENV, "lots")
    with pytest.raises(BenchmarkError, match=MAX_DOWNLOAD_ENV):
        download("http://127.0.0.1:9/x.pt", "0" * 64, tmp_path / "x.pt", progress=False)
