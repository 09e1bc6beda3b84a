"""Reference models, one file per family (each model together with its guides)."""
from .linear_gaussian import DiagonalGaussianGuide, LinearGaussian

__all__ = ["LinearGaussian", "DiagonalGaussianGuide"]
