"""Networks used inside flows, encoders and diffusion models."""
from catlib.nets.densenet import DenseNet
from catlib.nets.graph import GraphNet, check_graph_batch
from catlib.nets.mlp import MLP
from catlib.nets.lstm import (ARLSTMNet, BiLSTMNet, IndexContextFF, IndexContextLSTM, InputDropout, MaskedFeedforward,
                              PositionEmbedding)
from catlib.nets.time import TimeMLP, UNet, timestep_embedding
from catlib.nets.transformer import ENWIK8_TRANSFORMER, TEXT8_TRANSFORMER, TimeTransformer

__all__ = ["MLP", "DenseNet", "GraphNet", "check_graph_batch", "TimeMLP", "UNet", "timestep_embedding",
           "TimeTransformer", "TEXT8_TRANSFORMER", "ENWIK8_TRANSFORMER", "ARLSTMNet", "BiLSTMNet",
           "IndexContextLSTM", "IndexContextFF", "InputDropout", "MaskedFeedforward", "PositionEmbedding"]
