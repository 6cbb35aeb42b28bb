"""The spec stage: YAML text -> a validated Spec (source.py keeps every value's file:line:column,
parse.py reads the top level, expand.py expands repeats, blocks and $parameters into Nodes)."""
from .model import INPUT, Node, Spec
from .parse import load, loads, parse, parse_input, parse_input_text

__all__ = ["INPUT", "Node", "Spec", "load", "loads", "parse", "parse_input", "parse_input_text"]
