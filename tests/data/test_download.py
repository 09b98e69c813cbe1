"""Downloads with checksum verification, against an HTTP server on 127.0.0.1."""

import functools
import hashlib
import threading
import zipfile
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from molmtl.data import DownloadError, RemoteFile, load_qm9, locate_qm9
from molmtl.data.download import download_file
from tests.data.conftest import read_first_frames, write_pyg_raw


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    """(folder, base URL) of a local HTTP server serving that folder."""
    folder = tmp_path / "served"
    folder.mkdir()
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder))
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_verified_download(served, tmp_path):
    folder, url = served
    (folder / "file.txt").write_text("hello")
    found = download_file(
        RemoteFile(f"{url}/file.txt", "file.txt", sha256(folder / "file.txt")), tmp_path / "out"
    )
    assert (tmp_path / "out" / "file.txt").read_text() == "hello" and found == sha256(
        folder / "file.txt"
    )


def test_checksum_mismatch_leaves_nothing(served, tmp_path):
    folder, url = served
    (folder / "file.txt").write_text("tampered")
    with pytest.raises(DownloadError, match=r"checksum mismatch.*expected SHA-256 0+, got"):
        download_file(RemoteFile(f"{url}/file.txt", "file.txt", "0" * 64), tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_remote_file(served, tmp_path):
    _, url = served
    with pytest.raises(DownloadError, match="could not download"):
        download_file(RemoteFile(f"{url}/absent.zip", "absent.zip"), tmp_path / "out")


def test_qm9_download_when_nothing_else_is_found(served, tmp_path, qm9_frame, monkeypatch):
    folder, url = served
    raw = tmp_path / "raw_source"
    raw.mkdir()
    write_pyg_raw(raw, qm9_frame.iloc[:20], read_first_frames(20), excluded=[5])
    with zipfile.ZipFile(folder / "qm9.zip", "w") as archive:
        for name in ("gdb9.sdf", "gdb9.sdf.csv"):
            archive.write(raw / name, name)
    (folder / "uncharacterized.txt").write_bytes((raw / "uncharacterized.txt").read_bytes())
    remotes = (
        RemoteFile(f"{url}/qm9.zip", "qm9.zip", sha256(folder / "qm9.zip"), extract=True),
        RemoteFile(
            f"{url}/uncharacterized.txt",
            "uncharacterized.txt",
            sha256(folder / "uncharacterized.txt"),
        ),
    )
    data_dir = tmp_path / "data"
    monkeypatch.setenv("MOLMTL_DATA", str(data_dir))
    monkeypatch.setattr("molmtl.data.qm9._qm9pack_source", lambda: None)

    source = locate_qm9(downloads=remotes)
    assert (
        source.layout == "pyg_raw" and source.files["sdf"] == data_dir / "qm9" / "raw" / "gdb9.sdf"
    )
    dataset = load_qm9(
        cache_dir=tmp_path / "cache", download=False
    )  # now found through $MOLMTL_DATA
    assert len(dataset) == 19 and "gdb_5" not in dataset.ids.tolist()


def test_failed_qm9_download_says_how_to_get_the_data(served, tmp_path, monkeypatch):
    _, url = served
    monkeypatch.setenv("MOLMTL_DATA", str(tmp_path / "data"))
    monkeypatch.setattr("molmtl.data.qm9._qm9pack_source", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"could not download .*pip install qm9pack"):
        locate_qm9(downloads=(RemoteFile(f"{url}/qm9.zip", "qm9.zip"),))


def test_unpinned_download_reports_its_checksum(served, tmp_path):
    folder, url = served
    (folder / "file.txt").write_text("hello")
    with pytest.warns(
        UserWarning, match=f"no pinned checksum .* SHA-256 {sha256(folder / 'file.txt')}"
    ):
        download_file(RemoteFile(f"{url}/file.txt", "file.txt"), tmp_path / "out")
    assert (tmp_path / "out" / "file.txt").exists()
