"""Qualified names through imports: `import torch as t; t.nn.functional.softmax` -> `torch.nn.functional.softmax`."""

from __future__ import annotations

import ast


class ImportMap:
    """Every import of a file, flow-insensitive: local name -> the dotted name it stands for.

    Imports inside functions count too (scripts often import inside `main()`); a name bound both
    by an import and by plain code is rare enough in training scripts to ignore.
    """

    def __init__(self, imports: list[ast.Import | ast.ImportFrom]) -> None:
        self.names: dict[str, str] = {}
        for node in imports:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.names[alias.asname] = alias.name
                    else:
                        top = alias.name.split(".")[0]
                        self.names[top] = top
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    if alias.name != "*":
                        self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def qualname(self, node: ast.expr) -> str | None:
        """The dotted name an expression refers to through imports, or None."""
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in self.names:
            return None
        parts.append(self.names[node.id])
        return ".".join(reversed(parts))


def source_text(node: ast.AST) -> str:
    """The source of an expression, for messages and for matching targets (`self.losses`)."""
    parts: list[str] = []
    inner = node
    while isinstance(inner, ast.Attribute):
        parts.append(inner.attr)
        inner = inner.value
    if isinstance(inner, ast.Name):  # `loss`, `self.losses`: the unparser's text, without its cost
        return ".".join([inner.id, *reversed(parts)])
    try:
        return ast.unparse(node)
    except Exception:  # synthetic or extremely deep nodes: not worth failing a lint over
        return "<expression>"
