"""Is the database already at every migration head? Answered without importing Alembic.

Alembic loads its whole script directory (and itself, ~0.25 s) just to find that there is nothing
to do, and every command that opens the database used to pay that. The heads are the revisions no
other revision names as its `down_revision`; reading them from the migration files with a regular
expression is enough (tests/test_startup.py checks the answer against Alembic's own), and anything
unexpected only means Alembic runs as before.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

VERSIONS = Path(__file__).with_name("migrations") / "versions"

_REVISION = re.compile(r"^revision\b[^=\n]*=\s*['\"]([^'\"]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision\b[^=\n]*=\s*(.+)$", re.M)
_QUOTED = re.compile(r"['\"]([^'\"]+)['\"]")


@lru_cache(maxsize=4)
def script_heads(versions: Path = VERSIONS) -> frozenset[str]:
    """The newest revision of each branch in `versions` (empty if a file does not parse)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in versions.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        rev, down = _REVISION.search(text), _DOWN.search(text)
        if rev is None or down is None:
            return frozenset()  # not a shape we know: let Alembic decide
        revisions.add(rev.group(1))
        parents.update(_QUOTED.findall(down.group(1)))
    return frozenset(revisions - parents)


def at_heads(stored: set[str] | frozenset[str]) -> bool:
    """True when the revisions stored in `alembic_version` are exactly the script heads."""
    heads = script_heads()
    return bool(heads) and set(stored) == heads
