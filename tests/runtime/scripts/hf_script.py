"""A Hugging Face Trainer run with the one-line trainforge callback: a tiny GPT-2 built from a
config (no download) on random tokens."""

from __future__ import annotations

import os

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from trainforge_sdk import checkpoint_dir
from trainforge_sdk.huggingface import TrainforgeCallback


class Tokens(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    def __init__(self) -> None:
        self.data = torch.randint(0, 64, (32, 16), generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.data[i], "labels": self.data[i]}


config = GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2)
args = TrainingArguments(
    output_dir=str(checkpoint_dir()),
    max_steps=6,
    per_device_train_batch_size=4,
    logging_steps=2,
    save_steps=3,
    report_to=[],
    use_cpu=True,
    disable_tqdm=True,
)
trainer = Trainer(
    model=GPT2LMHeadModel(config),
    args=args,
    train_dataset=Tokens(),
    callbacks=[TrainforgeCallback()],
)
trainer.train()
assert os.environ["RANK"] == "0"
