"""Training and evaluation data: defocus synthesis, dead leaves, prepared photos, DPDD, pairs."""
