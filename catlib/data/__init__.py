"""Data sets: synthetic toys made by code here, real sets loaded from ``data/``."""
from catlib.data.toy import Toy50, toy50_probs

__all__ = ["Toy50", "toy50_probs"]
