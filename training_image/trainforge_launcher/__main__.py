"""`python -m trainforge_launcher` runs the launcher; `... install DIR` installs it (install.py)."""

from __future__ import annotations

import sys

if len(sys.argv) > 1 and sys.argv[1] == "install":
    from trainforge_launcher.install import main as install

    sys.exit(install(sys.argv[2:]))

from trainforge_launcher.launch import main

sys.exit(main())
