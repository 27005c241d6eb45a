"""The Swintormer network, its diffusion prior, tiling and checkpoints: the deployable core.

The workshop lives in subpackages by role: `model.data` (degradation and datasets),
`model.training`, `model.evaluation` and `model.cli` (command front ends). The core never
imports them. Imports torch and numpy only; never reads the environment, never talks to Redis or
HTTP.
"""
