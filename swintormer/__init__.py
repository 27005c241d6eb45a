"""Swintormer Serve: the `swintormer` command-line entry point.

The product lives in three packages: `model` (network, prior, tiling, training), `service`
(the FastAPI gateway, never imports torch) and `worker` (RQ workers that join the two).
"""

__version__ = "0.1.0"
