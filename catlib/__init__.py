"""catlib: continuous generative models for categorical data.

Argmax flows and their inverses, hypercube dequantization baselines, metrics and a training
loop; every method is built by :func:`build_model` and offers ``log_prob(x, k)`` and
``sample(n)``.
"""
from catlib.models import MODEL_NAMES, build_model

__version__ = "0.1.0"
__all__ = ["build_model", "MODEL_NAMES", "__version__"]
