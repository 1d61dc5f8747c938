"""trainforge worker runtime: launcher, parallel layouts, metrics and progress for PyTorch jobs.

User API: `ctx = trainforge_runtime.init()` inside a process started by the launcher (or torchrun),
then `ctx.parallelize(model)`, `ctx.step_end(step, loss=...)`, `ctx.finish(...)`. Wrap the main
function with `trainforge_runtime.run(main)` to get the exit codes the operator understands.
Torch is imported lazily so `trainforge_api.context` stays cheap for the operator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from trainforge_api.context import JobContext
    from trainforge_runtime.session import RuntimeContext

__all__ = ["RuntimeContext", "init", "run"]


def init(context: JobContext | None = None, *, start_metrics: bool = True) -> RuntimeContext:
    """Read the job context and env, join the process group, seed, start metrics."""
    from trainforge_runtime.session import init as _init

    return _init(context, start_metrics=start_metrics)


def run(main: Callable[[], Any]) -> None:
    """Run `main()` and exit with the runtime's exit-code contract."""
    from trainforge_runtime.exits import run as _run

    _run(main)


def __getattr__(name: str) -> Any:
    if name == "RuntimeContext":
        from trainforge_runtime.session import RuntimeContext

        return RuntimeContext
    raise AttributeError(name)
