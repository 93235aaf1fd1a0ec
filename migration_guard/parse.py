"""Stage *parse*: pglast -> one AST per statement. A statement that does not parse is kept, with
its error, so that a rule reports it: it is never skipped."""

from __future__ import annotations

import hashlib
import re
from collections import deque
from dataclasses import replace
from functools import partial

import pglast
from pglast import ast
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Ancestor

from migration_guard import astjson
from migration_guard.model import ParsedStatement, Statement, StatementKind

__all__ = ["MAX_STATEMENT_BYTES", "SqlInputError", "deparse", "parse_sql_text", "parse_statement", "parse_trees",
           "statement_fingerprint"]

# A statement larger than this is not analysed (a finding says so, MG912): parsing and analysing
# one of 10 MB took minutes and over a gigabyte. A migration's DDL is a few kilobytes; data in bulk
# belongs in COPY or a RunPython, not in one statement.
MAX_STATEMENT_BYTES = 1_000_000
_TOO_DEEP = ("nested too deeply to analyse (hundreds of levels of operators or subqueries); split it, or "
             "approve it after checking its locks with migration-guard trace")


class SqlInputError(ValueError):
    """A SQL file the gate cannot read as PostgreSQL would (a NUL byte): the message names the line."""


def _too_large(size: int) -> str:
    return (f"{size:,} bytes, more than the {MAX_STATEMENT_BYTES:,} the gate analyses in one statement; split "
            "it, or load data with COPY or RunPython")


def parse_trees(text: str) -> tuple:
    """pglast's trees of ``text`` (``pglast.parse_sql``'s ``RawStmt`` nodes, built at twice its speed: see
    :mod:`migration_guard.astjson`), with UTF-8 byte offsets; raises pglast's ``ParseError`` as it does."""
    try:
        return astjson.parse_sql(text)
    except astjson.UnknownShape:
        raws = pglast.parse_sql(text)  # the same trees, built by pglast itself: character offsets
        if not text.isascii():
            for raw in raws:
                start = raw.stmt_location or 0
                raw.stmt_location = len(text[:start].encode())
                if raw.stmt_len:
                    raw.stmt_len = len(text[start:start + raw.stmt_len].encode())
        return raws


def parse_statement(statement: Statement) -> list[ParsedStatement]:
    """Parse one rendered statement; SQL holding several statements gives several results and a
    comment-only one gives none."""
    if statement.kind is not StatementKind.SQL:
        return [ParsedStatement(statement=statement, fingerprint=_digest(statement.sql))]
    if "\0" in statement.sql:
        return [ParsedStatement(statement=statement, error="it holds a NUL byte, which PostgreSQL refuses in SQL text",
                                fingerprint=_digest(statement.sql))]
    size = len(statement.sql.encode())
    if size > MAX_STATEMENT_BYTES:  # statement by statement: only a huge one is left out
        pieces = [piece for piece, _ in _split(statement.sql)]
        if len(pieces) == 1:
            return [_limited(statement, _too_large(size))]
        return [parsed for piece in pieces for parsed in parse_statement(replace(statement, sql=piece))]
    try:
        raws = parse_trees(statement.sql)
    except ParseError as exc:
        return [ParsedStatement(statement=statement, error=str(exc), fingerprint=_digest(_normalise(statement.sql)))]
    except RecursionError:
        return [_limited(statement, _TOO_DEEP)]
    if len(raws) == 1:
        return [ParsedStatement(statement=statement, node=raws[0].stmt,
                                fingerprint=partial(statement_fingerprint, raws[0]))]
    encoded = statement.sql.encode()
    results = []
    for raw in raws:
        piece = _slice(encoded, raw)
        results.append(
            ParsedStatement(statement=replace(statement, sql=piece), node=raw.stmt,
                            fingerprint=partial(statement_fingerprint, raw))
        )
    return results


def parse_sql_text(text: str, source: str) -> list[ParsedStatement]:
    """Split and parse a whole SQL file (psql script, Alembic/Flyway migration); each statement
    knows its line. Statements that do not parse are returned with their error, and the rest of the
    file is still analysed. A NUL byte is an error (:class:`SqlInputError`): PostgreSQL's parser
    stops at it, psql would run the rest of the file."""
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise SqlInputError(f"{source}:{line}: a NUL byte; the gate cannot read past it, psql would run what "
                            "follows: remove it")
    if len(text) > MAX_STATEMENT_BYTES:  # parsed statement by statement: one huge one is left out alone
        return [parsed for piece, line in _split(text) for parsed in _parse_piece(piece, source, line)]
    try:
        raws = parse_trees(text)
    except (ParseError, RecursionError):
        return [parsed for piece, line in _split(text) for parsed in _parse_piece(piece, source, line)]
    encoded = text.encode()
    results = []
    counted, line = 0, 1  # lines counted up to byte ``counted``: offsets only grow, so count once
    for raw in raws:
        start = raw.stmt_location or 0
        end = start + raw.stmt_len if raw.stmt_len else len(encoded)
        chunk = encoded[start:end].decode(errors="replace")
        body = chunk.lstrip()
        offset = start + len(chunk) - len(body)  # the first line that is not blank (whitespace is ASCII)
        line += encoded.count(b"\n", counted, offset)
        counted = offset
        statement = Statement(sql=body.rstrip(), migration=source, line=line, transaction=None, in_transaction=False)
        results.append(ParsedStatement(statement=statement, node=raw.stmt,
                                       fingerprint=partial(statement_fingerprint, raw)))
    return results


def deparse(node) -> str:
    """``RawStream()(node)``: the SQL text of a tree, at about twice its speed. RawStream first sets every
    node's ``ancestors`` (which its printers read) with pglast's generic visitor, which builds a visitor
    class and reads its methods by introspection on each call, and sets each through ``Node.__setattr__``;
    :func:`_populate_ancestors` sets the same ones, in the same order, directly."""
    if isinstance(node, ast.RawStmt) and node.stmt is None:
        return ""
    _populate_ancestors((node,))
    stream = RawStream()
    stream.print_node(node)
    return stream.getvalue()


_SET_ANCESTORS = ast.Node.__dict__["ancestors"].__set__


def _populate_ancestors(tree: tuple) -> None:
    """``pglast.visitors.populate_ancestors(tree)``: the same breadth-first walk, the same Ancestor chains."""
    todo = deque([(Ancestor(), tree)])
    while todo:
        ancestors, item = todo.popleft()
        for index, node in enumerate(item) if isinstance(item, tuple) else ((None, item),):
            below = ancestors if index is None else Ancestor(ancestors, item, index)
            if isinstance(node, ast.Node):
                _SET_ANCESTORS(node, below)
                for member in node.__slots__:
                    value = getattr(node, member)
                    if isinstance(value, (tuple, ast.Node)):
                        todo.append((Ancestor(below, node, member), value))
            elif isinstance(node, tuple):
                for inner, value in enumerate(node):
                    if isinstance(value, (tuple, ast.Node)):
                        todo.append((Ancestor(below, node, inner), value))


def statement_fingerprint(raw) -> str:
    """A digest of the statement's canonical SQL: the same for any spacing, case of keywords or
    comments, different as soon as any identifier or constant changes (approvals bind to it)."""
    try:
        canonical = deparse(raw)
    except Exception:  # a node pglast cannot print back (or nested too deeply): its text
        try:
            canonical = _normalise(str(raw))
        except RecursionError:
            canonical = f"{type(raw).__name__} at {getattr(raw, 'stmt_location', None)}"
    return _digest(canonical)


def _limited(statement: Statement, reason: str) -> ParsedStatement:
    return ParsedStatement(statement=statement, limit=reason, fingerprint=_digest(_normalise(statement.sql)))


def _parse_piece(piece: str, source: str, line: int) -> list[ParsedStatement]:
    statement = Statement(sql=piece, migration=source, line=line, transaction=None, in_transaction=False)
    size = len(piece.encode())
    if size > MAX_STATEMENT_BYTES:
        return [_limited(statement, _too_large(size))]
    try:
        raws = parse_trees(piece)
    except ParseError as exc:
        return [ParsedStatement(statement=statement, error=str(exc), fingerprint=_digest(_normalise(piece)))]
    except RecursionError:
        return [_limited(statement, _TOO_DEEP)]
    return [ParsedStatement(statement=statement, node=raw.stmt, fingerprint=partial(statement_fingerprint, raw))
            for raw in raws]


def _split(text: str) -> list[tuple[str, int]]:
    """Split SQL that does not parse as a whole into statements with their first line, using the
    scanner only (it copes with invalid statements)."""
    pieces = []
    line, counted = 1, 0  # the line at offset ``counted``: counted on from the last statement, not from 0
    for start, end in _statement_ranges(text):
        lines = text[start:end].splitlines(keepends=True)
        skipped = 0
        while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
            skipped += len(lines.pop(0))
        body = "".join(lines).strip().rstrip(";").strip()
        if body:
            line += text.count("\n", counted, start + skipped)
            counted = start + skipped
            pieces.append((body, line))
    return pieces


def _statement_ranges(text: str) -> list[tuple[int, int]]:
    """Character ranges of the statements of ``text``, cut at its top-level semicolons: by
    libpg_query's splitter when the text parses (a 10 MB statement in under a second), else by
    the scanner's tokens (slower: a Python object per token; it copes with invalid statements).
    libpg_query's scanner-only splitter is not used: it drops statements it cannot classify."""
    try:
        pieces = pglast.parser.split(text)
    except ParseError:
        pieces = None
    if pieces is not None:
        ranges, position = [], 0
        for piece in pieces:
            start = text.find(piece, position)
            if start < 0:  # never seen: the pieces are slices of the text
                break
            position = start + len(piece)
            ranges.append((start, position))
        else:
            return ranges
    ranges, start = [], 0
    try:
        tokens = pglast.parser.scan(text)
    except ParseError:
        return [(0, len(text))]
    for token in tokens:
        if token.name == "ASCII_59":  # ';'
            ranges.append((start, token.end + 1))
            start = token.end + 1
    ranges.append((start, len(text)))
    return ranges


def _slice(encoded: bytes, raw) -> str:
    start = raw.stmt_location or 0
    end = start + raw.stmt_len if raw.stmt_len else len(encoded)
    return encoded[start:end].decode(errors="replace").strip()


def _normalise(sql: str) -> str:
    return re.sub(r"\s+", " ", sql).strip().rstrip(";")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
