"""A PyTorch Lightning run with the one-line trainforge callback: a tiny linear model on random
data (nothing downloaded)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from trainforge_sdk import checkpoint_dir
from trainforge_sdk.lightning import TrainforgeCallback


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("loss", loss)
        return loss

    def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


gen = torch.Generator().manual_seed(0)
data = TensorDataset(torch.randn(32, 4, generator=gen), torch.randn(32, 1, generator=gen))
trainer = pl.Trainer(
    max_epochs=2,
    accelerator="cpu",
    devices=1,
    logger=False,
    enable_progress_bar=False,
    enable_model_summary=False,
    default_root_dir=str(checkpoint_dir()),
    callbacks=[TrainforgeCallback()],
)
trainer.fit(Tiny(), DataLoader(data, batch_size=8), DataLoader(data, batch_size=16))
