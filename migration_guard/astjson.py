"""pglast's parse trees, built from libpg_query's JSON instead of pglast's own constructors.

``pglast.parse_sql`` builds every node through ``Node.__setattr__``, which validates and adapts each
attribute in Python: that is nearly all of its time (1.6 s of a 50,000-statement script, where
libpg_query's own parse and ``json.loads`` of its JSON output take 0.3 s). :func:`parse_sql` gives the
same ``ast.RawStmt`` nodes, with the same classes, attributes and values, from that JSON: one
builder per node class, made once from the class's slot types, sets the attributes directly.

One difference, on purpose: every ``location``, ``stmt_location`` and ``stmt_len`` is a byte offset
in the UTF-8 text (libpg_query's own), where pglast turns them into character indices. They are the
same for ASCII text; :mod:`migration_guard.parse` slices the encoded text with them.

A JSON shape the builders do not know raises :class:`UnknownShape`, and the caller falls back to
``pglast.parse_sql`` (whose offsets it converts): the result is never a guess.
"""

from __future__ import annotations

import json
import keyword
from typing import Any

from pglast import ast, enums
from pglast.parser import parse_sql_json

__all__ = ["UnknownShape", "parse_sql"]


class UnknownShape(Exception):
    """libpg_query's JSON held something the builders do not model."""


def parse_sql(text: str) -> tuple[ast.RawStmt, ...]:
    """``pglast.parse_sql(text)``, with byte offsets; raises pglast's ``ParseError`` as it does."""
    tree = json.loads(parse_sql_json(text))
    try:
        return tuple(_build_raw(raw) for raw in tree.get("stmts", ()))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UnknownShape(f"{type(exc).__name__}: {exc}") from exc


# -- builders -------------------------------------------------------------------------------------

_NEW = object.__new__
_SET = object.__setattr__
_INTS = frozenset({"AclMode", "AttrNumber", "Index", "ParseLoc", "RelFileNumber", "SubTransactionId", "bits32",
                   "int", "int16", "int32", "long", "uint32", "uint64", "Cardinality"})
_FLOATS = frozenset({"Cost", "double"})
_NODE_CLASSES = {name: cls for name, cls in vars(ast).items()
                 if isinstance(cls, type) and issubclass(cls, ast.Node) and isinstance(cls.__slots__, dict)}
_BUILDERS: dict[str, Any] = {}  # class name -> function(dict) -> node, made on first use


def _node(value: dict) -> Any:
    """A wrapped node, ``{"ClassName": {...}}``; ``{"List": {"items": [...]}}`` is a tuple and ``{}``
    a null pointer in a list (RangeFunction's (function, column definitions) pairs)."""
    if not value:
        return None
    ((name, fields),) = value.items()
    if name == "List":
        return tuple([_node(item) for item in fields.get("items", ())])
    builder = _BUILDERS.get(name)
    if builder is None:
        builder = _builder(name)
    return builder(fields)


def _nodes(value: list) -> tuple:
    return tuple([_node(item) for item in value])


def _specific(name: str):
    """A field typed as one node class (``RangeVar *relation``): its JSON is the bare fields."""
    def build(fields: dict) -> Any:
        builder = _BUILDERS.get(name)
        if builder is None:
            builder = _builder(name)
        return builder(fields)
    return build


def _builder(name: str):
    """Make (once) the function that builds node class ``name`` from its JSON fields."""
    cls = _NODE_CLASSES.get(name)
    if cls is None:
        raise KeyError(f"no pglast node class {name!r}")
    if name == "A_Const":
        builder = _build_a_const
    else:
        builder = _compile(cls)
    _BUILDERS[name] = builder
    return builder


def _compile(cls: type):
    """The builder of ``cls``, written out attribute by attribute (a loop over a plan of the slots
    was 40% slower: most fields are absent and the loop's own work was most of the time)."""
    lines = ["def build(fields):", "    node = _new(_cls)"]
    namespace: dict[str, Any] = {"_new": _NEW, "_cls": cls}
    for number, (attribute, info) in enumerate(cls.__slots__.items()):
        key = _json_key(attribute)
        default, convert = _converter(cls, attribute, info.c_type)
        # The slot's own descriptor: setting through it skips Node.__setattr__, and is twice as
        # fast as object.__setattr__, which looks the name up first.
        slot = next(klass.__dict__[attribute] for klass in cls.__mro__ if attribute in klass.__dict__)
        namespace.update({f"_set{number}": slot.__set__, f"_default{number}": default, f"_convert{number}": convert})
        if info.c_type == "ParseLoc":
            lines += [f"    value = fields.get({key!r}, 0)",
                      f"    _set{number}(node, None if value == -1 else value)"]
        elif convert is None:
            lines.append(f"    _set{number}(node, fields.get({key!r}, _default{number}))")
        else:
            lines += [f"    value = fields.get({key!r})",
                      f"    _set{number}(node, _default{number} if value is None else _convert{number}(value))"]
    lines.append("    return node")
    exec(compile("\n".join(lines), f"<builder of {cls.__name__}>", "exec"), namespace)  # noqa: S102
    return namespace["build"]


def _json_key(attribute: str) -> str:
    """pglast names a field that is a Python keyword with a trailing underscore (``def_``)."""
    return attribute[:-1] if attribute.endswith("_") and keyword.iskeyword(attribute[:-1]) else attribute


def _converter(cls: type, attribute: str, ctype: str) -> tuple[Any, Any]:
    """(value when the JSON omits the field, conversion of a present value) for one slot.
    libpg_query's JSON leaves out false booleans, zero numbers and chars, and null pointers."""
    if ctype == "bool":
        return False, None
    if ctype in _INTS:  # ParseLoc too; _compile writes its -1 (unknown) as None, as pglast does
        return 0, None
    if ctype in _FLOATS:
        return 0.0, float
    if ctype == "char":
        return "\x00", None
    if ctype == "char*":
        return None, None
    if ctype in ("Node*", "Expr*"):
        return None, _any_node
    if ctype == "List*":
        return None, _nodes
    if ctype == "Bitmapset*":
        return None, set
    if hasattr(enums, ctype):
        return None, getattr(enums, ctype)._member_map_.__getitem__  # JSON names the member
    target = ctype.rstrip("*")
    if target in _NODE_CLASSES:
        return None, _specific(target)
    raise KeyError(f"no builder for {cls.__name__}.{attribute} of C type {ctype!r}")


def _any_node(value: Any) -> Any:
    if isinstance(value, dict):
        return _node(value)
    if isinstance(value, list):
        return _nodes(value)
    raise TypeError(f"a node field holds {type(value).__name__}")


def _scalar(cls, attribute: str, default: Any):
    def build(fields: dict) -> Any:
        node = _NEW(cls)
        _SET(node, attribute, fields.get(attribute, default))
        return node
    return build


# Value nodes: an omitted value is the zero of its type (Integer 0, Boolean false).
_BUILDERS.update({
    "Integer": _scalar(ast.Integer, "ival", 0),
    "Boolean": _scalar(ast.Boolean, "boolval", False),
    "Float": _scalar(ast.Float, "fval", None),
    "String": _scalar(ast.String, "sval", None),
    "BitString": _scalar(ast.BitString, "bsval", None),
})
_CONSTANTS = (("ival", "Integer"), ("sval", "String"), ("fval", "Float"), ("boolval", "Boolean"),
              ("bsval", "BitString"))


def _build_a_const(fields: dict) -> ast.A_Const:
    """``A_Const``: pglast keeps ``isnull`` and the value (no location)."""
    node = _NEW(ast.A_Const)
    isnull = bool(fields.get("isnull", False))
    value = None
    if not isnull:
        for key, name in _CONSTANTS:
            if key in fields:
                value = _BUILDERS[name](fields[key])
                break
        else:
            raise KeyError(f"A_Const with none of its values: {sorted(fields)}")
    _SET(node, "isnull", isnull)
    _SET(node, "val", value)
    return node


def _build_raw(raw: dict) -> ast.RawStmt:
    node = _NEW(ast.RawStmt)
    _SET(node, "stmt", _node(raw["stmt"]))
    _SET(node, "stmt_location", raw.get("stmt_location", 0))
    _SET(node, "stmt_len", raw.get("stmt_len", 0))
    return node
