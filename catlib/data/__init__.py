"""Data sets: synthetic toys made by code here, real sets loaded from ``data/``."""
from catlib.data.cityscapes import (CITYSCAPES_CATEGORIES, CITYSCAPES_LABELS, CITYSCAPES_PALETTE, CITYSCAPES_SIZE,
                                    CITYSCAPES_SPLIT_SIZES, CityscapesMaps, colourise, label_ids_to_categories,
                                    load_cityscapes, prepare_cityscapes, resize_labels, synthetic_cityscapes,
                                    synthetic_street_maps)
from catlib.data.graphs import GRAPH_SIZES, GraphColouring, colour_graph, conflicting_edges, is_valid_colouring
from catlib.data.squares import Squares, enumerate_squares, squares_entropy_by_enumeration
from catlib.data.text import TEXT8_ALPHABET, decode_text, encode_text
from catlib.data.text_corpora import (ENWIK8, TEXT8, TEXT_CORPORA, MarkovText, TextCorpus, TextCorpusSpec,
                                      download_text_corpus, load_text_corpus, synthetic_text, synthetic_text_corpus)
from catlib.data.toy import Toy50, toy50_probs
from catlib.data.two_variable import TWO_VARIABLE_JOINT, TwoVariableToy
from catlib.data.words import (PAPER_WORDS, PAST_MARKERS, TEXT8_URL, VERB_FORMS, WORD_CLASSES, WordCorpus,
                               chosen_words, generated_corpus, generated_sentences, load_corpus, text8_corpus)

__all__ = ["Toy50", "toy50_probs", "TwoVariableToy", "TWO_VARIABLE_JOINT", "Squares", "enumerate_squares",
           "squares_entropy_by_enumeration", "TEXT8_ALPHABET", "encode_text", "decode_text",
           "GraphColouring", "GRAPH_SIZES", "colour_graph", "is_valid_colouring", "conflicting_edges",
           "WordCorpus", "PAPER_WORDS", "WORD_CLASSES", "VERB_FORMS", "PAST_MARKERS", "TEXT8_URL", "generated_sentences",
           "generated_corpus", "text8_corpus", "load_corpus", "chosen_words",
           "TextCorpusSpec", "TEXT8", "ENWIK8", "TEXT_CORPORA", "TextCorpus", "download_text_corpus",
           "load_text_corpus", "MarkovText", "synthetic_text", "synthetic_text_corpus",
           "CITYSCAPES_CATEGORIES", "CITYSCAPES_LABELS", "CITYSCAPES_PALETTE", "CITYSCAPES_SIZE",
           "CITYSCAPES_SPLIT_SIZES", "CityscapesMaps", "label_ids_to_categories", "resize_labels", "prepare_cityscapes", "load_cityscapes",
           "colourise", "synthetic_street_maps", "synthetic_cityscapes"]
