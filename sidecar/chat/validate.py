"""Is an LLM's answer one safe, read-only query on the chat view?  Decided before anything runs.

:func:`validate` takes the raw answer and returns the query to run, re-serialised from its
sqlglot tree, or raises :class:`Refused` with a precise reason (fed back to the model on retry).

Accepted: one SELECT (a UNION / INTERSECT / EXCEPT of SELECTs, subqueries, and CTEs of SELECTs
at the top level) reading only ``chat_tracks``, built from an allow-list of expression kinds
(comparisons, arithmetic, CASE, casts to plain types, window ranking) and functions.  The text
is checked by a small lexer first: outside string literals only ASCII, no comments, no dollar
quoting, no ``;`` (a trailing one is dropped), no backslash anywhere.  The outermost ``LIMIT``
is forced to at most ``max_rows``; every read of the view is qualified as ``chat.chat_tracks``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from sidecar.chat.columns import VIEW

SCHEMA = "chat"
MAX_LENGTH = 8000
MAX_VIEW_READS = 4
MAX_OFFSET = 10_000


class Refused(ValueError):
    """The answer is not run; :attr:`reason` says why, in words the model can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Validated:
    sql: str
    limit: int


#: expression kinds allowed anywhere in the tree (functions are listed separately)
_NODES: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Select,
        exp.Union,
        exp.Intersect,
        exp.Except,
        exp.Subquery,
        exp.With,
        exp.CTE,
        exp.From,
        exp.Join,
        exp.Where,
        exp.Group,
        exp.Having,
        exp.Order,
        exp.Ordered,
        exp.Limit,
        exp.Offset,
        exp.Distinct,
        exp.Column,
        exp.Identifier,
        exp.Table,
        exp.TableAlias,
        exp.Alias,
        exp.Star,
        exp.Literal,
        exp.Boolean,
        exp.Null,
        exp.Paren,
        exp.Tuple,
        exp.And,
        exp.Or,
        exp.Not,
        exp.EQ,
        exp.NEQ,
        exp.GT,
        exp.GTE,
        exp.LT,
        exp.LTE,
        exp.Is,
        exp.In,
        exp.Between,
        exp.Like,
        exp.ILike,
        exp.Add,
        exp.Sub,
        exp.Mul,
        exp.Div,
        exp.Mod,
        exp.Neg,
        exp.DPipe,
        exp.Case,
        exp.If,
        exp.Cast,
        exp.DataType,
        exp.Window,
        exp.Exists,
    }
)
#: functions allowed (sqlglot classes), by the name the model used
_FUNCTIONS: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Lower,
        exp.Upper,
        exp.Length,
        exp.Trim,
        exp.Concat,
        exp.Abs,
        exp.Round,
        exp.Floor,
        exp.Ceil,
        exp.Coalesce,
        exp.Nullif,
        exp.Greatest,
        exp.Least,
        exp.Rand,
        exp.Count,
        exp.Sum,
        exp.Avg,
        exp.Min,
        exp.Max,
        exp.RowNumber,
        exp.Rank,
        exp.DenseRank,
    }
)
_TYPES = frozenset(
    {
        exp.DataType.Type.INT,
        exp.DataType.Type.BIGINT,
        exp.DataType.Type.SMALLINT,
        exp.DataType.Type.FLOAT,
        exp.DataType.Type.DOUBLE,
        exp.DataType.Type.DECIMAL,
        exp.DataType.Type.TEXT,
        exp.DataType.Type.VARCHAR,
        exp.DataType.Type.BOOLEAN,
    }
)
#: why a kind of node is refused, for the reasons worth naming precisely
_WHY: dict[type[exp.Expr], str] = {
    exp.Insert: "INSERT writes",
    exp.Update: "UPDATE writes",
    exp.Delete: "DELETE writes",
    exp.Merge: "MERGE writes",
    exp.Create: "CREATE changes the schema",
    exp.Drop: "DROP changes the schema",
    exp.Alter: "ALTER changes the schema",
    exp.Command: "only SELECT statements are allowed",
    exp.Copy: "COPY reads or writes files",
    exp.Set: "a SET statement changes settings",
    exp.Lock: "FOR UPDATE / FOR SHARE locks rows",
    exp.Into: "SELECT INTO creates a table",
    exp.Lateral: "LATERAL is not allowed",
    exp.Unnest: "UNNEST is not allowed",
    exp.RawString: "dollar-quoted strings are not allowed",
    exp.Values: "VALUES lists are not allowed",
    exp.RegexpLike: "regular expressions are not allowed (use ILIKE)",
    exp.RegexpILike: "regular expressions are not allowed (use ILIKE)",
    exp.ObjectIdentifier: "casts to object identifier types (regclass, regproc, oid) are not allowed",
    exp.Dot: "qualified function names (such as pg_catalog.f()) are not allowed",
    exp.Any: "ANY / ALL is not allowed (use IN (...))",
    exp.All: "ANY / ALL is not allowed (use IN (...))",
    exp.TableSample: "TABLESAMPLE is not allowed",
    exp.Fetch: "FETCH FIRST is not allowed (use LIMIT)",
}
#: statements other than SELECT, named when an answer starts with one
_OTHER_STATEMENTS = frozenset(
    (
        "insert update delete merge upsert replace create drop alter truncate grant revoke copy do "
        "call set reset show explain analyze vacuum begin commit rollback start savepoint release "
        "lock listen notify unlisten prepare execute deallocate declare fetch move close discard "
        "load cluster reindex refresh security comment import checkpoint abort end values table"
    ).split()
)
_FENCE = re.compile(r"```[A-Za-z]*[ \t]*\n?(.*?)```", re.DOTALL)
_THINK = re.compile(r"<(think|thinking|reasoning)>.*?(</\1>|\Z)", re.DOTALL | re.IGNORECASE)
_START = re.compile(r"\b(SELECT|WITH)\b", re.IGNORECASE)
_SYSTEM_NAME = re.compile(
    r"^(pg_|lo_|dblink|current_setting|set_config|query_to_xml|xpath|txid_)", re.IGNORECASE
)


def extract_sql(answer: str) -> str:
    """The SQL in an LLM answer: reasoning and markdown fences peeled off, text before the first
    SELECT / WITH dropped, HTML entities decoded, trailing semicolons removed."""
    text = _THINK.sub("", answer)
    fenced = _FENCE.findall(text)
    if len(fenced) > 1:
        raise Refused("several SQL blocks in the answer: give exactly one query")
    if fenced:
        text = fenced[0]
    text = html.unescape(text)
    first = re.match(r"\s*\(?\s*([A-Za-z]+)", text)
    if first and first.group(1).lower() in _OTHER_STATEMENTS:
        raise Refused(f"{first.group(1).upper()} statements are not allowed: only SELECT")
    start = _START.search(text)
    if start is None:
        raise Refused("no SELECT statement in the answer")
    text = text[start.start() :].strip()
    text = re.sub(r"(?<=[A-Za-z])'(?=[A-Za-z])(?!')", "''", text)  # Don't -> Don''t (upstream's repair)
    return text.rstrip().rstrip(";").rstrip()


def _lex(sql: str) -> None:
    """Refuse what sqlglot and PostgreSQL could read differently, before parsing."""
    if len(sql) > MAX_LENGTH:
        raise Refused(f"the query is longer than {MAX_LENGTH} characters")
    if "\\" in sql:
        raise Refused("backslashes are not allowed (escape a quote by doubling it: '')")
    if "\x00" in sql:
        raise Refused("NUL characters are not allowed")
    quote: str | None = None
    i = 0
    while i < len(sql):
        ch = sql[i]
        if quote is not None:
            if ch == quote:
                if sql[i + 1 : i + 2] == quote:
                    i += 2
                    continue
                quote = None
            elif quote == '"' and not (ch.isascii() and (ch.isalnum() or ch in "_ ")):
                raise Refused(f"quoted identifiers may only hold letters, digits and _ (found {ch!r})")
        elif ch in "'\"":
            quote = ch
        elif not ch.isascii():
            raise Refused(f"non-ASCII character U+{ord(ch):04X} outside a string literal")
        elif ch == ";":
            raise Refused("only one statement is allowed (found ';')")
        elif ch == "$":
            raise Refused("'$' is not allowed (no dollar quoting, no parameters)")
        elif sql.startswith("--", i) or sql.startswith("/*", i):
            raise Refused("comments are not allowed")
        i += 1
    if quote is not None:
        raise Refused("a string literal or quoted identifier is not closed")


def _parse(sql: str) -> exp.Expr:
    try:
        trees = [t for t in sqlglot.parse(sql, read="postgres") if t is not None]
    except (ParseError, TokenError) as exc:
        raise Refused(f"not valid SQL: {str(exc).splitlines()[0][:300]}") from exc
    if len(trees) != 1:
        raise Refused("exactly one statement is allowed")
    tree = trees[0]
    if not isinstance(tree, exp.Select | exp.Union | exp.Intersect | exp.Except):
        raise Refused(_WHY.get(type(tree), f"only SELECT statements are allowed, not {tree.key.upper()}"))
    return tree


def _check_node(node: exp.Expr) -> None:
    kind = type(node)
    if kind in _NODES:
        if isinstance(node, exp.DataType) and node.this not in _TYPES:
            raise Refused(f"casts to {node.sql('postgres')} are not allowed (use int, real, numeric, text)")
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            raise Refused(f"only {VIEW} may be read (not a function in FROM: {node.sql('postgres')[:60]})")
        if isinstance(node, exp.Join) and node.args.get("kind") and node.args["kind"].upper() == "NATURAL":
            raise Refused("NATURAL joins are not allowed")
        return
    if kind in _FUNCTIONS:
        return
    if kind in _WHY:
        raise Refused(_WHY[kind])
    if isinstance(node, exp.Func):
        name = node.name if isinstance(node, exp.Anonymous) else node.sql_name()
        if _SYSTEM_NAME.match(name or ""):
            raise Refused(f"system function {name} is not allowed")
        raise Refused(f"function {(name or kind.__name__).lower()} is not allowed")
    raise Refused(f"{kind.__name__} expressions are not allowed")


def _check_tables(tree: exp.Expr) -> int:
    """Every table reference is the view or a CTE defined before it; returns the view reads."""
    with_ = tree.args.get("with_")
    defined: list[str] = []
    reads = 0
    if isinstance(with_, exp.With):
        if with_.args.get("recursive"):
            raise Refused("WITH RECURSIVE is not allowed")
        for cte in with_.expressions:
            reads += _tables_in(cte.this, set(defined))
            defined.append(cte.alias_or_name.lower())
    for node in tree.iter_expressions():
        if node is not with_:
            reads += _tables_in(node, set(defined))
    return reads


def _tables_in(node: exp.Expr, ctes: set[str]) -> int:
    reads = 0
    for sub in node.walk():
        if sub is not node and isinstance(sub, exp.With):
            raise Refused("WITH is only allowed at the start of the query")
        if not isinstance(sub, exp.Table):
            continue
        name, schema, catalog = sub.name.lower(), sub.db.lower(), sub.catalog.lower()
        if not schema and not catalog and name in ctes:
            continue
        if name == VIEW and schema in ("", SCHEMA) and not catalog:
            sub.set("db", exp.to_identifier(SCHEMA))
            reads += 1
            continue
        shown = ".".join(p for p in (catalog, schema, name) if p)
        if schema in ("pg_catalog", "information_schema") or name.startswith("pg_"):
            raise Refused(f"system catalogs are not allowed ({shown}); read only {VIEW}")
        raise Refused(f"only {VIEW} may be read, not {shown}")
    return reads


def _outputs(tree: exp.Expr) -> list[str]:
    while isinstance(tree, exp.Union | exp.Intersect | exp.Except):
        tree = tree.this
    if isinstance(tree, exp.Subquery):
        return _outputs(tree.this)
    assert isinstance(tree, exp.Select)
    return [e.alias_or_name.lower() if not isinstance(e, exp.Star) else "*" for e in tree.expressions]


def _limit(tree: exp.Expr, max_rows: int) -> int:
    for node in tree.walk():
        if isinstance(node, exp.Limit | exp.Offset):
            value = node.expression
            if not (isinstance(value, exp.Literal) and value.is_int):
                raise Refused(f"{node.key.upper()} must be a whole number")
            if isinstance(node, exp.Offset) and int(value.this) > MAX_OFFSET:
                raise Refused(f"OFFSET may be at most {MAX_OFFSET}")
    current = tree.args.get("limit")
    wanted = max_rows
    if isinstance(current, exp.Limit):
        wanted = max(1, min(max_rows, int(current.expression.this)))
    tree.set("limit", exp.Limit(expression=exp.Literal.number(wanted)))
    return wanted


def validate(answer: str, max_rows: int) -> Validated:
    """The query in ``answer``, proven to be one read of the chat view, with ``LIMIT`` at most
    ``max_rows``; raises :class:`Refused` otherwise."""
    if not isinstance(answer, str) or not answer.strip():
        raise Refused("the answer is empty")
    sql = extract_sql(answer)
    _lex(sql)
    tree = _parse(sql)
    for node in tree.walk():
        _check_node(node)
    reads = _check_tables(tree)
    if reads == 0:
        raise Refused(f"the query must read {VIEW}")
    if reads > MAX_VIEW_READS:
        raise Refused(f"at most {MAX_VIEW_READS} reads of {VIEW} (a cross join would run long)")
    outputs = _outputs(tree)
    if "item_id" not in outputs and "*" not in outputs:
        raise Refused("the outermost SELECT must return item_id")
    limit = _limit(tree, max_rows)
    return Validated(sql=tree.sql(dialect="postgres", comments=False), limit=limit)
