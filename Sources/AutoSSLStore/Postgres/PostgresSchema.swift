import Foundation
import Logging
import PostgresNIO

/// The CA's tables on PostgreSQL: the same tables and columns as the SQLite schema (times as
/// seconds since 1970 in double precision, certificates as bytea), in versioned migrations. Each
/// migration runs once, in a transaction that holds an advisory lock, so replicas that start
/// together apply it exactly once and the others wait for it.
enum PostgresSchema {
    /// A fixed key for `pg_advisory_xact_lock` ("autossl" in ASCII).
    static let lockKey: Int64 = 0x6175_746F_7373_6C

    static let migrations: [(version: String, statements: [String])] = [
        ("v1", [
            """
            CREATE TABLE certificates (
                serial TEXT PRIMARY KEY NOT NULL,
                status TEXT NOT NULL,
                common_name TEXT NOT NULL,
                names TEXT NOT NULL,
                not_before DOUBLE PRECISION NOT NULL,
                not_after DOUBLE PRECISION NOT NULL,
                key_type TEXT NOT NULL,
                provisioner TEXT NOT NULL,
                requester TEXT,
                renewed_from TEXT,
                der BYTEA,
                created_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX certificates_not_after ON certificates(not_after)",
            """
            CREATE TABLE revocations (
                id BIGSERIAL UNIQUE,
                serial TEXT PRIMARY KEY NOT NULL REFERENCES certificates(serial),
                reason_code INTEGER NOT NULL,
                reason TEXT NOT NULL,
                revoked_at DOUBLE PRECISION NOT NULL,
                revoked_by TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE used_tokens (
                expires_at DOUBLE PRECISION NOT NULL,
                id TEXT NOT NULL,
                PRIMARY KEY (expires_at, id)
            )
            """,
            "CREATE TABLE crl_state (id INTEGER PRIMARY KEY CHECK (id = 1), number BIGINT NOT NULL)",
            "INSERT INTO crl_state (id, number) VALUES (1, 0)",
            "CREATE TABLE revoked_keys (key_hash TEXT PRIMARY KEY NOT NULL, serial TEXT NOT NULL)",
            "CREATE TABLE acme_keys (name TEXT PRIMARY KEY NOT NULL, value BYTEA NOT NULL)",
            """
            CREATE TABLE acme_accounts (
                id TEXT PRIMARY KEY NOT NULL,
                provisioner TEXT NOT NULL,
                thumbprint TEXT NOT NULL,
                jwk TEXT NOT NULL,
                status TEXT NOT NULL,
                contact TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                eab_kid TEXT,
                UNIQUE (provisioner, thumbprint)
            )
            """,
            """
            CREATE TABLE acme_orders (
                id TEXT PRIMARY KEY NOT NULL,
                account_id TEXT NOT NULL REFERENCES acme_accounts(id),
                provisioner TEXT NOT NULL,
                status TEXT NOT NULL,
                identifiers TEXT NOT NULL,
                not_before DOUBLE PRECISION,
                not_after DOUBLE PRECISION,
                expires DOUBLE PRECISION NOT NULL,
                error TEXT,
                certificate_serial TEXT,
                created_at DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX acme_orders_account ON acme_orders(account_id)",
            "CREATE INDEX acme_orders_serial ON acme_orders(certificate_serial)",
            "CREATE INDEX acme_orders_expires ON acme_orders(expires)",
            """
            CREATE TABLE acme_authorizations (
                id TEXT PRIMARY KEY NOT NULL,
                account_id TEXT NOT NULL,
                order_id TEXT NOT NULL REFERENCES acme_orders(id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                identifier_type TEXT NOT NULL,
                identifier_value TEXT NOT NULL,
                wildcard BOOLEAN NOT NULL,
                status TEXT NOT NULL,
                expires DOUBLE PRECISION NOT NULL
            )
            """,
            "CREATE INDEX acme_authorizations_order ON acme_authorizations(order_id)",
            """
            CREATE TABLE acme_challenges (
                id TEXT PRIMARY KEY NOT NULL,
                authorization_id TEXT NOT NULL REFERENCES acme_authorizations(id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                type TEXT NOT NULL,
                token TEXT NOT NULL,
                status TEXT NOT NULL,
                validated_at DOUBLE PRECISION,
                error TEXT,
                attempts INTEGER NOT NULL DEFAULT 0
            )
            """,
            "CREATE INDEX acme_challenges_authorization ON acme_challenges(authorization_id)",
            """
            CREATE TABLE acme_eab_keys (
                kid TEXT PRIMARY KEY NOT NULL,
                provisioner TEXT NOT NULL,
                hmac_key BYTEA NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                bound_account TEXT,
                bound_at DOUBLE PRECISION
            )
            """,
        ]),
        // What replicas share besides the records: the CA the database is bound to, heartbeats,
        // and the provisioners and policy as one document with a revision.
        ("v2", [
            """
            CREATE TABLE ca_identity (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                root_fingerprint TEXT NOT NULL,
                ca_name TEXT NOT NULL,
                bound_at DOUBLE PRECISION NOT NULL,
                retired_at DOUBLE PRECISION
            )
            """,
            """
            CREATE TABLE replicas (
                name TEXT PRIMARY KEY NOT NULL,
                addresses TEXT NOT NULL,
                version TEXT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                last_seen DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE shared_settings (
                id INTEGER PRIMARY KEY CHECK (id = 1),
                revision BIGINT NOT NULL,
                document TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL
            )
            """,
            """
            CREATE TABLE current_crls (
                issuer_serial TEXT PRIMARY KEY NOT NULL,
                number BIGINT NOT NULL,
                this_update DOUBLE PRECISION NOT NULL,
                der BYTEA NOT NULL
            )
            """,
            """
            CREATE TABLE admin_events (
                id BIGSERIAL PRIMARY KEY,
                at DOUBLE PRECISION NOT NULL,
                host TEXT NOT NULL,
                event TEXT NOT NULL,
                detail TEXT NOT NULL
            )
            """,
        ]),
        // A new order counts the account's open orders: the index leads it to the unexpired ones.
        ("v3", [
            "CREATE INDEX acme_orders_account_expires ON acme_orders(account_id, expires)",
        ]),
    ]

    /// Applies what is missing, in one transaction under the advisory lock: replicas that start
    /// together wait for each other, and a migration is never applied twice or half.
    static func migrate(_ client: PostgresClient, logger: Logger) async throws {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(lockKey))", logger: logger)
            try await connection.query(
                "CREATE TABLE IF NOT EXISTS auto_ssl_migrations (version TEXT PRIMARY KEY NOT NULL, applied_at DOUBLE PRECISION NOT NULL)",
                logger: logger)
            for migration in migrations {
                let applied = try await connection.query(
                    "SELECT 1 FROM auto_ssl_migrations WHERE version = \(migration.version)", logger: logger).collect()
                guard applied.isEmpty else { continue }
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                let now = Date().timeIntervalSince1970
                try await connection.query(
                    "INSERT INTO auto_ssl_migrations (version, applied_at) VALUES (\(migration.version), \(now))", logger: logger)
            }
        }
    }
}
