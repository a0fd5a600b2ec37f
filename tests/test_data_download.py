"""``sharedsg data download`` that fails leaves nothing behind (no empty mnist/ or omniglot/
folder, no partial file), from an unreachable server, a local server with a wrong file, or a
mirror that lacks a file; it never touches what was there before. Nothing here uses the internet."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import subprocess
import sys
import threading

import pytest

from sharedsg.data import download as dl
from sharedsg.commands.data import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the with ends: nothing listens there


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www; its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _files(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


@pytest.mark.parametrize("dataset", ["omniglot", "mnist"])
def test_an_unreachable_url_is_one_line_and_leaves_no_folder(tmp_path, dataset):
    root = tmp_path / "new" / "root"
    result = subprocess.run([sys.executable, "-m", "sharedsg.cli", "data", "download", dataset, "--root", str(root),
                             "--url", f"http://127.0.0.1:{_closed_port()}/"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    err = result.stderr.strip()
    assert err.startswith("sharedsg: error: http://127.0.0.1:") and "download failed" in err and "\n" not in err
    assert _files(tmp_path) == []


def test_a_wrong_file_from_a_server_leaves_nothing(tmp_path, server, capsys):
    www, url = server
    (www / "images_background.npz").write_bytes(b"something else")
    root = tmp_path / "root"
    (root / "sdd").mkdir(parents=True)
    (root / "sdd" / "mine.txt").write_text("kept")
    assert main(["data", "download", "omniglot", "--root", str(root), "--url", url]) == 2
    assert "is not the expected" in capsys.readouterr().err
    assert _files(root) == ["sdd", "sdd/mine.txt"]


def test_a_file_missing_after_one_that_arrived_takes_that_one_back(tmp_path, monkeypatch, capsys):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.bin").write_bytes(b"first")
    monkeypatch.setitem(dl.DOWNLOADS, "omniglot", [("a.bin", hashlib.sha256(b"first").hexdigest()), ("b.bin", None)])
    root = tmp_path / "root"
    root.mkdir()
    assert main(["data", "download", "omniglot", "--root", str(root), "--url", mirror.as_uri()]) == 2
    assert "mirror/b.bin: download failed" in capsys.readouterr().err
    assert _files(root) == []
    (mirror / "b.bin").write_bytes(b"second")
    assert main(["data", "download", "omniglot", "--root", str(root), "--url", mirror.as_uri()]) == 0
    assert _files(root) == ["omniglot", "omniglot/a.bin", "omniglot/b.bin"]


def test_files_that_were_there_before_are_kept(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "a.bin").write_bytes(b"first")
    monkeypatch.setitem(dl.DOWNLOADS, "omniglot", [("a.bin", hashlib.sha256(b"first").hexdigest()), ("b.bin", None)])
    (tmp_path / "root" / "omniglot").mkdir(parents=True)
    (tmp_path / "root" / "omniglot" / "a.bin").write_bytes(b"first")
    with pytest.raises(dl.DataError, match="b.bin: not found"):
        dl.download("omniglot", tmp_path / "root", str(mirror), force=True)
    assert _files(tmp_path / "root") == ["omniglot", "omniglot/a.bin"]
