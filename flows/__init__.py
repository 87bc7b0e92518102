"""Prefect flows of emdask: image-set compression and mixture fitting, run on a Dask cluster."""
from __future__ import annotations

from typing import Any


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry lost workers and other transient failures, not bad input
    (ValueError, TypeError, missing files), which would fail the same way again."""
    return not isinstance(state.data, (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError))
