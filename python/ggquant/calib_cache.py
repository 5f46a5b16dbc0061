"""A SQLite cache of per-tensor measurements (weight error, KLD sensitivity), keyed by the model's checksum.

Profiling a model (:func:`ggquant.precision.profile`) quantizes every tensor to every candidate type
and, with ``kld=True``, runs the model on calibration text once per tensor. Those numbers depend only
on the weights, the calibration text, the importance matrix and the ggquant version, so they are stored
here, one record per ``(model SHA-256, tensor, type, metric, calibration SHA-256, imatrix SHA-256,
ggquant version)``. A model whose weight files change gets a new checksum and therefore never sees
stale records.

The database lives in ``~/.cache/ggquant/calib.sqlite`` (``$XDG_CACHE_HOME`` is honoured), or in
``cache_dir=`` / ``$GGQUANT_CACHE_DIR``. It uses write-ahead logging and a busy timeout, so several
processes may profile at the same time. A file that is not a SQLite database, is corrupt, or belongs
to another program raises :class:`CacheError` naming the file; the cache never guesses.

Example:
    >>> import tempfile
    >>> from ggquant.calib_cache import CalibCache, RecordKey
    >>> with CalibCache(tempfile.mkdtemp()) as c:
    ...     k = RecordKey("ab" * 32, "blk.0.attn_q.weight", "q4_K", "wmse")
    ...     c.put_many([(k, 1152, 0.0031)])
    ...     c.get_many([k])[k]
    (1152, 0.0031)
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ._core import build_info
from .errors import GGQuantError

_APP = "ggquant-calib-cache"
_SCHEMA = 1
_EXPORT_FORMAT = "ggquant-calib-cache-export"
_KEY_FIELDS = ("model_sha", "tensor", "type", "metric", "calib_sha", "imatrix_sha", "version")
_HASH_CHUNK = 8 << 20
# files besides the weights that change what the converter writes (names, permutations, vocabulary)
_SIDE_FILES = ("config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json")


class CacheError(GGQuantError):
    """The calibration cache (or an exported cache file) is unreadable, corrupt or not ggquant's."""


def ggquant_version() -> str:
    """The version string stored in every record (measurements of another version are not reused)."""
    return str(build_info()["version"])


@dataclass(frozen=True)
class RecordKey:
    """What a measurement depends on.

    Attributes:
        model_sha: SHA-256 of the model's weight files (:meth:`CalibCache.model_sha256`).
        tensor: GGUF tensor name, or a group name such as ``"blk.3"`` for a layer's KLD.
        type: ggml type name the tensor was quantized to (``"q4_K"``).
        metric: what was measured: ``"wmse"`` (plain weight MSE), ``"wimx"`` (imatrix-weighted), ``"kld"``.
        calib_sha / imatrix_sha: SHA-256 of the calibration text and of the importance matrix ("" if none).
        version: ggquant version that measured it.
    """

    model_sha: str
    tensor: str
    type: str
    metric: str
    calib_sha: str = ""
    imatrix_sha: str = ""
    version: str = ""

    def with_version(self) -> RecordKey:
        return self if self.version else RecordKey(self.model_sha, self.tensor, self.type, self.metric,
                                                   self.calib_sha, self.imatrix_sha, ggquant_version())


def default_cache_dir() -> Path:
    """``$GGQUANT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ggquant``, else ``~/.cache/ggquant``."""
    env = os.environ.get("GGQUANT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "ggquant"


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data`` (calibration text, imatrix contents)."""
    return hashlib.sha256(data).hexdigest()


class CalibCache:
    """The SQLite database of measurements.

    Args:
        cache_dir: directory of ``calib.sqlite`` (default :func:`default_cache_dir`), or the path of a
            ``.sqlite``/``.db`` file.
        timeout: seconds a writer waits for another process's lock before giving up.

    Raises:
        CacheError: the file is not a SQLite database, is corrupt, or was written by another program
            or by a newer ggquant.
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, *, timeout: float = 60.0):
        d = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.path = d if d.suffix in (".sqlite", ".db") else d / "calib.sqlite"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CacheError(f"{self.path.parent}: cannot create the cache directory: {e}") from e
        try:
            self._db = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise CacheError(f"{self.path}: cannot open the calibration cache: {e}") from e
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._open()
        except sqlite3.DatabaseError as e:
            self._db.close()
            raise CacheError(f"{self.path}: not a usable calibration cache ({e}); move it away or run "
                             f"'ggquant cache clear --cache-dir {self.path.parent}'") from e
        except CacheError:
            self._db.close()
            raise

    def _open(self) -> None:
        db = self._db
        ok = db.execute("PRAGMA quick_check").fetchone()
        if ok is None or ok[0] != "ok":
            raise CacheError(f"{self.path}: the database is corrupt ({ok[0] if ok else 'no answer'}); "
                             f"delete it or run 'ggquant cache clear --cache-dir {self.path.parent}'")
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            db.execute("PRAGMA journal_mode = WAL")
            self._write("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
                        "CREATE TABLE IF NOT EXISTS records (model_sha TEXT NOT NULL, tensor TEXT NOT NULL, "
                        "type TEXT NOT NULL, metric TEXT NOT NULL, calib_sha TEXT NOT NULL, "
                        "imatrix_sha TEXT NOT NULL, version TEXT NOT NULL, bytes INTEGER NOT NULL, "
                        "value REAL NOT NULL, created REAL NOT NULL, "
                        "PRIMARY KEY (model_sha, tensor, type, metric, calib_sha, imatrix_sha, version))",
                        "CREATE TABLE IF NOT EXISTS file_hashes (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                        "mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL)",
                        ("INSERT OR IGNORE INTO meta VALUES ('app', ?)", (_APP,)),
                        ("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(_SCHEMA),)))
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        else:
            db.execute("PRAGMA journal_mode = WAL")
        if "meta" not in tables or "records" not in tables:
            raise CacheError(f"{self.path}: a SQLite database of another program (tables: "
                             f"{', '.join(sorted(tables))}), not a ggquant calibration cache")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("app") != _APP:
            raise CacheError(f"{self.path}: a SQLite database of another program (app {meta.get('app')!r}), "
                             f"not a ggquant calibration cache")
        if meta.get("schema") != str(_SCHEMA):
            raise CacheError(f"{self.path}: calibration cache schema {meta.get('schema')!r}, this ggquant "
                             f"reads schema {_SCHEMA}")

    def _write(self, *statements: str | tuple[str, Sequence[Any]]) -> None:
        # BEGIN IMMEDIATE takes the write lock up front, so concurrent writers queue on busy_timeout
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for s in statements:
                if isinstance(s, tuple):
                    db.execute(s[0], s[1])
                else:
                    db.execute(s)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the database (also done by ``with``)."""
        self._db.close()

    def __enter__(self) -> CalibCache:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- records ---------------------------------------------------------------------------------

    def get_many(self, keys: Iterable[RecordKey]) -> dict[RecordKey, tuple[int, float]]:
        """The stored (bytes, value) of each key that has a record (keys without version use this one's)."""
        out: dict[RecordKey, tuple[int, float]] = {}
        q = ("SELECT bytes, value FROM records WHERE model_sha=? AND tensor=? AND type=? AND metric=? "
             "AND calib_sha=? AND imatrix_sha=? AND version=?")
        for k in keys:
            kv = k.with_version()
            row = self._db.execute(q, [getattr(kv, f) for f in _KEY_FIELDS]).fetchone()
            if row is not None:
                out[k] = (int(row[0]), float(row[1]))
        return out

    def put_many(self, items: Iterable[tuple[RecordKey, int, float]]) -> None:
        """Store (key, bytes, value) records in one transaction (an existing record is replaced)."""
        now = time.time()
        rows = [(*[getattr(k.with_version(), f) for f in _KEY_FIELDS], int(b), float(v), now) for k, b, v in items]
        if not rows:
            return
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO records VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def records(self, model_sha: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record (of one model if given), as dicts with the key fields, ``bytes`` and ``value``."""
        sql = "SELECT * FROM records" + (" WHERE model_sha=?" if model_sha else "") + " ORDER BY model_sha, tensor"
        cur = self._db.execute(sql, (model_sha,) if model_sha else ())
        cols = [c[0] for c in cur.description]
        for row in cur:
            yield dict(zip(cols, row))

    def summary(self) -> list[dict[str, Any]]:
        """Per (model, metric, calibration, imatrix, version): record count and tensor count, newest first."""
        cur = self._db.execute(
            "SELECT model_sha, metric, calib_sha, imatrix_sha, version, COUNT(*), COUNT(DISTINCT tensor), "
            "MAX(created) FROM records GROUP BY model_sha, metric, calib_sha, imatrix_sha, version "
            "ORDER BY MAX(created) DESC")
        keys = ("model_sha", "metric", "calib_sha", "imatrix_sha", "version", "records", "tensors", "created")
        return [dict(zip(keys, r)) for r in cur]

    def clear(self, model_sha: str | None = None) -> int:
        """Delete every record (of one model if given) and the file-hash memo; return the records deleted."""
        n = self._db.execute("SELECT COUNT(*) FROM records" + (" WHERE model_sha=?" if model_sha else ""),
                             (model_sha,) if model_sha else ()).fetchone()[0]
        if model_sha:
            self._write(("DELETE FROM records WHERE model_sha=?", (model_sha,)))
        else:
            self._write("DELETE FROM records", "DELETE FROM file_hashes")
        return int(n)

    def export(self, path: str | os.PathLike[str], model_sha: str | None = None) -> int:
        """Write the records (of one model if given) to a JSON file; return how many.

        The file can be copied to a machine without the calibration data and read with :meth:`import_file`.
        """
        recs = list(self.records(model_sha))
        write_json(path, {"format": _EXPORT_FORMAT, "schema": _SCHEMA, "records": recs}, CacheError, "cache export")
        return len(recs)

    def import_file(self, path: str | os.PathLike[str]) -> int:
        """Add the records of a file written by :meth:`export`; return how many.

        Raises:
            CacheError: the file is not a ggquant cache export, or a record is malformed.
        """
        p = Path(path)
        doc = read_json(p, _EXPORT_FORMAT, _SCHEMA, CacheError, "ggquant calibration cache export")
        items = []
        for i, r in enumerate(doc.get("records", [])):
            try:
                k = RecordKey(*[str(r[f]) for f in _KEY_FIELDS])
                b, v = int(r["bytes"]), float(r["value"])
            except (KeyError, TypeError, ValueError) as e:
                raise CacheError(f"{p}: record {i} is malformed ({e!r})") from None
            if len(k.model_sha) != 64 or b < 0 or not v >= 0:
                raise CacheError(f"{p}: record {i} ({k.tensor}, {k.type}) has bad values "
                                 f"(model_sha {k.model_sha!r}, bytes {b}, value {v})")
            items.append((k, b, v))
        self.put_many(items)
        return len(items)

    # -- model checksums -------------------------------------------------------------------------

    def file_sha256(self, path: str | os.PathLike[str]) -> str:
        """SHA-256 of a file, read streaming; a file whose (path, size, mtime) is memoised is not read again."""
        p = Path(path).resolve()
        try:
            st = p.stat()
        except OSError as e:
            raise CacheError(f"{p}: cannot stat the file to checksum it: {e}") from e
        row = self._db.execute("SELECT size, mtime_ns, sha256 FROM file_hashes WHERE path=?", (str(p),)).fetchone()
        if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return str(row[2])
        digest = hash_file(p)
        self._write(("INSERT OR REPLACE INTO file_hashes VALUES (?,?,?,?)", (str(p), st.st_size, st.st_mtime_ns, digest)))
        return digest



def write_json(path: str | os.PathLike[str], doc: Any, err: type[GGQuantError], what: str) -> None:
    """Write ``doc`` as JSON to a temporary name and rename it into place (no partial files)."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
        os.replace(tmp, p)
    except OSError as e:
        raise err(f"{p}: cannot write the {what}: {e}") from e


def read_json(path: str | os.PathLike[str], fmt: str, schema: int, err: type[GGQuantError], what: str) -> dict[str, Any]:
    """Read a JSON document whose ``format`` must be ``fmt`` and ``schema`` must be ``schema``."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise err(f"{p}: cannot read a {what}: {e}") from e
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise err(f"{p}: not a {what} (format {got!r})")
    if doc.get("schema") != schema:
        raise err(f"{p}: {what} schema {doc.get('schema')!r}, this ggquant reads {schema}")
    return doc


def hash_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_HASH_CHUNK):
                h.update(chunk)
    except OSError as e:
        raise CacheError(f"{path}: cannot read the file to checksum it: {e}") from e
    return h.hexdigest()


def model_sha256(files: Iterable[str | os.PathLike[str]], memo: CalibCache | None = None) -> str:
    """The model checksum: SHA-256 over the names and SHA-256s of its files (config, tokenizer, weights).

    With ``memo``, a file whose (path, size, mtime) the cache has seen is not read again.
    """
    h = hashlib.sha256()
    for f in sorted(Path(x) for x in files):
        h.update(f"{f.name}\0{memo.file_sha256(f) if memo is not None else hash_file(f)}\n".encode())
    return h.hexdigest()


def model_files(model_dir: str | os.PathLike[str]) -> list[Path]:
    """The files a model's checksum covers: config, tokenizer and weight files (safetensors, else .bin)."""
    d = Path(model_dir)
    weights = sorted(d.glob("*.safetensors")) or sorted(d.glob("pytorch_model*.bin"))
    if not weights:
        raise CacheError(f"{d}: no *.safetensors or pytorch_model*.bin files to checksum")
    side = [d / n for n in _SIDE_FILES if (d / n).is_file()]
    return side + weights


__all__ = ["CacheError", "CalibCache", "RecordKey", "default_cache_dir", "ggquant_version", "hash_file",
           "model_files", "model_sha256", "read_json", "sha256_bytes", "write_json"]
