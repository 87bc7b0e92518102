"""Bad input as its own exception family, so entry points report it in one line and a bug still shows as a bug.

Every check of what a user passed (arguments, arrays, files, stores) raises an :class:`InputError`
(a ``ValueError``), or :class:`emdask.store.StoreError` for a store that cannot be read as asked;
files that cannot be found or written raise ``OSError``.  The CLI, the flows' command lines and the
flows' retry rule treat exactly :data:`BAD_INPUT` as the user's; anything else is emdask's bug and
keeps its traceback.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

from emdask.store import StoreError


class InputError(ValueError):
    """An argument, array, file or parameter that emdask cannot use; the message names it and what was expected."""


class InputTypeError(InputError, TypeError):
    """Input of the wrong type (a non-numeric array, a ragged list)."""


BAD_INPUT: tuple[type[BaseException], ...] = (InputError, StoreError, OSError)


def one_line_errors(prog: str, run: Callable[[], int]) -> int:
    """``run()``, with bad input reported as one line ``prog: error: ...`` on stderr and exit status 1."""
    try:
        return run()
    except BAD_INPUT as exc:
        message = " ".join(str(exc).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
