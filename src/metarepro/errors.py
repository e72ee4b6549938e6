"""Errors and warnings that reach the user as one readable line."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input, located as precisely as possible.

    Parameters
    ----------
    problem : str
        What is wrong, in words.
    file : str, optional
        The file (or ``"<data>"`` for an in-memory table).
    row : int, optional
        The line number in the file (the header is line 1), or the row label of
        an in-memory table.
    column : str, optional
        The column that holds the bad value.

    Notes
    -----
    ``str(err)`` is the single line the command line prints, e.g.
    ``trials.csv, row 4, column 'events_t': 12 events > 10 total``.
    """

    def __init__(self, problem: str, *, file: str | None = None,
                 row: int | str | None = None, column: str | None = None):
        self.problem = problem
        self.file = file
        self.row = row
        self.column = column
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = []
        if self.file:
            where.append(str(self.file))
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        text = " ".join(self.problem.split())
        return f"{', '.join(where)}: {text}" if where else text


class MetareproWarning(UserWarning):
    """A result was computed, but something about it deserves attention
    (non-convergence and its fallback, inference with k = 1 or 2)."""
