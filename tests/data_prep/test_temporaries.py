"""The real-data builders remove what a killed unpack or model assembly left behind (#12 case 4)."""

import os
import subprocess
from pathlib import Path

import pytest

from tests.data.temporaries import dead_pid, fake_temp


def _tiny_deb(tmp_path: Path) -> Path:
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: cvs-tiny\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: tiny\n")
    (pkg / "usr" / "share").mkdir(parents=True)
    (pkg / "usr" / "share" / "hello.txt").write_text("hi\n")
    deb = tmp_path / "cvs-tiny_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(pkg), str(deb)], check=True, capture_output=True)
    return deb


@pytest.mark.skipif(not Path("/usr/bin/dpkg-deb").exists(), reason="needs dpkg-deb")
def test_unpack_removes_temporaries_of_a_killed_unpack(tmp_path):
    from data_prep import tuxdigits_common

    deb = _tiny_deb(tmp_path)
    cache = tmp_path / "cache"
    stale = fake_temp(cache / "root", "cvs-tiny_1.0", dead_pid())
    live = fake_temp(cache / "root", "cvs-tiny_1.0", os.getppid())
    dest = tuxdigits_common.unpack(deb, cache)
    assert (dest / "usr" / "share" / "hello.txt").read_text() == "hi\n"
    assert not stale.exists() and live.is_dir()


def test_whisper_assembly_removes_temporaries_of_a_killed_assembly(tmp_path, monkeypatch):
    from cvs_tf.data.encoders import offline

    part1, part2 = tmp_path / "p1", tmp_path / "p2"
    part1.mkdir(), part2.mkdir()
    (part1 / "model.bin.part1").write_bytes(b"ab")
    (part2 / "model.bin.part2").write_bytes(b"cd")
    for n in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (part1 / n).write_text("{}")
    monkeypatch.setattr(offline, "_whisper_parts", lambda: [part1, part2])  # where assemble_whisper lives
    stale = fake_temp(tmp_path / "cache" / "models", "whisper-base-ct2", dead_pid())
    dest = offline.assemble_whisper(tmp_path / "cache")
    assert (dest / "model.bin").read_bytes() == b"abcd"
    assert not stale.exists()
