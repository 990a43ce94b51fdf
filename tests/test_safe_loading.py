"""Safe loading against real malicious payloads: each would create a marker file if it ran.

Checkpoints (model files, Lightning resume checkpoints) load with ``weights_only``;
pickled adjacency goes through the restricted unpickler; archives refuse absolute
paths, ``..`` and links; downloads are checksum-verified and a partial download is
never used. (tests/test_adapters_safety.py covers the unpickler and the PhysioNet
archive reader directly; tests/test_training.py a plain pickle as model file.)
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch

from tsdiff.config import load_config
from tsdiff.data.adapters.graph import from_dcrnn_pickle
from tsdiff.data.download import PART_SUFFIX, download, extract_archive, fetch_missing
from tsdiff.data.safe_io import safe_load_pickle
from tsdiff.data.datasets.base import DataFile, DatasetSpec
from tsdiff.errors import ConfigError, DataError, DatasetNotFoundError, TsdiffError
from tsdiff.training.checkpoint import load_model


class Exploit:
    """Runs ``touch <marker>`` when unpickled by an unrestricted loader."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class ExecExploit:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def _payloads(marker):
    """(description, object) pairs that each create ``marker`` when unpickled."""
    return [("os.system", Exploit(marker)), ("builtins.exec", ExecExploit(marker))]


def _control(payload: bytes, marker) -> None:
    """Prove the payload is real: an unrestricted load creates the marker."""
    assert not marker.exists()
    pickle.loads(payload)
    assert marker.exists()
    marker.unlink()


@pytest.mark.parametrize("kind", ["torch_zip", "legacy_pickle"])
def test_model_file_payloads_never_run(tmp_path, kind):
    marker = tmp_path / "pwned"
    for what, evil in _payloads(marker):
        path = tmp_path / f"{what}.pt"
        obj = {"format": "tsdiff-model-v1", "hparams": evil, "state_dict": {}}
        if kind == "torch_zip":
            torch.save(obj, path)  # the pickle inside torch's zip container carries the payload
        else:
            path.write_bytes(pickle.dumps(obj, protocol=2))
        with pytest.raises(TsdiffError, match="is not a loadable tsdiff model file"):
            load_model(path)
        assert not marker.exists(), what
    _control(pickle.dumps(Exploit(marker)), marker)


def test_resume_checkpoint_payload_never_runs(tmp_path):
    from tsdiff.experiment import resume_checkpoint

    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    for what, evil in _payloads(marker):
        torch.save({"global_step": 10, "state_dict": {}, "callbacks": evil}, out / "checkpoints/last.ckpt")
        cfg = load_config(None, [f"output.dir={out}", "trainer.resume=true"])
        with pytest.warns(UserWarning, match="skipping an unreadable checkpoint"):
            assert resume_checkpoint(cfg) is None  # refused, never resumed from
        cfg = load_config(None, [f"output.dir={out}", f"trainer.resume={out / 'checkpoints/last.ckpt'}"])
        with pytest.raises(ConfigError, match="cannot be resumed from"):
            resume_checkpoint(cfg)
        assert not marker.exists(), what


def test_api_model_file_payload_never_runs(tmp_path):
    import tsdiff.api as api
    marker = tmp_path / "pwned"
    path = tmp_path / "forecaster.pt"
    torch.save({"format": "tsdiff-model-v1", "hparams": Exploit(marker)}, path)
    for cls in (api.Forecaster, api.Imputer):
        with pytest.raises(TsdiffError, match="is not a loadable tsdiff model file"):
            cls.load(path)
    assert not marker.exists()


def test_pickled_adjacency_payloads_never_run(tmp_path):
    marker = tmp_path / "pwned"
    good = [["s1", "s2"], {"s1": 0, "s2": 1}, np.array([[1.0, 0.5], [0.5, 1.0]], dtype=np.float32)]
    path = tmp_path / "adj_mx.pkl"
    path.write_bytes(pickle.dumps(good, protocol=2))
    graph = from_dcrnn_pickle(path, num_nodes=2)
    assert graph.num_nodes == 2 and graph.node_names == ["s1", "s2"]
    for what, evil in _payloads(marker):
        for proto in (0, 2, 4, 5):
            # the payload hides inside a valid-looking DCRNN triple, in the id list
            path.write_bytes(pickle.dumps([["s1", evil], good[1], good[2]], protocol=proto))
            with pytest.raises(DataError, match="refuses to load"):
                from_dcrnn_pickle(path, num_nodes=2)
            assert not marker.exists(), (what, proto)
    # numpy's own reconstructor must not become a way to call other globals
    sneaky = (b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncposix\nsystem\n"
              b"K\x00\x85c_codecs\nencode\nX\x01\x00\x00\x00bX\x06\x00\x00\x00latin1\x86R\x87R.")
    with pytest.raises(DataError, match="posix.system"):
        safe_load_pickle(sneaky)
    _control(pickle.dumps(Exploit(marker), protocol=2), marker)


# --- archives --------------------------------------------------------------------------------


def _tar(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, payload
                tar.addfile(info)
            elif kind == "device":
                info.type = tarfile.CHRTYPE
                tar.addfile(info)
    return path


@pytest.mark.parametrize("members, fragment", [
    ([("ok.txt", "file", b"fine"), ("../../escape/pwned", "file", b"x")], "contains '..'"),
    ([("ok.txt", "file", b"fine"), ("{abs}", "file", b"x")], "absolute path"),
    ([("link", "symlink", "{out}"), ("link/pwned", "file", b"x")], "is a link"),
    ([("hard", "hardlink", "{abs}")], "is a link"),
    ([("dev", "device", None)], "device file"),
])
def test_tar_extraction_refuses_escapes(tmp_path, members, fragment):
    outside = tmp_path / "escape"
    outside.mkdir()
    marker = outside / "pwned"
    filled = [(n.format(abs=str(marker), out=str(outside)), k,
               p.format(abs=str(marker), out=str(outside)) if isinstance(p, str) else p) for n, k, p in members]
    archive = _tar(tmp_path / "evil.tar.gz", filled)
    dest = tmp_path / "data" / "x"
    dest.mkdir(parents=True)
    with pytest.raises(DataError, match=fragment):
        extract_archive(archive, dest)
    assert not marker.exists()
    assert list(dest.iterdir()) == []  # nothing written from a refused archive
    # control: tarfile without a filter really would write the marker for the path attacks
    if fragment in ("contains '..'", "absolute path"):
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="fully_trusted")
        assert marker.exists()


def test_zip_extraction_refuses_escapes_and_extracts_good_files(tmp_path):
    marker = tmp_path / "pwned"
    for name in ("../pwned", str(marker), "a/../../pwned"):
        archive = tmp_path / "evil.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("ok.txt", "fine")
            zf.writestr(name, "x")
        dest = tmp_path / "out"
        dest.mkdir(exist_ok=True)
        with pytest.raises(DataError, match=r"'\.\.'|absolute path"):
            extract_archive(archive, dest)
        assert not marker.exists() and list(dest.iterdir()) == []
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as zf:
        zf.writestr("set-a/1.txt", "one")
        zf.writestr("set-a/2.txt", "two")
    files = extract_archive(good, tmp_path / "good")
    assert sorted(p.read_text() for p in files) == ["one", "two"]
    with pytest.raises(DataError, match="already exists"):
        extract_archive(good, tmp_path / "good")
    tar_files = extract_archive(_tar(tmp_path / "g.tar.gz", [("d/f.txt", "file", b"abc")]), tmp_path / "gt")
    assert [p.read_bytes() for p in tar_files] == [b"abc"]


def test_extraction_never_follows_a_planted_link(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(outside, dest / "sub")  # planted before extraction
    archive = _tar(tmp_path / "a.tar.gz", [("sub/pwned", "file", b"x")])
    with pytest.raises(DataError, match="outside|link"):
        extract_archive(archive, dest)
    assert not (outside / "pwned").exists()


# --- downloads -------------------------------------------------------------------------------


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server over ``tmp_path / 'www'``; yields its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_verifies_checksum_over_http(tmp_path, http_server):
    root, base = http_server
    data = os.urandom(300_000)
    (root / "file.bin").write_bytes(data)
    good = hashlib.sha256(data).hexdigest()
    dest = tmp_path / "data" / "file.bin"
    seen = []
    assert download(f"{base}/file.bin", dest, good, chunk_size=65536, progress=seen.append) == dest
    assert dest.read_bytes() == data and seen[-1] == len(data) and len(seen) >= 5
    assert not dest.with_name(dest.name + PART_SUFFIX).exists()
    # already there and verified: no request at all
    assert download("http://127.0.0.1:9/unreachable", dest, good) == dest
    # a wrong checksum: the download is deleted, never used
    other = tmp_path / "data" / "other.bin"
    with pytest.raises(DataError, match="not the expected .* it was deleted and not used"):
        download(f"{base}/file.bin", other, "0" * 64)
    assert not other.exists() and not other.with_name(other.name + PART_SUFFIX).exists()
    with pytest.raises(DatasetNotFoundError, match="could not download .*404"):
        download(f"{base}/missing.bin", tmp_path / "m.bin", good)
    with pytest.raises(DataError, match="SHA-256 of 64 hex digits"):
        download(f"{base}/file.bin", tmp_path / "x.bin", "abc")
    with pytest.raises(DataError, match="unsupported URL"):
        download("ftp://example.org/x", tmp_path / "x.bin", good)


def test_existing_file_with_other_checksum_is_never_overwritten(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"published")
    dest = tmp_path / "dest.bin"
    dest.write_bytes(b"users own file")
    with pytest.raises(DataError, match="is not overwritten"):
        download(src.as_uri(), dest, hashlib.sha256(b"published").hexdigest())
    assert dest.read_bytes() == b"users own file"


class _BrokenResponse(io.BytesIO):
    """A response that delivers part of the body and then dies (connection reset)."""

    headers = {"Content-Length": "1000"}

    def read(self, n=-1):
        if self.tell() >= 400:
            raise ConnectionResetError("connection reset by peer")
        return super().read(min(n, 200))


class _ShortResponse(io.BytesIO):
    """The server closes the connection early without an error."""

    headers = {"Content-Length": "1000"}


def test_partial_downloads_are_never_used(tmp_path):
    data = bytes(range(256)) * 4  # 1024 bytes; the server claims 1000 and sends less
    sha = hashlib.sha256(data[:1000]).hexdigest()
    dest = tmp_path / "f.bin"
    part = dest.with_name(dest.name + PART_SUFFIX)
    with pytest.raises(DatasetNotFoundError, match="broke off after 400 bytes"):
        download("https://example.org/f.bin", dest, sha, opener=lambda url, timeout: _BrokenResponse(data))
    assert not dest.exists() and not part.exists()
    with pytest.raises(DataError, match="incomplete: 600 of 1000 bytes"):
        download("https://example.org/f.bin", dest, sha, opener=lambda url, timeout: _ShortResponse(data[:600]))
    assert not dest.exists() and not part.exists()
    # a stale .part from a killed earlier run is ignored and replaced, never renamed into place
    part.write_bytes(data[:1000])
    src = tmp_path / "src.bin"
    src.write_bytes(data[:1000])
    assert download(src.as_uri(), dest, sha).read_bytes() == data[:1000]
    assert not part.exists()
    part.write_bytes(b"garbage")  # a crash mid-download of another attempt
    with pytest.raises(DataError, match="not the expected"):
        download(src.as_uri(), tmp_path / "g.bin", "1" * 64)


def test_fetch_missing_downloads_only_verified_files(tmp_path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "a.csv").write_text("x\n1\n")
    (www / "b.csv").write_text("y\n2\n")
    sha_a = hashlib.sha256(b"x\n1\n").hexdigest()
    spec = DatasetSpec(name="demo", folder="demo", files=(DataFile("a.csv", sha_a), DataFile("b.csv", None)),
                       source="https://example.org", licence="CC0")
    data_root = tmp_path / "data"
    urls = {"a.csv": (www / "a.csv").as_uri(), "b.csv": (www / "b.csv").as_uri()}
    with pytest.raises(DataError, match="b.csv has no published SHA-256, so it is not downloaded"):
        fetch_missing(spec, data_root, urls)
    assert (data_root / "demo/a.csv").read_text() == "x\n1\n"  # the verifiable one arrived
    (data_root / "demo/b.csv").write_text("y\n2\n")  # the user supplies the other by hand
    paths = fetch_missing(spec, data_root, urls)
    assert sorted(paths) == ["a.csv", "b.csv"]
    with pytest.raises(DatasetNotFoundError, match="missing file"):
        fetch_missing(DatasetSpec(name="d2", folder="d2", files=(DataFile("c.csv", sha_a),), source="s",
                                  licence="l"), data_root, {})


def test_unreadable_model_files_get_a_one_line_reason(tmp_path):
    import datetime

    from tsdiff.training.checkpoint import load_model

    text = tmp_path / "notes.pt"
    text.write_text("garbage\n")
    with pytest.raises(TsdiffError) as info:
        load_model(text)
    assert str(info.value) == f"{text} is not a loadable tsdiff model file: the file is not a torch checkpoint, " \
                              "or is damaged, e.g. truncated (UnpicklingError); pass a file written by Imputer.save / " \
                              "Forecaster.save, --save-model or `tsdiff fit`"

    obj = tmp_path / "object.pt"
    torch.save({"format": "tsdiff-model-v1", "hparams": datetime.date(2020, 1, 1)}, obj)
    with pytest.raises(TsdiffError) as info:
        load_model(obj)
    assert str(info.value) == (f"{obj} is not a loadable tsdiff model file: it holds Python objects other than "
                               "tensors and plain data, which tsdiff never writes and does not run (safe loading); "
                               "only load model files written by tsdiff")
