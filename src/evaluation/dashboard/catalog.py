"""Which evaluations the dashboards may show, and reading them.

A request names an evaluation in its query string (``?name=operation_talon``). That value is
untrusted: it is accepted only when it is, character for character, the name of a report
folder that exists now (a whitelist built by listing the reports folder), and the folder
read is the one found by the listing, never a path built from the request.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs

from evaluation import config
from evaluation.dashboard import REPORTS_ENV
from evaluation.results import EvaluationResults, read_results

#: What a report name may look like (a params file stem): no dots, slashes or spaces.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
#: A run folder's suffix as written by :mod:`evaluation.runner` (``<name>-<stamp>-<hex>``).
_RUN_SUFFIX = re.compile(r"-\d{8}T\d{6}-[0-9a-f]{6}")
_FAILED = ".failed"
#: Longest query string read (a name is short; anything longer is not one).
_MAX_QUERY = 2048


def reports_dir() -> Path:
    """The reports folder: ``$EVALUATION_REPORTS`` (set by ``serve``), else the default."""
    env = os.environ.get(REPORTS_ENV)
    return Path(env) if env else config.reports_dir()


def available(reports: Path) -> dict[str, Path]:
    """Map each published evaluation name to its run folder.

    Only direct entries of ``reports`` whose name matches :data:`NAME_PATTERN`, that hold a
    ``results.json`` and that resolve to a folder inside ``reports`` (``reports/<name>`` is
    a symlink to ``reports/.runs/<run>``) are listed.
    """
    root = Path(reports).resolve()
    found: dict[str, Path] = {}
    try:
        listing = list(os.scandir(root))
    except OSError:
        return found
    for entry in listing:
        if not NAME_PATTERN.fullmatch(entry.name):
            continue
        folder = Path(entry.path).resolve()
        if folder.is_relative_to(root) and (folder / "results.json").is_file():
            found[entry.name] = folder
    return dict(sorted(found.items()))


def resolve(name: object, reports: Path) -> Path | None:
    """The run folder of ``name`` when it is a published evaluation, else None.

    Parameters
    ----------
    name
        An untrusted value (e.g. from a query string).
    reports
        The reports folder.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        return None
    return available(reports).get(name)


def name_from_query(query: str | None) -> str | None:
    """The first ``name=`` value of a query string, unvalidated (pass it to :func:`resolve`)."""
    if not query or len(query) > _MAX_QUERY:
        return None
    values = parse_qs(query.lstrip("?"), keep_blank_values=False).get("name")
    return values[0] if values else None


@dataclass(frozen=True)
class ReportEntry:
    """One evaluation as the index lists it."""

    name: str
    results: EvaluationResults | None
    last_run_failed: bool = False

    @property
    def readable(self) -> bool:
        """Whether ``results.json`` validated against the contract."""
        return self.results is not None

    @property
    def status(self) -> str:
        """The status in words: current, or why not."""
        if self.results is None:
            return "Not available: the results file could not be read"
        finished = (self.results.provenance.run_finished or "")[:10]
        when = f" (run {finished})" if finished else ""
        if self.last_run_failed:
            return f"Last run failed; showing the previous report{when}"
        return f"Up to date{when}"


def _last_run_failed(reports: Path, name: str, folder: Path) -> bool:
    """Whether a failed run of ``name`` is newer than the published one."""
    failed = Path(reports) / _FAILED
    try:
        published = folder.stat().st_mtime
        runs = list(os.scandir(failed))
    except OSError:
        return False
    return any(
        run.name.startswith(name)
        and _RUN_SUFFIX.fullmatch(run.name[len(name) :])
        and run.stat(follow_symlinks=False).st_mtime > published
        for run in runs
    )


def load(name: str, folder: Path, reports: Path) -> ReportEntry:
    """Read one evaluation; a file that does not validate gives an entry without results."""
    try:
        results: EvaluationResults | None = read_results(folder)
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        results = None
    return ReportEntry(name, results, _last_run_failed(reports, name, folder))


def entries(reports: Path) -> list[ReportEntry]:
    """Every published evaluation, sorted by title."""
    out = [load(name, folder, reports) for name, folder in available(reports).items()]
    return sorted(out, key=lambda e: e.results.title.lower() if e.results else e.name)
