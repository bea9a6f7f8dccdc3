"""`python -m pipeline` is the `rlhf-pipeline` command."""

import sys

from pipeline.cli import main

sys.exit(main())
