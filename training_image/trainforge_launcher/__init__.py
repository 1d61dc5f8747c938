"""trainforge_launcher: the standalone launcher for images that have Python and torch but no
trainforge (`spec.launcher: standalone`, docs/byo-code.md).

Standard library only, and valid Python 3.9, because it runs on the interpreter of the user's
image: the operator's `trainforge-launcher` init container (from the worker image) copies this
package, `trainforge_sdk` and NVML's pure-Python binding into an emptyDir (`install.py`), and the
training container runs `python3 /var/trainforge/launcher`. It keeps trainforge's pod contract:
one world of nodes x procsPerNode ranks with torchrun's env, hyperparameters as env/file/args,
rank-prefixed output, the pod's `/metrics` and `/progress`, and a termination message with the
exit classification the operator reads. It never imports torch: the user's script does.
"""

from __future__ import annotations

BOOT_DIR = "/var/trainforge/launcher"  # where the init container installs it in worker pods
