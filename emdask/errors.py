"""Bad input as its own exception family, so entry points report it in one line and a bug still shows as a bug.

Every check of what a user passed (arguments, arrays, files, stores) raises an :class:`InputError`
(a ``ValueError``), or :class:`emdask.store.StoreError` for a store that cannot be read as asked;
files that cannot be found or written raise ``OSError``.  The flows' retry rule treats exactly
:data:`BAD_INPUT` as the user's; the command lines also report any other ``OSError`` in one line.
Anything else is emdask's bug and keeps its traceback.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Callable

from emdask.store import StoreError


class InputError(ValueError):
    """An argument, array, file or parameter that emdask cannot use; the message names it and what was expected."""


class InputTypeError(InputError, TypeError):
    """Input of the wrong type (a non-numeric array, a ragged list)."""


#: What the user can mend and a retry cannot: bad arguments or data, unreadable stores, missing or unwritable files.
#: (Not every OSError: a lost connection to a worker is one, and is worth a retry.)
BAD_INPUT: tuple[type[BaseException], ...] = (
    InputError, StoreError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
)


_REPORTED: tuple[type[BaseException], ...] = (*BAD_INPUT, OSError)


def one_line_errors(prog: str, run: Callable[[], int]) -> int:
    """``run()``, with bad input (or any other OSError) reported as one line ``prog: error: ...`` on stderr and
    exit status 1; a closed pipe on stdout ends it quietly (status 1), as other Unix tools; anything else is a bug
    and keeps its traceback."""
    try:
        return run()
    except BrokenPipeError:  # the reader went away (``emdask info ... | head``): nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 1
    except _REPORTED as exc:
        message = " ".join(str(exc).split())
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 1
