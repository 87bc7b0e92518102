"""Prefect flows of emdask: image-set compression and mixture fitting, run on a Dask cluster."""
from __future__ import annotations

from typing import Any


def retry_unless_bad_input(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry lost workers and other transient failures, not bad input (emdask's
    ``BAD_INPUT``: wrong arguments or data, unreadable stores, missing files), which would fail the same way again."""
    from emdask.errors import BAD_INPUT

    return not isinstance(state.data, BAD_INPUT)
