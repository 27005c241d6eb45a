"""The benchmark tests use the model tests' reference fixtures."""

from tests.unit.model.conftest import golden, reference_dir

__all__ = ["golden", "reference_dir"]
