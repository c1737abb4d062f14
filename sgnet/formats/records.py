"""Reading an annotation JSON file and checking its records: what the YouTube-VIS and COCO readers
share (the JSON itself, value types, categories, ``iscrowd``, unique ids).

Every problem is an :class:`~sgnet.errors.InvalidInput` (or :class:`~sgnet.errors.MissingInput`)
whose one-line message starts with the file and the record's position.
"""
import json
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any, Dict, List

from detectron2.utils.file_io import PathManager

from ..errors import InvalidInput, MissingInput
from .rle import _short as short_repr

__all__ = [
    "Category",
    "read_json",
    "is_int",
    "is_number",
    "object_entries",
    "require_fields",
    "require_file_kind",
    "identified_entries",
    "parse_categories",
    "parse_iscrowd",
    "unique_id",
    "short_repr",
]


def _is_str(value) -> bool:
    return isinstance(value, str)


_CATEGORY_FIELDS = {"name": (_is_str, "a string")}


@dataclass(frozen=True)
class Category:
    id: int  # the file's (dataset) category id
    name: str


def read_json(path) -> Any:
    """The parsed content of the JSON file ``path`` (a local path or a detectron2 PathManager URI).

    Raises:
        MissingInput: no such file. InvalidInput: unreadable or not valid JSON.
    """
    path = os.fspath(path)
    if not PathManager.exists(path):
        raise MissingInput(f"{path}: no such file")
    try:
        with PathManager.open(path, "r") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path}: not valid JSON ({e})") from e
    except OSError as e:  # a folder, no permission
        raise InvalidInput(f"{path}: cannot be read ({e.strerror or e})") from e


def is_int(value) -> bool:
    """A JSON integer (``true``/``false`` are not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
    """A finite JSON number (not a bool, not a string such as "12")."""
    # The json module's own types first: the abstract numbers.Real check costs several times
    # more, and a COCO file has tens of millions of polygon coordinates.
    if type(value) in _JSON_NUMBER_TYPES:
        return math.isfinite(value)
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


_JSON_NUMBER_TYPES = (int, float)  # exact types: bool, a subclass of int, is not among them


def object_entries(content: dict, field: str, prefix: str, *, required: bool = True) -> List[dict]:
    """``content[field]``, checked to be a list of JSON objects; ``[]`` when an optional field is
    absent or null.

    Args:
        prefix: the file, as messages start (``"path: "``).
    """
    entries = content.get(field)
    if entries is None and not required:
        return []
    if not isinstance(entries, list):
        raise InvalidInput(f"{prefix}'{field}' must be a list, got {short_repr(entries)}")
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InvalidInput(f"{prefix}{field} #{position} is not a JSON object: {short_repr(entry)}")
    return entries


def require_fields(entry: dict, checks: Dict[str, Any], where: str) -> None:
    """Each ``entry[key]`` present and passing ``checks[key]`` ((predicate, what it must be))."""
    for key, (check, expected) in checks.items():
        if key not in entry:
            raise InvalidInput(f"{where}: lacks '{key}'")
        if not check(entry[key]):
            raise InvalidInput(f"{where}: '{key}' must be {expected}, got {short_repr(entry[key])}")


def require_file_kind(content, list_field: str, kind: str, expected: str, prefix: str) -> None:
    """``content`` is a JSON object with a ``list_field`` list, else "not a ``kind``" file."""
    if not (isinstance(content, dict) and isinstance(content.get(list_field), list)):
        raise InvalidInput(f"{prefix}not a {kind} file: expected a JSON object with {expected}")


def identified_entries(content: dict, field: str, what: str, checks: Dict[str, Any], prefix: str):
    """Yields (position in messages, entry) for the JSON objects of ``content[field]``, each with
    a unique integer ``id`` and the fields ``checks`` names (see :func:`require_fields`).

    Args:
        what: how messages name an entry: ``"{what} #{index} (id {id})"``.
    """
    seen = set()
    for index, entry in enumerate(object_entries(content, field, prefix)):
        where = f"{prefix}{what} #{index} (id {entry.get('id')})"
        unique_id(entry, seen, what, where)
        require_fields(entry, checks, where)
        yield where, entry


def parse_categories(content: dict, prefix: str) -> List[Category]:
    """The file's ``categories``, sorted by id: each ``{"id": int, "name": str, ...}``, ids unique."""
    entries = identified_entries(content, "categories", "category", _CATEGORY_FIELDS, prefix)
    return sorted((Category(id=e["id"], name=e["name"]) for _, e in entries), key=lambda c: c.id)


def parse_iscrowd(entry: dict, where: str) -> int:
    """``entry["iscrowd"]`` as 0 or 1 (absent: 0); JSON 0/1 or true/false, nothing else."""
    value = entry.get("iscrowd", 0)
    if value not in (0, 1) or not isinstance(value, (bool, numbers.Integral)):
        raise InvalidInput(f"{where}: 'iscrowd' must be 0 or 1, got {short_repr(value)}")
    return int(value)


def unique_id(entry: dict, seen: set, what: str, where: str) -> int:
    """``entry["id"]`` checked to be an integer not in ``seen`` (then added to it)."""
    require_fields(entry, {"id": (is_int, "an integer")}, where)
    if entry["id"] in seen:
        raise InvalidInput(f"{where}: {what} id {entry['id']} appears more than once")
    seen.add(entry["id"])
    return entry["id"]
