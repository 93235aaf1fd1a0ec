"""The lock model prints small nodes (type names, constants, ``x IS NOT NULL``) once per shape:
the text must be RawStream's, byte for byte, for every node it keys."""

from __future__ import annotations

import pglast
import pytest
from pglast.stream import RawStream
from pglast.visitors import Visitor

from migration_guard.locks import analyze
from tests.locks.cases import BASE, CASES

SQL = [BASE, *(case.sql for case in CASES), *(case.setup for case in CASES if case.setup), """
CREATE TABLE t (a numeric(10, 2) DEFAULT 1.50, b varchar(20) DEFAULT 'x', c int[] DEFAULT '{}',
    d timestamp(3) with time zone DEFAULT now(), e bit(3) DEFAULT B'101', f boolean DEFAULT true,
    g interval day to second(2), h "char", i public.my_type, j double precision DEFAULT -1e10,
    k bigint DEFAULT 9223372036854775807, l text DEFAULT NULL, m int DEFAULT 1::bigint,
    n int CHECK (n > 0 AND n < 10), o text CHECK (o IS NOT NULL), p varchar(20)[3], q time(0));
ALTER TABLE t ADD COLUMN r int DEFAULT 1, ADD COLUMN s numeric DEFAULT 1.0, ADD COLUMN u numeric DEFAULT 1;
"""]


class _Nodes(Visitor):
    def __init__(self):
        self.found = []

    def visit(self, ancestors, node):
        self.found.append(node)


def _nodes():
    for sql in SQL:
        try:
            raws = pglast.parse_sql(sql)
        except pglast.parser.ParseError:
            continue
        collector = _Nodes()
        for raw in raws:
            collector(raw)
        yield from collector.found


def test_printed_once_is_rawstream_output():
    keyed = 0
    for node in _nodes():
        try:
            shape = analyze._shape(node)
        except analyze._NoShape:
            continue
        try:
            expected = RawStream()(node)
        except Exception:  # a fragment pglast cannot print alone: not one _sql is given
            continue
        keyed += 1
        assert analyze._sql(node) == expected, node
        assert analyze._PRINTED[shape] == expected
    assert keyed > 100


@pytest.mark.parametrize(("one", "other"), [
    ("varchar(20)", "varchar(200)"), ("numeric(10, 2)", "numeric(10, 3)"), ("int", "bigint"),
    ("int[]", "int"), ("timestamp(3)", "timestamp"), ("text", "public.text"),
])
def test_different_types_print_differently(one, other):
    def type_of(sql_type):
        return pglast.parse_sql(f"CREATE TABLE t (c {sql_type})")[0].stmt.tableElts[0].typeName

    assert analyze._sql(type_of(one)) != analyze._sql(type_of(other))
    assert analyze._sql(type_of(one)) == RawStream()(type_of(one))


@pytest.mark.parametrize("search", [analyze._RangeVars, analyze._Functions, analyze._SequenceCalls])
def test_searches_walk_as_pglast_visitor(search):
    """The lock model's searches find the same things in the same order as pglast's own Visitor walk."""
    walked = 0
    for sql in [*SQL, "WITH x AS (SELECT * FROM a JOIN b USING (id)) UPDATE c SET v = (SELECT nextval('s') FROM x) "
                "FROM d WHERE c.id IN (SELECT id FROM e WHERE f(random()) > 0) RETURNING setval('q', 1)"]:
        try:
            raws = pglast.parse_sql(sql)
        except pglast.parser.ParseError:
            continue
        for raw in raws:
            fast, slow = search(), search()
            fast(raw.stmt)
            Visitor.__call__(slow, raw.stmt)
            found = {name: value for name, value in vars(slow).items() if name != "root"}  # pglast's own
            assert vars(fast) == found, sql
            walked += any(found.values())
    assert walked  # something was found
