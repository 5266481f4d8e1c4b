"""Small I/O helpers every stage shares: atomic writes, Parquet with metadata, JSON."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path

_STARTED = time.time()  # temporaries older than this process are left over from a killed one


class DamagedFileError(ValueError):
    """An input file that exists but cannot be read (truncated, corrupt, not what it should be)."""

    def __init__(self, path: str | os.PathLike, problem: str | BaseException | None = None):
        if problem is None:  # re-raised from a message alone (e.g. by a DataLoader worker)
            super().__init__(str(path))
            return
        if isinstance(problem, BaseException):
            text = str(problem).strip().splitlines()
            problem = f"{type(problem).__name__}: {text[0][:200] if text else ''}"
        super().__init__(f"{path} is damaged ({problem}); rebuild it with: {rebuild_command(path)}")


def rebuild_command(path: str | os.PathLike) -> str:
    """The one command that rebuilds a workflow output and everything that depends on it."""
    return f"snakemake --cores all --forcerun {shlex.quote(str(path))}"


def remove_stale_temporaries(path: str | os.PathLike) -> list[Path]:
    """Remove temporaries of ``path`` (see :func:`atomic_path`) left by a process killed before this one started."""
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    # mkstemp/mkdtemp add 8 characters of [a-z0-9_]: match exactly, so that "a.b"'s temporaries are not "a"'s
    own = re.compile(rf"\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp({re.escape(path.suffix)})?")
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp*"):
        if not own.fullmatch(tmp.name):
            continue
        try:
            if tmp.lstat().st_mtime >= _STARTED:
                continue  # written since this process started: another live writer's
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; on success it is renamed onto ``path``, on error removed.

    Readers never see a half-written file or folder: the rename is atomic on one filesystem. Temporaries of the
    same target left by a killed process (older than this one) are removed first. The temporary's name starts with
    a dot and holds ``.tmp``: ``.<name>.<random>.tmp<suffix>``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        # mkstemp/mkdtemp create owner-only files; give the result the permissions of a normally created one
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, (0o777 if is_dir else 0o666) & ~umask)
        if is_dir and path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def write_json(obj, path: str | os.PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike):
    return json.loads(Path(path).read_text())


def write_parquet(df, path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write ``df`` atomically, without its index, with ``metadata`` (JSON-encoded) in the schema metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(df, preserve_index=False)
    if metadata:
        extra = {k.encode(): json.dumps(v, default=str).encode() for k, v in metadata.items()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_parquet(path: str | os.PathLike, **kw):
    """``pd.read_parquet`` that names a missing file and a damaged one (with the command that rebuilds it)."""
    import pandas as pd

    return _read(pd.read_parquet, path, **kw)


def read_table(path: str | os.PathLike, **kw):
    """:func:`read_parquet` as a pyarrow Table: a third of the CPU for a small table."""
    import pyarrow.parquet as pq

    return _read(pq.read_table, path, **kw)


def _read(reader, path: str | os.PathLike, **kw):
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} not found; build it with: snakemake --cores all {shlex.quote(str(path))}")
    try:
        return reader(path, **kw)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise DamagedFileError(path, err) from err


def read_parquet_metadata(path: str | os.PathLike) -> dict:
    """The JSON metadata written by :func:`write_parquet` (pandas' own key left out)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): json.loads(v) for k, v in meta.items() if k != b"pandas"}


def safe_name(text: str) -> str:
    """A filesystem- and wildcard-safe name: accents dropped (é -> e), then runs of characters outside
    ``[A-Za-z0-9_.-]`` become ``_``."""
    ascii_text = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode()
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", ascii_text).strip("_.")
    if not name:
        raise ValueError(f"cannot make a file name from {text!r}")
    return name


def unique_names(paths) -> dict[str, str]:
    """``{name: path}``: a distinct :func:`safe_name` for each distinct path, its file stem, with as many parent
    folders in front as it takes to tell apart videos that share a file name (``a/x.mp4``, ``b/x.mp4`` -> ``a_x``,
    ``b_x``)."""
    paths = list(dict.fromkeys(str(p) for p in paths))
    parts = {p: Path(p).with_suffix("").parts for p in paths}
    depth = dict.fromkeys(paths, 1)
    while True:
        names = {p: safe_name("_".join(parts[p][-depth[p]:])) for p in paths}
        clashing = [p for p in paths if list(names.values()).count(names[p]) > 1]
        if not clashing or all(depth[p] >= len(parts[p]) for p in clashing):
            break
        for p in clashing:
            depth[p] = min(depth[p] + 1, len(parts[p]))
    if len(set(names.values())) < len(paths):
        raise ValueError(f"cannot give these videos distinct names: {clashing}")
    return {name: p for p, name in names.items()}


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
