"""The calibration cache: records keyed by every input, restart, two writers, file checksums, bad files."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ggquant import calib_cache as cc
from ggquant.calib_cache import CacheError, CalibCache, RecordKey

SHA = "ab" * 32


def key(tensor: str = "blk.0.attn_q.weight", **kw: str) -> RecordKey:
    return RecordKey(kw.pop("model_sha", SHA), tensor, kw.pop("type", "q4_K"), kw.pop("metric", "wmse"), **kw)


def test_records_survive_a_restart_and_every_key_field_counts(tmp_path: Path) -> None:
    with CalibCache(tmp_path) as c:
        c.put_many([(key(), 1152, 0.25), (key("blk.1.ffn_up.weight"), 2304, 0.5)])
    with CalibCache(tmp_path) as c:  # a new connection: as another process after a restart
        got = c.get_many([key(), key("blk.1.ffn_up.weight")])
        assert got == {key(): (1152, 0.25), key("blk.1.ffn_up.weight"): (2304, 0.5)}
        others = [key(type="q5_K"), key(metric="wimx"), key(calib_sha="c" * 64), key(imatrix_sha="d" * 64),
                  key(version="0.0.0-other"), key(model_sha="ef" * 32)]
        assert c.get_many(others) == {}
        assert c.summary()[0]["records"] == 2


def test_two_processes_write_at_the_same_time(tmp_path: Path) -> None:
    script = (
        "import sys; from ggquant.calib_cache import CalibCache, RecordKey\n"
        "c = CalibCache(sys.argv[1])\n"
        "for i in range(150):\n"
        "    c.put_many([(RecordKey('ab' * 32, f'{sys.argv[2]}.{i}', 'q4_K', 'wmse'), i, i / 7)])\n"
        "c.close()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    CalibCache(tmp_path).close()
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), w], env=env, stderr=subprocess.PIPE)
             for w in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with CalibCache(tmp_path) as c:
        got = c.get_many([key(f"{w}.{i}") for w in "ab" for i in range(150)])
    assert len(got) == 300
    assert got[key("b.149")] == (149, 149 / 7)


def test_file_checksum_is_memoised_and_follows_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x" * 1000)
    with CalibCache(tmp_path / "cache") as c:
        first = cc.model_sha256([f], c)
        calls = []
        real = cc.hash_file
        monkeypatch.setattr(cc, "hash_file", lambda p: calls.append(p) or real(p))
        assert cc.model_sha256([f], c) == first and calls == []  # (path, size, mtime) unchanged: not read
        f.write_bytes(b"y" * 1000)
        st = f.stat()
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
        changed = cc.model_sha256([f], c)
        assert changed != first and len(calls) == 1
    assert cc.model_sha256([f]) == changed  # without a memo: the same checksum


def test_corrupt_and_foreign_databases_are_reported(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "calib.sqlite").write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(CacheError, match=r"bad/calib\.sqlite.*not a usable calibration cache"):
        CalibCache(bad)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    db = sqlite3.connect(foreign / "calib.sqlite")
    db.execute("CREATE TABLE photos (id INTEGER)")
    db.commit()
    db.close()
    with pytest.raises(CacheError, match="another program"):
        CalibCache(foreign)


def test_truncated_database_never_yields_numbers(tmp_path: Path) -> None:
    with CalibCache(tmp_path) as c:
        c.put_many([(key(f"t{i}"), i, float(i)) for i in range(2000)])
    p = tmp_path / "calib.sqlite"
    for side in (p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
        side.unlink(missing_ok=True)
    data = bytearray(p.read_bytes())
    data[len(data) // 2:len(data) // 2 + 4096] = b"\xff" * 4096  # a page of garbage in the middle
    p.write_bytes(bytes(data))
    with pytest.raises(CacheError, match="calib.sqlite"):
        CalibCache(tmp_path)


def test_export_import_clear(tmp_path: Path) -> None:
    out = tmp_path / "export.json"
    with CalibCache(tmp_path / "a") as a:
        a.put_many([(key(), 10, 0.5), (key(model_sha="cd" * 32), 20, 0.75)])
        assert a.export(out, model_sha=SHA) == 1
        assert a.clear() == 2 and a.get_many([key()]) == {}
    with CalibCache(tmp_path / "b") as b:
        assert b.import_file(out) == 1
        assert b.get_many([key()]) == {key(): (10, 0.5)}
    (tmp_path / "foreign.json").write_text('{"format": "something-else", "records": []}')
    with CalibCache(tmp_path / "b") as b, pytest.raises(CacheError, match="not a ggquant calibration cache export"):
        b.import_file(tmp_path / "foreign.json")


def test_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GGQUANT_CACHE_DIR", str(tmp_path / "env"))
    assert cc.default_cache_dir() == tmp_path / "env"
    with CalibCache() as c:
        assert c.path == tmp_path / "env" / "calib.sqlite"
    monkeypatch.delenv("GGQUANT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cc.default_cache_dir() == tmp_path / "xdg" / "ggquant"
