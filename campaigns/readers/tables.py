"""Table rows -> readable lines, shared by the HTML and Word readers.

A patient email cannot show a grid, and a paragraph per cell ("Mon", "Closed", "Tue", ...)
reads as noise. So a row becomes one line: "Header: value; Header: value" when the table
has a header row, "Label: value" for a two-column table, cells joined by "; " otherwise.
"""

from __future__ import annotations


def _join(cells: list[str], header: list[str] | None) -> str:
    cells = [" ".join(c.split()) for c in cells]
    if header is not None:
        pairs = [f"{h}: {c}" if h and h != c else c for h, c in zip(header, cells) if c]
        pairs += [c for c in cells[len(header):] if c]
        return "; ".join(pairs)
    filled = [c for c in cells if c]
    if len(filled) == 2 and len(cells) == 2:
        return f"{filled[0]}: {filled[1]}"
    return "; ".join(filled)


def table_lines(rows: list[list[str]], *, header_row: bool) -> list[str]:
    """One line per non-empty row; `header_row`: the first row names the columns."""
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        return []
    header: list[str] | None = None
    if header_row and len(rows) >= 2 and len(rows[0]) >= 2:
        header = [" ".join(c.split()) for c in rows[0]]
        rows = rows[1:]
    return [line for line in (_join(r, header) for r in rows) if line]
