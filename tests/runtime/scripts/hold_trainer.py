"""A minimal trainer on the user API that pauses so a test can scrape its endpoints.

hyperparameters.mode: "hold" trains 5 steps, then waits for <run_dir>/release;
"loop" keeps stepping until SIGTERM (the runtime then exits 143).
"""

from __future__ import annotations

import time

import torch

import trainforge_runtime


def main() -> None:
    ctx = trainforge_runtime.init()
    model = ctx.parallelize(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ctx.set_total_steps(5)
    mode = ctx.hyperparameters.get("mode", "hold")
    step = 0
    while True:
        for x, y in ctx.timed([(torch.randn(8, 4), torch.randn(8, 1))]):
            step += 1
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            ctx.step_end(
                step,
                samples=8,
                loss=float(loss),
                lr=0.1,
                grad_norm=ctx.grad_norm(model),
                accuracy=0.5,
            )
        if mode == "hold" and step == 5:
            break
        if step == 5:
            (ctx.run_dir / f"ready-{ctx.rank}").write_text(str(ctx.metrics_port))
        time.sleep(0.02)
    ctx.log_metrics(step, val_loss=0.3, val_accuracy=0.6)
    (ctx.run_dir / f"ready-{ctx.rank}").write_text(str(ctx.metrics_port))
    deadline = time.time() + 600
    while not (ctx.run_dir / "release").exists() and time.time() < deadline:
        time.sleep(0.05)
    ctx.finish(final_accuracy=0.5)


if __name__ == "__main__":
    trainforge_runtime.run(main)
