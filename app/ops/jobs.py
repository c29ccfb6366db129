"""Long requests: an answer now, or ``202 Accepted`` and a job followed to its end.

The server answers within ``Prefer: wait=N`` seconds (2 by default) with the outcome, or with
the job (``Location: /api/v1/jobs/{id}``). The job is polled with a progress display on stderr
until it has succeeded (its result is the outcome, the same JSON a quick answer carries) or
failed (its problem is reported like an error answer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from app.ops.client import OpsClient, describe_problem, json_of
from app.ops.errors import OpsError, exit_code_for

POLL_SECONDS = 1.0
# Headroom over the server's own wait before a request counts as timed out.
WAIT_HEADROOM_S = 30.0


def run_long(
    client: OpsClient,
    method: str,
    path: str,
    *,
    body: Any = None,
    wait: int | None,
    console: Console,
    sleep: Callable[[float], None],
) -> Any:
    """The outcome of a request that may answer with a job (then followed to its end)."""
    headers = {"Prefer": f"wait={wait}"} if wait is not None else None
    timeout = (wait or 2) + WAIT_HEADROOM_S
    response = client.request(method, path, json=body, headers=headers, timeout=timeout)
    answer = json_of(response)
    if response.status_code != 202:
        return answer
    return follow_job(client, answer, what=f"{method} {path}", console=console, sleep=sleep)


def follow_job(
    client: OpsClient,
    job: Mapping[str, Any],
    *,
    what: str,
    console: Console,
    sleep: Callable[[float], None],
) -> Any:
    href = str(job.get("href") or f"/api/v1/jobs/{job['id']}")
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(_step(job), total=None)
        while job.get("state") == "running":
            _show(bar, task, job)
            sleep(POLL_SECONDS)
            job = client.get(href)
    if job.get("state") == "succeeded":
        return job.get("result")
    problem = job.get("problem") or {"status": 500, "title": f"job {job.get('state')}"}
    status = int(problem.get("status") or 500)
    raise OpsError(
        f"{what} (job {job.get('id')}): {describe_problem(problem, status)}", exit_code_for(status)
    )


def _step(job: Mapping[str, Any]) -> str:
    progress = job.get("progress") or {}
    return f"{job.get('kind', 'job')}: {progress.get('step') or 'running'}"


def _show(bar: Progress, task: TaskID, job: Mapping[str, Any]) -> None:
    progress = job.get("progress") or {}
    total = progress.get("total")
    bar.update(
        task,
        description=_step(job),
        total=total if isinstance(total, int) and total > 0 else None,
        completed=int(progress.get("done") or 0),
    )
