"""trainforge worker runtime: launcher, parallel layouts, metrics and progress for PyTorch jobs."""

__version__ = "0.1.0"
