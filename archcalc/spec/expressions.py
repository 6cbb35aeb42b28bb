"""Arithmetic in spec values: '$c * 6', '$d // $heads', 'make_divisible($c * 0.25, 8)'.

A string value that contains '$' uses the spec's or a block's parameters. '$name' alone is
the parameter's value as it is (a number, a list, a word); anything else is an expression,
read by a small recursive-descent parser and evaluated on exact Python integers (no eval):

    expression := term (('+' | '-') term)*
    term       := unary (('*' | '//' | '%') unary)*
    unary      := ('-' | '+') unary | atom
    atom       := integer | decimal | '$' name | function '(' expression (',' expression)* ')'
                | '(' expression ')'

Decimals are allowed inside: the result is an integer wherever every operand is one (a
decimal result suits only a decimal field, like dropout's p, and an integer field refuses it
with the expression named); make_divisible turns a decimal into a whole number of channels.
'/' is refused: sizes divide with '//'.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import Location, SpecError
from ..layers.arguments import MAX_SIZE, closest, shown

MAX_EXPRESSION_CHARS = 200   # a width formula is a line, never a paragraph
MAX_EXPRESSION_DEPTH = 20    # nested parentheses, calls and signs (the parser recurses on them)

_TOKEN = re.compile(r"\s*(?:(?P<number>\d+\.\d*|\.\d+|\d+)|\$(?P<param>[A-Za-z_]\w*)|(?P<word>[A-Za-z_]\w*)"
                    r"|(?P<op>//|[-+*%(),/]))")


Number = int | float  # what an expression computes; a parameter alone may be any spec value
Params = dict[Hashable, Any]  # {name: value}, names as the YAML wrote them


def make_divisible(value: Number, divisor: int, min_value: int | None = None) -> int:
    """torchvision's rule (torchvision/models/_utils.py, _make_divisible, from TensorFlow's
    MobileNet): the multiple of ``divisor`` nearest to ``value``, at least ``min_value``
    (default: divisor), and never more than 10% below ``value``:
    new = max(min_value, int(value + divisor/2) // divisor * divisor); if new < 0.9*value: new += divisor.
    """
    if min_value is None:
        min_value = divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:  # rounding down must not lose more than 10%
        new_value += divisor
    return new_value


def _maximum(*values: Number) -> Number:
    return max(values)


def _minimum(*values: Number) -> Number:
    return min(values)


# name -> (function, fewest and most arguments, which arguments must be whole numbers)
FUNCTIONS: dict[str, tuple[Callable[..., Number], int, int, tuple[int, ...]]] = {
    "max": (_maximum, 1, 64, ()),
    "min": (_minimum, 1, 64, ()),
    "make_divisible": (make_divisible, 2, 3, (1, 2)),
}


def is_expression(value: object) -> bool:
    """Whether a spec value is computed from parameters: a string that contains '$'."""
    return isinstance(value, str) and "$" in value


def evaluate(text: str, params: Params, location: Location | None = None) -> Any:
    """The value of ``text`` with ``params`` ({name: value}): '$name' alone gives the value as it
    is; an expression gives an int, or a float where a decimal stays in the result."""
    if text[1:] in params and text.startswith("$"):
        return params[text[1:]]
    return _Parser(text, params, location).parse()


class _Parser:
    """One expression, parsed and evaluated in a single pass (the values are known)."""

    def __init__(self, text: str, params: Params, location: Location | None):
        self.text, self.params, self.location = text, params, location
        if len(text) > MAX_EXPRESSION_CHARS:
            raise self.error(f"the expression is {len(text)} characters long; the limit is {MAX_EXPRESSION_CHARS}",
                             "compute the value in a parameter of its own, step by step")
        self.tokens = self._tokenize()
        self.position = 0
        self.depth = 0

    def error(self, what: str, hint: str = "") -> SpecError:
        alone = re.fullmatch(r"\s*\$\w+\s*", self.text)  # '$name' alone: the message names it already
        return SpecError(what if alone else f"in {_quoted(self.text)}: {what}", hint=hint, location=self.location)

    def _tokenize(self) -> list[tuple[str, str, int]]:
        """(kind, text, offset) per token, then ('end', '', length)."""
        tokens: list[tuple[str, str, int]] = []
        at, text = 0, self.text.rstrip()
        while at < len(text):
            match = _TOKEN.match(text, at)
            if match is None:
                bad = text[at:].lstrip()[:1]
                hint = ("a parameter is written '$' then its name, e.g. $filters" if bad == "$" else
                        "expressions use numbers, $parameters, + - * // %, parentheses, max, min, "
                        "make_divisible")
                raise self.error(f"unexpected {bad!r} at character {len(text) - len(text[at:].lstrip()) + 1}",
                                 hint)
            kind = match.lastgroup
            assert kind is not None  # every alternative is a named group
            tokens.append((kind, match.group(kind), match.end() - len(match.group(0).lstrip())))
            at = match.end()
        tokens.append(("end", "", len(text)))
        return tokens

    # --- the grammar, one method per rule -------------------------------------------------
    def parse(self) -> Number:
        value = self.expression()
        kind, token, _ = self.tokens[self.position]
        if kind != "end":
            raise self.error(f"unexpected {token!r} after a complete expression",
                             "an operator (+ - * // %) is missing, or a ')' has no '('")
        return value

    def expression(self) -> Number:
        value = self.term()
        while self.peek() in ("+", "-"):
            operator = self.take()
            right = self.term()
            value = self.checked(value + right if operator == "+" else value - right)
        return value

    def term(self) -> Number:
        value = self.unary()
        while self.peek() in ("*", "//", "%", "/"):
            operator = self.take()
            if operator == "/":
                raise self.error("'/' divides into decimals", "sizes divide with '//' (rounding down)")
            start = self.position
            right = self.unary()
            if operator == "*":
                value = self.checked(value * right)
                continue
            if right == 0:
                raise self.error(f"division by zero: {self.source(start)} is 0")
            value = self.checked(value // right if operator == "//" else value % right)
        return value

    def unary(self) -> Number:
        if self.peek() in ("-", "+"):
            sign = self.take()
            with self.deeper():
                value = self.unary()
            return -value if sign == "-" else value
        return self.atom()

    def atom(self) -> Number:
        kind, token, _ = self.tokens[self.position]
        self.position += 1
        if kind == "number":
            return float(token) if "." in token else self.checked(int(token))
        if kind == "param":
            return self.parameter(token)
        if token == "(":
            with self.deeper():
                value = self.expression()
            self.expect(")")
            return value
        if kind == "word":
            return self.call(token)
        what = "the expression ends too early" if kind == "end" else f"unexpected {token!r}"
        raise self.error(what, "a number, a $parameter, a function call or '(' is missing")

    def parameter(self, name: str) -> Number:
        if name not in self.params:
            known = [f"${key}" for key in self.params]
            raise self.error(f"unknown parameter ${name}",
                             (closest(f"${name}", known) if known else "no parameters are declared here") +
                             "; a parameter can use those declared before it, and a block's layers its "
                             "parameters and the spec's")
        value = self.params[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(f"${name} is {shown(value)}, not a number",
                             "arithmetic works on numbers; write $name alone to use a list or a word")
        return value

    def call(self, name: str) -> Number:
        if name not in FUNCTIONS:
            hint = closest(name, FUNCTIONS)
            raise self.error(f"unknown function {name}" if self.peek() == "(" else
                             f"{name!r} is neither a number nor a $parameter",
                             hint + ("" if self.peek() == "(" else "; parameters are written $name"))
        function, fewest, most, whole = FUNCTIONS[name]
        self.expect("(")
        arguments = []
        with self.deeper():
            while True:
                start = self.position
                value = self.expression()
                arguments.append((value, self.source(start)))
                if self.peek() != ",":
                    break
                self.take()
        self.expect(")")
        if not fewest <= len(arguments) <= most:
            count = f"{fewest}" if fewest == most else f"{fewest} to {most}"
            raise self.error(f"{name} takes {count} arguments, got {len(arguments)}",
                             "make_divisible(value, divisor) or make_divisible(value, divisor, min_value)"
                             if name == "make_divisible" else "")
        for index in whole:
            if index < len(arguments):
                value, written = arguments[index]
                if not isinstance(value, int) or value < 1:
                    got = repr(value) if written == repr(value) else f"{written} = {value!r}"
                    raise self.error(f"{name}'s argument {index + 1} must be a whole number >= 1, got {got}")
        return self.checked(function(*(value for value, _ in arguments)))

    # --- helpers --------------------------------------------------------------------------
    def peek(self) -> str:
        kind, token, _ = self.tokens[self.position]
        return token if kind == "op" else ""

    def take(self) -> str:
        token = self.tokens[self.position][1]
        self.position += 1
        return token

    def expect(self, token: str) -> None:
        if self.peek() != token:
            found = self.tokens[self.position]
            cut = found[0] == "end" and token == ")"  # YAML's flow {...} and [...] end a plain value at ','
            raise self.error(f"expected {token!r}, found " + ("the end" if found[0] == "end" else repr(found[1])),
                             "inside YAML's {...} or [...], quote an expression that has commas: "
                             "\"max($a, 8)\"" if cut else "every '(' needs its ')'")
        self.position += 1

    def source(self, start: int) -> str:
        """The text of the tokens from ``start`` to the current one (an operand, for messages)."""
        begin = self.tokens[start][2]
        end = self.tokens[self.position][2]
        return self.text[begin:end].strip()

    def checked(self, value: Number) -> Number:
        """Values stay within PyTorch's sizes (int64) and finite."""
        if isinstance(value, float) and not math.isfinite(value) or abs(value) > MAX_SIZE:
            raise self.error("the value is too large", "sizes stop at 2^63-1 (PyTorch's int64)")
        return value

    @contextmanager
    def deeper(self) -> Iterator[None]:
        """One level more of parentheses, calls or signs (bounded: the parser recurses)."""
        self.depth += 1
        if self.depth > MAX_EXPRESSION_DEPTH:
            raise self.error(f"the expression nests more than {MAX_EXPRESSION_DEPTH} levels deep",
                             "compute the value in parameters of their own, step by step")
        yield
        self.depth -= 1


def _quoted(text: str) -> str:
    return repr(text if len(text) <= 80 else text[:77] + "...")
