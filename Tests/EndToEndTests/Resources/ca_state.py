"""What a CA under test has stored, read from its database with Python's sqlite3 (not our code):
shared by the hostile-input scripts, which must find nothing stored after their requests."""
import sqlite3

TABLES = ["certificates", "revocations", "acme_accounts", "acme_orders", "acme_authorizations", "acme_challenges"]


def stored_rows(database):
    """Row counts per table (None for a table the database does not have yet), read-only."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        counts = {}
        for table in TABLES:
            try:
                counts[table] = connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            except sqlite3.OperationalError:
                counts[table] = None
        return counts
    finally:
        connection.close()


def process_alive(pid):
    """Whether process `pid` runs (not a zombie); True when no pid was given."""
    if not pid:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] not in "ZX"
    except (OSError, IndexError):
        return False
