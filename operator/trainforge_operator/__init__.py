"""trainforge operator: reconciles TrainingJobs into supervised gangs of PyTorch workers."""

__version__ = "0.1.0"
