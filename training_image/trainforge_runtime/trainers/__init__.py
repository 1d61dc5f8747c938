"""Reference trainers run by the launcher: `python -m trainforge_runtime.trainers.<name>`."""
