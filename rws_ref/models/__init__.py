"""Reference models, one file per family (each model together with its guides)."""
from .control_flow import Scene1D, SceneGuide, scene_states
from .gaussian_mixture import (
                               BENCHMARK_LOC,
                               BENCHMARK_SCALE,
                               GaussianMixture,
                               MLPGuide,
                               SoftmaxLinearGuide,
                               benchmark_guide,
)
from .linear_gaussian import DiagonalGaussianGuide, LinearGaussian
from .sigmoid_belief_net import BernoulliGuide, SigmoidBeliefNet

__all__ = ["LinearGaussian", "DiagonalGaussianGuide", "GaussianMixture", "SoftmaxLinearGuide",
           "MLPGuide", "SigmoidBeliefNet", "BernoulliGuide", "benchmark_guide", "BENCHMARK_LOC", "BENCHMARK_SCALE",
           "Scene1D", "SceneGuide", "scene_states"]
