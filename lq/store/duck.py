"""DuckDB over the SQLite file, with the sqlite extension loaded from the pinned wheel.

Nothing is downloaded at run time: the extension binary ships in the
``duckdb-extension-sqlite-scanner`` wheel (built for exactly the pinned ``duckdb`` version)
and is ``LOAD``-ed from its file path with signature checking left on. Automatic extension
install/load is switched off so that a missing file is an error, not a download.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from lq.errors import StoreError

__all__ = ["connect_duckdb", "sqlite_extension_path"]


def sqlite_extension_path() -> Path:
    """Path of the sqlite_scanner extension inside the installed wheel."""
    try:
        import duckdb_extension_sqlite_scanner as ext
    except ImportError as exc:  # pragma: no cover - a broken install
        raise StoreError(
            "duckdb-extension-sqlite-scanner is not installed; reinstall lq (pip install -e .)"
        ) from exc
    path = (
        Path(ext.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "sqlite_scanner.duckdb_extension"
    )
    if not path.exists():
        have = sorted(p.name for p in (Path(ext.__file__).parent / "extensions").glob("v*"))
        raise StoreError(
            f"no sqlite extension for duckdb {duckdb.__version__} in the wheel (it has {have}); "
            "pin duckdb to the extension wheel's version"
        )
    return path


def connect_duckdb(
    sqlite_path: str | os.PathLike[str], *, alias: str = "lq"
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the SQLite file attached read-only as ``alias``.

    Tables are then ``lq.ticks``, ``lq.bars_1s`` and so on; ``USE lq`` is set so plain
    names work too.
    """
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    con.execute(f"LOAD '{sqlite_extension_path()}'")
    path = str(Path(sqlite_path)).replace("'", "''")
    con.execute(f"ATTACH '{path}' AS {alias} (TYPE sqlite, READ_ONLY)")
    con.execute(f"USE {alias}")
    return con
