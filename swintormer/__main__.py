"""`python -m swintormer` is the same as the `swintormer` command."""

from swintormer.cli import main

raise SystemExit(main())
