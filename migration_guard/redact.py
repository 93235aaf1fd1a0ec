"""Secrets never printed: passwords in connection strings, and credentials in SQL.

- :func:`redact_dsn` and :func:`dsn_problem`: a libpq connection string (``key=value`` or
  ``postgresql://`` URL) or an error about it, without its password. libpq quotes the string in
  some of its messages (a malformed URL) and a fragment of it in others (a password with a space
  that is not quoted): when the string does not parse, its own message is never shown.
- :func:`mask_sql`: the SQL text that reports show, with the string literal after ``PASSWORD``,
  a credential-looking option, setting or column (``password``, ``secret``, ``token``, ``api_key``,
  ...), the ``DEFAULT`` of such a column, and a literal holding ``password`` (a connection string)
  replaced by ``'***'``. The statement
  stays valid SQL of the same shape, so it still parses and locks the same.
"""

from __future__ import annotations

import re

__all__ = ["MASK", "dsn_problem", "mask_sql", "redact_dsn"]

MASK = "***"
_CREDENTIAL = re.compile(r"pass(word|wd|phrase)?|secret|token|api_?key|access_?key|private_?key|credential"
                         r"|auth|pwd|conninfo|connstr", re.IGNORECASE)
# What any text _CREDENTIAL can match in holds, lower-cased (mask_sql's quick test): not "key" alone, which
# every PRIMARY KEY and FOREIGN KEY holds (a script of DDL was always scanned token by token).
_CREDENTIAL_WORDS = ("pass", "secret", "token", "apikey", "api_key", "accesskey", "access_key", "privatekey",
                     "private_key", "credential", "auth", "pwd", "conninfo", "connstr")
# key=value: a quoted value (backslash escapes) or a bare word; URL: user:password@ and ?password=.
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)", re.IGNORECASE)
_URL_USERINFO = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@?#\s]*:)([^@]*)(@)", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"([?&]password=)([^&#\s]*)", re.IGNORECASE)


def redact_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***`` (both forms; a key=value password with an
    unquoted space loses every word up to the next ``key=``)."""
    text = _URL_USERINFO.sub(lambda m: m.group(1) + MASK + m.group(3), dsn)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + MASK, text)

    def keyword_value(match: re.Match) -> str:
        return match.group(1) + MASK

    text = _KV_PASSWORD.sub(keyword_value, text)
    # An unquoted password with spaces: libpq reads only its first word, then fails on the next;
    # mask the words up to the next key=value too.
    return re.sub(r"(password\s*=\s*\*\*\*)((?:\s+(?![\w.-]+\s*=)\S+)+)", r"\1", text, flags=re.IGNORECASE)


def _passwords(dsn: str) -> list[str]:
    """Every text that could be the DSN's password, longest first (to replace in messages)."""
    found = []
    match = _URL_USERINFO.match(dsn)
    if match and match.group(2):
        found.append(match.group(2))
    found += [m.group(2) for m in _URL_PASSWORD.finditer(dsn) if m.group(2)]
    for m in _KV_PASSWORD.finditer(dsn):
        value = m.group(2)
        found.append(value)
        if value.startswith("'"):
            found.append(value.strip("'"))
    try:
        from psycopg.conninfo import conninfo_to_dict

        password = conninfo_to_dict(dsn).get("password")
    except Exception:  # psycopg.Error on a malformed string: covered by the patterns above
        password = None
    if password:
        found.append(str(password))
    return sorted({p for p in found if p}, key=len, reverse=True)


def dsn_problem(exc: BaseException, dsn: str) -> str:
    """One line saying why connecting with ``dsn`` failed, without the password: libpq's own
    message when the string parses (the string and its password removed), a fixed sentence when
    it does not."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        conninfo_to_dict(dsn)
    except Exception:
        return ("the DSN is not a valid libpq connection string or postgresql:// URL (quote a password "
                "holding spaces: password='...'); see "
                "https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING")
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.replace(dsn, redact_dsn(dsn))
    for password in _passwords(dsn):
        text = text.replace(password, MASK)
    return text


# -- SQL ------------------------------------------------------------------------------------------

def mask_sql(sql: str) -> str:
    """``sql`` with credentials in string literals masked (see the module docstring); the text is
    returned unchanged when nothing looks like one (the common case costs a regex search)."""
    lowered = sql.lower()
    if not any(word in lowered for word in _CREDENTIAL_WORDS):  # substring search: a regex took 12 s on 12 MB
        return sql
    try:
        from pglast.parser import scan

        tokens = scan(sql)
    except Exception:  # the scanner gave up (an unterminated quote): mask every literal after a keyword
        return _mask_unscannable(sql)
    pieces, last = [], 0
    previous: list = []  # the last meaningful tokens before the current one
    for token in tokens:
        if token.name in ("SCONST", "USCONST", "XCONST", "BCONST"):
            start, end = token.start, token.end + 1
            literal = sql[start:end]
            # a credential's value, or a connection string holding a password: all of it
            if _is_secret_position(sql, previous) or "password" in literal.lower():
                pieces.append(sql[last:start])
                pieces.append(_masked_literal(literal))
                last = end
        if token.name not in ("SQL_COMMENT", "C_COMMENT"):
            previous = (previous + [token])[-_WINDOW:]
    pieces.append(sql[last:])
    return "".join(pieces)


def _is_secret_position(sql: str, previous: list) -> bool:
    """Whether the literal after these tokens is a credential's value: ``PASSWORD 'x'``,
    ``password 'x'`` in OPTIONS, ``SET api_token = 'x'``, ``password = 'x'``, ``TO 'x'``."""
    words = [sql[t.start:t.end + 1] for t in previous]
    if not words:
        return False
    last = words[-1]
    if last.upper() == "DEFAULT":
        column = _defined_column(words[:-1])
        return column is not None and bool(_CREDENTIAL.search(column.strip('"')))
    words = words[-3:]
    if last in ("=", "TO", "to", "To", ":=") and len(words) >= 2:
        name = words[-2].strip('"').split(".")[-1]
        return bool(_CREDENTIAL.search(name))
    return bool(_CREDENTIAL.search(last.strip('"')))


# Tokens kept before a literal: enough to reach a column's name across its type (``"api_key" character
# varying(64) DEFAULT``, ``timestamp(3) with time zone``).
_WINDOW = 16
_COLUMN_START = frozenset({",", "(", "COLUMN", "ADD"})


def _defined_column(words: list[str]) -> str | None:
    """The column whose ``DEFAULT`` the tokens before it end on: the first word after the start of its
    definition (``ADD [COLUMN]``, ``ALTER COLUMN``, a ``,`` or ``(`` of the table's column list), the
    parentheses of its type skipped; None when the window does not reach it."""
    depth = 0
    for position in range(len(words) - 1, -1, -1):
        word = words[position]
        if word == ")":
            depth += 1
        elif word == "(" and depth:
            depth -= 1
        elif depth == 0 and word.upper() in _COLUMN_START:
            following = words[position + 1:position + 2]
            return following[0] if following else None
    return None


def _masked_literal(literal: str) -> str:
    """``'***'`` in place of a literal, keeping its line breaks (later lines keep their numbers)."""
    prefix = re.match(r"^[A-Za-z&]*", literal).group(0)  # E'', U&'', B'', X''
    breaks = "\n" * literal.count("\n")
    return f"{prefix}'{MASK}{breaks}'" if prefix in ("E", "e", "") else f"{literal[:len(prefix)]}'{breaks}'"


def _mask_unscannable(sql: str) -> str:
    """Text the scanner rejects (an unterminated quote): every quoted literal is masked."""
    return re.sub(r"'(?:[^']|'')*'?", lambda m: _masked_literal(m.group(0)), sql)
