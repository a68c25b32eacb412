"""Data sets: synthetic toys made by code here, real sets loaded from ``data/``."""
from catlib.data.squares import Squares, enumerate_squares, squares_entropy_by_enumeration
from catlib.data.text import TEXT8_ALPHABET, decode_text, encode_text
from catlib.data.toy import Toy50, toy50_probs
from catlib.data.two_variable import TWO_VARIABLE_JOINT, TwoVariableToy

__all__ = ["Toy50", "toy50_probs", "TwoVariableToy", "TWO_VARIABLE_JOINT", "Squares", "enumerate_squares",
           "squares_entropy_by_enumeration", "TEXT8_ALPHABET", "encode_text", "decode_text"]
