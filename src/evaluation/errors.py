"""Errors a user can fix, reported as one line naming the file and the key or line."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input: params, data or dates. The CLI prints ``str(err)`` and exits with 2.

    Parameters
    ----------
    source
        The file at fault (params file, CSV, archive).
    message
        What is wrong, in words an evaluator understands.
    key
        The params key (dotted, e.g. ``intervention.start``) at fault, if any.
    line
        The 1-based line in ``source`` at fault, if known.
    """

    def __init__(
        self,
        source: str | Path | None,
        message: str,
        *,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.source = str(source) if source is not None else None
        self.key = key
        self.line = line
        self.message = message
        super().__init__(self.format())

    def format(self) -> str:
        """The one-line message: ``file:line: key: message``.

        Always one line: line breaks inside a message (e.g. quoted from a parser) or a
        file name are folded, so the command line prints exactly one line.
        """
        where = _escape_breaks(self.source or "<input>")
        if self.line is not None:
            where += f":{self.line}"
        if self.key:
            where += f": {_escape_breaks(self.key)}"
        return f"error: {where}: {' '.join(str(self.message).split())}"


class RelayedInputError(InputError):
    """An :class:`InputError` raised in another process (a notebook kernel), from its text.

    The kernel checks the data; the runner re-raises what it found, word for word.
    """

    def __init__(self, text: str) -> None:
        self.text = " ".join(text.split())
        super().__init__(None, self.text)

    def format(self) -> str:
        """The kernel's own one-line message."""
        return self.text


def _escape_breaks(name: str) -> str:
    """A name as one line: line breaks shown as ``\\n`` (file names are kept exact)."""
    return name.replace("\r", "\\r").replace("\n", "\\n")


class RunError(Exception):
    """An evaluation failed while executing; the executed notebook shows where."""
