"""Settings documents (scales) validated by a Pydantic model, from JSON or YAML: an invalid
document is refused whole with, for YAML, the line of each offending value."""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

__all__ = ["DocumentError", "validate", "validate_yaml"]

M = TypeVar("M", bound=BaseModel)


class DocumentError(ValueError):
    """A document that does not validate; ``errors`` are ``(line or None, location,
    reason)``."""

    def __init__(self, errors: list[tuple[int | None, str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(_fmt(e) for e in errors))

    def fields(self) -> list[dict[str, Any]]:
        """The errors in the API's ``fields`` shape."""
        return [
            {"field": loc, "message": msg, **({"line": line} if line else {})}
            for line, loc, msg in self.errors
        ]


def _fmt(err: tuple[int | None, str, str]) -> str:
    line, loc, msg = err
    return f"line {line}: {loc}: {msg}" if line else f"{loc}: {msg}"


def validate(model: type[M], data: Any, error: type[DocumentError] = DocumentError) -> M:
    """``model`` from already parsed data; errors are located by path only."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error([(None, _loc(e["loc"]), e["msg"]) for e in exc.errors()]) from exc


def validate_yaml(model: type[M], text: str, error: type[DocumentError] = DocumentError) -> M:
    """``model`` from a YAML (or JSON) text; errors carry the 1-based line of the offending
    node."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise error([(mark.line + 1 if mark else None, "yaml", str(exc))]) from exc
    try:
        return model.model_validate(data or {})
    except ValidationError as exc:
        raise error(
            [(_line(node, e["loc"]), _loc(e["loc"]), e["msg"]) for e in exc.errors()]
        ) from exc


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def _line(node: Any, loc: tuple[Any, ...]) -> int | None:
    """Walk the composed YAML along a pydantic error location; the deepest node found
    wins."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == str(part)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            continue  # a union's tag (``action``) is in the location but not in the file
        node, line = child, child.start_mark.line + 1
    return line
