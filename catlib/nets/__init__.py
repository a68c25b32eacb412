"""Networks used inside flows, encoders and diffusion models."""
from catlib.nets.densenet import DenseNet
from catlib.nets.mlp import MLP
from catlib.nets.time import TimeMLP, UNet, timestep_embedding

__all__ = ["MLP", "DenseNet", "TimeMLP", "UNet", "timestep_embedding"]
