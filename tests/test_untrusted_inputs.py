"""Files a user can be handed (a data folder, a results store) never run code and never reach outside themselves.

A crafted CIFAR-10 batch whose unpickling would create a file is refused, naming the file, before anything runs; a
manifest whose paths lead out of its entry (``..``, absolute paths, symlinks), lists an oversized file, or whose
``files`` is not a mapping makes a bad entry, never a read outside the store or a crash.
"""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from memlib.data import DamagedFile, DatasetUnavailable, load_raw, read_cifar_batch


class _CreatesFile:
    """Unpickling this calls ``what(*args)``: the classic pickle payload."""

    def __init__(self, what, *args):
        self.what, self.args = what, args

    def __reduce__(self):
        return self.what, self.args


def _cifar_folder(cifar_archive):
    load_raw("cifar10", root=cifar_archive, download=False)  # extracts the tiny archive
    return cifar_archive / "cifar-10-batches-py"


@pytest.mark.parametrize("payload", ["os.system", "builtins.open", "subprocess.call", "builtins.exec"])
def test_crafted_cifar_batch_runs_nothing_and_names_the_file(cifar_archive, tmp_path, payload):
    folder = _cifar_folder(cifar_archive)
    marker = tmp_path / "pwned"
    what, args = {"os.system": (os.system, (f"touch {marker}",)),
                  "builtins.open": (open, (str(marker), "w")),
                  "subprocess.call": (subprocess.call, (["touch", str(marker)],)),
                  "builtins.exec": (exec, (f"open({str(marker)!r}, 'w')",))}[payload]
    bad = folder / "data_batch_1"
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        bad.write_bytes(pickle.dumps({"data": _CreatesFile(what, *args), "labels": [0]}, protocol=protocol))
        with pytest.raises(DatasetUnavailable) as e:
            load_raw("cifar10", root=cifar_archive, download=False)
        assert not marker.exists()
        msg = str(e.value)
        assert f"{bad} is damaged" in msg and "\n" not in msg and "never holds" in msg


def test_object_arrays_and_other_codecs_are_refused(tmp_path):
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({"data": np.array([1, "x"], dtype=object), "labels": [0, 1]}, protocol=2))
    with pytest.raises(DamagedFile, match=str(p)):
        read_cifar_batch(p)
    p.write_bytes(pickle.dumps({"data": np.zeros((1, 3072), np.uint8), "labels": [0], "extra": {"a": 1}}))
    with pytest.raises(DamagedFile, match="not a dict of arrays"):
        read_cifar_batch(p)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_genuine_looking_batch_reads_at_every_protocol(tmp_path, protocol):
    p = tmp_path / "data_batch_1"
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    p.write_bytes(pickle.dumps({"batch_label": b"training batch 1 of 5", "labels": [3, 7], "data": data,
                                "filenames": [b"a.png", b"b.png"]}, protocol=protocol))
    d = read_cifar_batch(p)
    assert np.array_equal(d["data"], data) and d["labels"] == [3, 7] and d["filenames"] == [b"a.png", b"b.png"]


def test_oversized_cifar_batch_is_refused_unread(tmp_path, monkeypatch):
    import memlib.data as data_mod

    p = tmp_path / "test_batch"
    p.write_bytes(pickle.dumps({"data": np.zeros((4, 3072), np.uint8), "labels": [0] * 4}))
    monkeypatch.setattr(data_mod, "CIFAR10_MAX_BYTES", 1000)
    with pytest.raises(DamagedFile, match="more than a CIFAR-10 batch"):
        read_cifar_batch(p)


def test_no_unchecked_deserialization_in_memlib_or_tools():
    """The audit, kept: every pickle/torch.load/np.load/eval/yaml.load in memlib/ and tools/ is a checked one."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    allowed = {"pickle.loads(data, encoding=\"latin1\")",  # data.read_cifar_batch: only after torchvision's MD5
               "np.load(io.BytesIO(blobs[rel]), allow_pickle=False)"}
    risky = ("pickle.load", "torch.load(", "np.load(", "eval(", "exec(", "yaml.load(", "yaml.unsafe_load",
             "marshal.load", "shelve.open", "pd.read_pickle", "joblib.load")
    found = []
    for f in sorted([*root.joinpath("memlib").rglob("*.py"), *root.joinpath("tools").rglob("*.py")]):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            for r in risky:
                if r in code and not any(a in code for a in allowed) and ".eval()" not in code:
                    found.append(f"{f.relative_to(root)}:{n}: {line.strip()}")
    assert found == []
