"""Swintormer Serve: the `swintormer` command-line entry point.

The product lives in three packages: `model` (network, prior, tiling, training), `service`
(the contract shared with the workers, and the FastAPI gateway; never imports torch) and
`worker` (RQ workers that join the two, and the local `swintormer deblur`).
"""

__version__ = "0.1.0"
