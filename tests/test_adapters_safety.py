"""Restricted unpickler and safe tar reading, against real malicious payloads."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from tsdiff.data.safe_io import check_member_name, safe_load_pickle, safe_tar_members
from tsdiff.data.datasets.physionet import read_physionet_archive
from tsdiff.errors import DataError


class _Exploit:
    """Unpickling this runs ``os.system('touch <marker>')`` under a plain pickle.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps([["a"], {"a": 0}, _Exploit(marker)], protocol=2)
    path = tmp_path / "adj_mx.pkl"
    path.write_bytes(payload)
    with pytest.raises(DataError, match=r"posix\.system|os\.system|nt\.system"):
        safe_load_pickle(path)
    assert not marker.exists()
    # Control: the payload is real - an unrestricted load does create the marker.
    pickle.loads(payload)
    assert marker.exists()


def test_other_dangerous_globals_refused(tmp_path):
    for payload in [
        b"cbuiltins\neval\n(S'1+1'\ntR.",
        b"csubprocess\ncheck_output\n(S'true'\ntR.",
        b"cnumpy\nload\n(S'x'\ntR.",
    ]:
        with pytest.raises(DataError, match="refuses to load"):
            safe_load_pickle(payload)


def test_plain_containers_and_arrays_load():
    obj = [["773869", "767541"], {"773869": 0, "767541": 1}, np.eye(2, dtype=np.float32), {1.5, 2}, (np.float64(3.0),)]
    for proto in (2, 4, 5):
        out = safe_load_pickle(pickle.dumps(obj, protocol=proto))
        assert out[0] == obj[0] and out[1] == obj[1] and out[3] == obj[3]
        np.testing.assert_array_equal(out[2], obj[2])
        assert out[2].dtype == np.float32 and out[4][0] == 3.0


def test_truncated_pickle_is_a_data_error():
    with pytest.raises(DataError, match="not a readable pickle"):
        safe_load_pickle(pickle.dumps([1, 2, 3])[:-3])


def _tar_with(tmp_path, name, text=b"Time,Parameter,Value\n00:00,RecordID,1\n"):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return path


@pytest.mark.parametrize("name,what", [("../escape.txt", "'..'"), ("set-a/../../x.txt", "'..'"), ("/etc/x.txt", "absolute")])
def test_archive_member_escaping_is_refused(tmp_path, name, what):
    path = _tar_with(tmp_path, name)
    with pytest.raises(DataError, match=what):
        read_physionet_archive(path)
    assert not (tmp_path.parent / "escape.txt").exists()


def test_archive_link_member_refused(tmp_path):
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("set-a/1.txt")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with tarfile.open(path) as tar, pytest.raises(DataError, match="link"):
        list(safe_tar_members(tar, str(path)))


def test_member_name_check_accepts_normal_names():
    assert check_member_name("set-a/132539.txt") == "set-a/132539.txt"
    with pytest.raises(DataError):
        check_member_name("C:\\windows\\x")


def test_tiny_archive_parses(tmp_path):
    text = b"Time,Parameter,Value\n00:00,RecordID,7\n00:00,Weight,80\n00:10,HR,70\n00:50,HR,75\n47:59,Temp,37\n48:00,HR,1\n"
    ids, values = read_physionet_archive(_tar_with(tmp_path, "set-a/7.txt", text))
    assert ids.tolist() == [7] and values.shape == (1, 48, 35)
    from tsdiff.data.datasets.physionet import VARIABLES

    assert values[0, 0, VARIABLES.index("HR")] == 75  # last value within the hour
    assert values[0, 47, VARIABLES.index("Temp")] == 37
    assert np.isnan(values).sum() == 48 * 35 - 2  # Weight and the 48:00 row are dropped
