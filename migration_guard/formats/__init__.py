"""Stage *report*, its formats: every one produced from the same :class:`~migration_guard.report.Report`,
registered in one table, :data:`FORMATS`. ``text`` and ``json`` live in ``report.py``; each other
format has its own module here.

``lint_migrations --output FORMAT:PATH`` (repeatable, ``-`` for stdout) sends one run to several
consumers; :func:`parse_output` checks a destination before the gate does any work.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from migration_guard.formats.common import find_source_root
from migration_guard.formats.github import render_github
from migration_guard.formats.junit import render_junit
from migration_guard.formats.markdown import render_markdown
from migration_guard.formats.sarif import render_sarif
from migration_guard.report import Report, render_json, render_text

__all__ = ["FORMATS", "STDOUT", "Format", "Output", "OutputError", "find_source_root", "parse_output"]

STDOUT = "-"


@dataclass(frozen=True)
class Format:
    """One report format: its name on the command line, what it is for, and how to render it
    (from the report, the source root paths are made relative to, and whether to colour)."""

    name: str
    description: str
    render: Callable[[Report, Path, bool], str]


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("text", "for people: grouped by migration, with the safe recipe",
           lambda report, root, color: render_text(report, color=color)),
    Format("json", "for tools: the whole analysis (schema_version 1)",
           lambda report, root, color: render_json(report)),
    Format("sarif", "SARIF 2.1.0 for code scanning",
           lambda report, root, color: render_sarif(report, root=root)),
    Format("github", "GitHub Actions annotations on the migration's lines",
           lambda report, root, color: render_github(report, root=root)),
    Format("markdown", "a job summary or pull-request comment",
           lambda report, root, color: render_markdown(report, root=root)),
    Format("junit", "JUnit XML: one test case per migration",
           lambda report, root, color: render_junit(report, root=root)),
)}


class OutputError(ValueError):
    """A ``--output`` destination that cannot be used; the message says why."""


@dataclass(frozen=True)
class Output:
    """Where one report goes: a format and a file path, or ``-`` for stdout."""

    format: str
    path: str

    @property
    def to_stdout(self) -> bool:
        """Whether this report goes to standard output."""
        return self.path == STDOUT


def parse_output(spec: str) -> Output:
    """``FORMAT:PATH`` -> an :class:`Output`, after checking the format exists and the file can
    be written (its folder exists and is writable; it is not a folder)."""
    name, colon, path = spec.partition(":")
    if not colon or not path:
        raise OutputError(f"--output {spec}: expected FORMAT:PATH, e.g. sarif:report.sarif or text:- for stdout")
    if name not in FORMATS:
        raise OutputError(f"--output {spec}: unknown format '{name}'; choose one of {', '.join(FORMATS)}")
    if path != STDOUT:
        target = Path(path)
        folder = target.parent
        if target.is_dir():
            raise OutputError(f"--output {spec}: {path} is a folder; give a file name")
        if not folder.is_dir():
            raise OutputError(f"--output {spec}: the folder {folder} does not exist; create it first")
        if not os.access(target if target.exists() else folder, os.W_OK):
            raise OutputError(f"--output {spec}: {path} is not writable")
    return Output(format=name, path=path)
