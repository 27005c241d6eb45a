"""The Swintormer network, its diffusion prior, tiling, checkpoints, data and training.

Imports torch and numpy only; never reads the environment, never talks to Redis or HTTP.
"""
