"""``python -m molmtl``, which ``torchrun -m molmtl train ...`` runs on every rank: the CLI."""

import sys

from molmtl.cli.main import main

sys.exit(main())
