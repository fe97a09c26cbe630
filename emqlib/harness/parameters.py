"""What papermill leaves unchecked in a notebook's parameters (it injects any name with any value), checked
against the cell tagged ``parameters`` as papermill's own inspection reads it: a given value must be declared,
of its default's type (an int is taken for a float, a bool is never a number), one of the choices an inline
comment lists (``profile = "cpu"  # smoke | cpu | paper``), and a count (``n_*``, ``*_seeds``) at least 1.
``make reproduce`` checks before it starts a notebook (:func:`check_notebook`); a notebook run by papermill
directly, in its kernel (:func:`check_injected_parameters`, its first cell after the parameters cell).
"""
from __future__ import annotations

import ast
import numbers
import os
import re

import papermill
from papermill.translators import PythonTranslator

CHOICES = re.compile(r"^\s*([\w.-]+(?:\s*\|\s*[\w.-]+)+)\s*(?::|$)")  # "smoke | cpu | paper", then ": ..." or nothing


def check(declared: dict, given: dict, notebook: str) -> dict:
    """``given`` checked against ``declared`` (papermill's description of a parameters cell); raises one
    ValueError line naming the notebook and the parameter; returns the values as their declared types."""
    checked = {}
    for name, value in given.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none: it has no cell tagged 'parameters'"
            raise ValueError(f"{notebook}: unknown parameter {name!r} (its parameters: {known})")
        try:  # a default that is an expression (or None) has no type to check against
            kind = type(ast.literal_eval(declared[name]["default"]))
        except (ValueError, SyntaxError):
            kind = type(None)
        if kind is not type(None) and (isinstance(value, bool) != (kind is bool) or not isinstance(
                value, {float: numbers.Real, int: numbers.Integral}.get(kind, kind))):
            raise ValueError(f"{notebook}: parameter {name!r} must be of type {kind.__name__} (default "
                             f"{declared[name]['default']}), got {value!r} of type {type(value).__name__}")
        value = kind(value) if kind in (int, float) else value
        choices = CHOICES.match(declared[name].get("help") or "")
        if choices and isinstance(value, str) and value not in (listed := re.split(r"\s*\|\s*", choices[1])):
            raise ValueError(f"{notebook}: parameter {name!r} must be one of {listed}, got {value!r}")
        if isinstance(value, int) and (name.startswith("n_") or name.endswith("_seeds")) and value < 1:
            raise ValueError(f"{notebook}: parameter {name!r} is a count: give a whole number >= 1, got {value!r}")
        checked[name] = value
    return checked


def check_notebook(path: str | os.PathLike, given: dict) -> dict:
    """:func:`check` against the parameters cell of the notebook at ``path``."""
    return check(papermill.inspect_notebook(str(path)), given, os.path.basename(path))


def check_injected_parameters(history: list[str] | None = None, namespace: dict | None = None,
                              notebook: str = "this notebook") -> None:
    """:func:`check` of what papermill injected into the running kernel, whose ``history`` (``In``) and ``namespace``
    (globals, where the values become their declared types) they default to; outside papermill it does nothing."""
    if history is None or namespace is None:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return
        history, namespace = shell.user_ns.get("In", []), shell.user_ns
    injected = [i for i, source in enumerate(history) if source.lstrip().startswith("# Parameters")]  # papermill's
    if not injected or injected[-1] == 0:
        return
    # papermill puts its cell right after the cell tagged "parameters": the one executed before it
    declared, given = ({p.name: p._asdict() for p in PythonTranslator.inspect({"source": history[i]})}
                       for i in (injected[-1] - 1, injected[-1]))
    namespace.update(check(declared, {name: namespace[name] for name in given if name in namespace}, notebook))
