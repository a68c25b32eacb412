"""Networks used inside flows and encoders."""
from catlib.nets.mlp import MLP

__all__ = ["MLP"]
