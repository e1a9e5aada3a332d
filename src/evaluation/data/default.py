"""The embedded default: synthetic Cardiff data generated and ingested on first use.

The first command that needs data builds them: the seeded generator writes police.uk-format
files under ``data/synthetic/`` and they are ingested into a fresh DuckDB file, which is
renamed into place only when complete (a killed first run leaves no half-built database).
A file lock makes parallel runs wait for one builder instead of racing.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evaluation import config


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_default(path: Path) -> bool:
    """True when ``path`` is the default database location."""
    return Path(path).resolve() == config.default_database().resolve()


def ensure_default_database(path: Path | None = None, seed: int = config.DEFAULT_SEED) -> Path:
    """Build the synthetic default database at ``path`` if it does not exist yet.

    Returns
    -------
    Path
        The database file.
    """
    path = Path(path or config.default_database())
    if path.exists():
        return path
    with _lock(path.parent / ".evaluation-build.lock"):
        if path.exists():  # another process built it while we waited
            return path
        # imported only to build: checking that the database is there stays light
        from evaluation.data import database, policeuk, synthetic

        generated = synthetic.generate(config.synthetic_dir(), seed=seed)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.building")
        tmp.unlink(missing_ok=True)
        con = database.connect(tmp)
        try:
            policeuk.ingest([generated.street_dir], con, crosswalk=generated.crosswalk_csv)
        finally:
            con.close()
        os.replace(tmp, path)
    return path
