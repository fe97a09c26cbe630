"""Checks, inside a notebook's kernel, of the parameters papermill injected.

``python -m emqlib.harness.reproduce`` checks parameters before it starts a notebook; a user who runs
papermill directly (``papermill nb.ipynb out.ipynb -p n_seeds two``) gets only a warning for an
unknown name from papermill, and a mistyped value fails cells later. Each notebook therefore
calls :func:`check_injected_parameters` first thing after its ``parameters`` cell: the names
papermill injected must be declared in that cell, with the declared types and choices (the
rules of :func:`emqlib.harness.reproduce.check_parameters`).
"""
from __future__ import annotations

import ast

INJECTED_HEADER = "# Parameters"  # the first line papermill writes into the cell it injects


def _assigned_names(source: str) -> list[str]:
    """Names assigned at the top level of ``source`` (papermill writes one ``name = value`` a line)."""
    return [target.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for target in node.targets if isinstance(target, ast.Name)]


def check_injected_parameters(history: list[str] | None = None, namespace: dict | None = None,
                              notebook_name: str = "this notebook") -> None:
    """Raise ValueError naming the parameter when papermill injected an undeclared name or a
    value of the wrong type. ``history`` (the kernel's executed cells, ``In``) and ``namespace``
    (its globals) default to the running IPython kernel's; outside papermill it does nothing."""
    import nbformat
    from papermill.translators import PythonTranslator

    from .reproduce import check_declared

    if history is None or namespace is None:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None:
            return
        history, namespace = shell.user_ns.get("In", []), shell.user_ns
    injected = [i for i, source in enumerate(history) if source.lstrip().startswith(INJECTED_HEADER)]
    if not injected or injected[-1] == 0:
        return  # not run by papermill, or with no parameters given
    position = injected[-1]
    # papermill puts its cell right after the cell tagged "parameters": the one executed before it
    declared = {p.name: p._asdict() for p in PythonTranslator.inspect(nbformat.v4.new_code_cell(history[position - 1]))}
    given = {name: namespace[name] for name in _assigned_names(history[position]) if name in namespace}
    checked = check_declared(declared, given, notebook_name)
    namespace.update(checked)  # numbers as the declared type (an int given for a float)
