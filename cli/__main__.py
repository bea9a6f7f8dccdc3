"""`python -m cli` is the `rlhf-pipeline` command."""

import sys

from cli.main import main

sys.exit(main())
