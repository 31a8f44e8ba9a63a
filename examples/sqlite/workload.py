"""Frozen workload: a seeded shop database, the queries run against it, and the reader of
``indexes.sql``.

The harness, not ``indexes.sql``, creates and fills the tables, and it lets the tuning file
run nothing but CREATE INDEX and PRAGMA statements, so tuning can change how fast the
queries run but never what data they see.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,
                        country TEXT NOT NULL, joined INTEGER NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL,
                       price_cents INTEGER NOT NULL);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, day INTEGER NOT NULL,
                     status TEXT NOT NULL, total_cents INTEGER NOT NULL);
CREATE TABLE items (id INTEGER PRIMARY KEY, order_id INTEGER NOT NULL, product_id INTEGER NOT NULL,
                    quantity INTEGER NOT NULL, price_cents INTEGER NOT NULL);
"""

CUSTOMERS, PRODUCTS, ORDERS, DAYS = 15_000, 1_000, 40_000, 730
COUNTRIES = ["DE", "FR", "GB", "IT", "NL", "PL", "SE", "US"]
CATEGORIES = ["books", "garden", "kitchen", "music", "office", "outdoor", "tools", "toys"]
STATUSES = ["delivered"] * 18 + ["cancelled", "returned"]  # 90 % of orders are delivered
SYLLABLES = ["an", "bel", "cor", "da", "el", "fin", "gar", "ho", "is", "ka", "lu", "mar", "no", "pe", "ri", "sa", "to", "vi"]


def _name(rng: random.Random) -> str:
    first = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()
    last = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
    return f"{first} {last.capitalize() if rng.random() < 0.7 else last}"


@functools.cache
def rows(seed: int = 7) -> dict[str, list[tuple]]:
    """Every table's rows; amounts are integer cents, so sums are exact whatever order an
    index makes SQLite visit the rows in."""
    rng = random.Random(seed)
    customers = []
    for cid in range(1, CUSTOMERS + 1):
        name = _name(rng)
        customers.append((cid, name, f"{name.lower().replace(' ', '.')}.{cid}@example.com", rng.choice(COUNTRIES), rng.randrange(DAYS)))
    products = [(pid, _name(rng), rng.choice(CATEGORIES), rng.randint(100, 20_000)) for pid in range(1, PRODUCTS + 1)]
    orders, items = [], []
    for oid in range(1, ORDERS + 1):
        total = 0
        for _ in range(rng.randint(1, 4)):
            pid = rng.randint(1, PRODUCTS)
            qty = rng.randint(1, 5)
            items.append((len(items) + 1, oid, pid, qty, products[pid - 1][3]))
            total += qty * products[pid - 1][3]
        orders.append((oid, rng.randint(1, CUSTOMERS), rng.randrange(DAYS), rng.choice(STATUSES), total))
    return {"customers": customers, "products": products, "orders": orders, "items": items}


def build(path: Path) -> None:
    """Create and fill the database at ``path``."""
    conn = sqlite3.connect(path)
    with conn:
        conn.executescript(SCHEMA)
        for table, values in rows().items():
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(values[0]))})", values)
    conn.close()


@functools.cache
def params() -> dict[str, list[tuple]]:
    """Each query's parameter sets, one execution per set (seeded, like the data)."""
    rng = random.Random(11)
    days = [rng.randrange(DAYS - 30) for _ in range(8)]
    return {
        "orders_of_customer": [(rng.randint(1, CUSTOMERS),) for _ in range(8)],
        "items_of_order": [(rng.randint(1, ORDERS),) for _ in range(3)],
        "customer_by_email": [(rows()["customers"][rng.randrange(CUSTOMERS)][2],) for _ in range(12)],
        "revenue_of_week": [(d, d + 6) for d in days[:6]],
        "sales_of_product": [(rng.randint(1, PRODUCTS),) for _ in range(2)],
        "countries_of_month": [(d, d + 29) for d in days[6:]],
        "big_orders": [("delivered", 90_000), ("returned", 60_000)],
        "names_like": [(p,) for p in ("kama%", "ri%", "Lu%", "an%", "Sa%", "hoel%", "VI%", "pe%")],
    }


QUERIES = {
    "orders_of_customer": "SELECT id, day, status, total_cents FROM orders WHERE customer_id = ? ORDER BY day DESC, id LIMIT 20",
    "items_of_order": "SELECT product_id, quantity, price_cents FROM items WHERE order_id = ? ORDER BY id",
    "customer_by_email": "SELECT id, name, country FROM customers WHERE email = ?",
    "revenue_of_week": "SELECT count(*), sum(total_cents) FROM orders WHERE day BETWEEN ? AND ?",
    "sales_of_product": "SELECT o.day, i.quantity FROM items i JOIN orders o ON o.id = i.order_id "
    "WHERE i.product_id = ? ORDER BY o.day, i.id",
    "countries_of_month": "SELECT c.country, count(*), sum(o.total_cents) FROM orders o JOIN customers c ON c.id = o.customer_id "
    "WHERE o.day BETWEEN ? AND ? GROUP BY c.country ORDER BY c.country",
    "big_orders": "SELECT id, customer_id, total_cents FROM orders WHERE status = ? AND total_cents > ? "
    "ORDER BY total_cents DESC, id LIMIT 50",
    "names_like": "SELECT id, name FROM customers WHERE name LIKE ? ORDER BY name, id LIMIT 20",
}


def run_pass(conn: sqlite3.Connection) -> dict[str, list[list[tuple]]]:
    """One pass of the workload: every query once per parameter set, every row fetched."""
    return {name: [conn.execute(sql, p).fetchall() for p in params()[name]] for name, sql in QUERIES.items()}


def digests(results: dict[str, list[list[tuple]]]) -> dict[str, str]:
    """A hash of each query's rows, in order: what any tuning must leave unchanged."""
    return {name: hashlib.sha256(repr(rows_).encode()).hexdigest()[:16] for name, rows_ in results.items()}


class TuningError(ValueError):
    """indexes.sql asks for something the harness does not allow."""


_ALLOWED = re.compile(r"(CREATE\s+(UNIQUE\s+)?INDEX|PRAGMA)\b", re.IGNORECASE)
_INDEX_NAME = re.compile(r"CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?[\"`\[]?(\w+)", re.IGNORECASE)
_SWITCH_BLOCK = re.compile(r"/\*\s*switches\b(.*?)\*/", re.IGNORECASE | re.DOTALL)
_SWITCH = re.compile(r"(\w+)\s*=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)")


def statements(text: str) -> list[str]:
    """The statements of an SQL text, comments dropped, split at semicolons outside quotes."""
    out, current, i = [], [], 0
    while i < len(text):
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            current.append(" ")
        elif text[i] in "'\"`[":
            end = text.find("]" if text[i] == "[" else text[i], i + 1)
            end = len(text) if end < 0 else end + 1
            current.append(text[i:end])
            i = end
        elif text[i] == ";":
            out.append("".join(current).strip())
            current, i = [], i + 1
        else:
            current.append(text[i])
            i += 1
    out.append("".join(current).strip())
    return [s for s in out if s]


def switches(text: str) -> dict[str, float]:
    """The ``name = number`` lines of the ``/* switches ... */`` block."""
    found = {}
    for block in _SWITCH_BLOCK.findall(text):
        for line in filter(None, (line.strip() for line in block.splitlines())):
            match = _SWITCH.fullmatch(line)
            if not match:
                raise TuningError(f"a line of the switches block is not `index_name = number`: {line}")
            found[match.group(1)] = float(match.group(2))
    return found


def plan(text: str) -> list[str]:
    """The statements of indexes.sql that will run: every CREATE INDEX and PRAGMA, except an
    index whose switch is 0 or less. Raises TuningError naming any other statement."""
    todo, named = [], set()
    switched = switches(text)
    for statement in statements(text):
        if not _ALLOWED.match(statement):
            raise TuningError(f"indexes.sql may hold only CREATE INDEX and PRAGMA statements, not: {' '.join(statement.split())}")
        name = _INDEX_NAME.match(statement)
        if name:
            named.add(name.group(1))
            if switched.get(name.group(1), 1) <= 0:
                continue
        todo.append(statement)
    unknown = sorted(set(switched) - named)
    if unknown:
        raise TuningError(f"switches name no CREATE INDEX statement of indexes.sql: {', '.join(unknown)}")
    return todo


def connect(path: Path, tuning: str | None = None) -> sqlite3.Connection:
    """A connection to the database at ``path``, with ``tuning`` (indexes.sql's text) applied."""
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in plan(tuning or ""):
        conn.execute(statement)
    return conn

