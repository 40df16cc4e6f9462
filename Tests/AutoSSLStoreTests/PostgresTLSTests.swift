import AutoSSLCore
@testable import AutoSSLStore
import Foundation
import PostgresNIO
import Testing
import TestSupport

/// TLS to PostgreSQL against a real server whose certificate the openssl CLI made (for `localhost`
/// and 127.0.0.1) and whose `pg_hba.conf` admits only TLS: `verify-full` with the right root
/// connects (and the server says the session is encrypted); the wrong root, a name the certificate
/// does not hold, a plain connection and a server without TLS are each refused with words that
/// say which, before any query runs.
@Suite(.serialized, .enabled(if: TemporaryPostgres.isAvailable, "PostgreSQL is not installed"))
struct PostgresTLSTests {
    static func openError(_ url: String, password: String) async throws -> AutoSSLError {
        do {
            let store = try await PostgresCertificateStore.open(try PostgresLocation(url: url), password: password)
            try await store.close()
        } catch let error as AutoSSLError {
            return error
        }
        throw TestFailure("\(url) opened")
    }

    @Test func verifyFullWithTheServersRootEncryptsEveryConnection() async throws {
        let server = try TemporaryPostgres.sharedTLS.get()
        let database = try server.makeDatabase("tls")
        let location = try PostgresLocation(url: server.url(database: database))
        #expect(location.tls == .verifyFull && location.rootCertificateFile == server.rootCertificateFile)
        let store = try await PostgresCertificateStore.open(location, password: server.password)
        let rows = try await store.client.query(
            "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: store.logger).collect()
        let (ssl, version) = try #require(rows.first).checkedDecode((Bool, String?).self)
        #expect(ssl && (version == "TLSv1.3" || version == "TLSv1.2"), "\(String(describing: version))")
        // The store works over it: the migrations ran, a read answers.
        #expect(try await store.certificate(serial: "01") == nil)
        #expect(try await store.nextCRLNumber() >= 1)
        try await store.close()
        // A DNS host: the name goes out as SNI and is checked against the certificate's DNS names.
        let byName = try PostgresLocation(
            url: "postgres://\(server.user)@localhost:\(server.port)/\(database)?sslrootcert=\(try #require(server.rootCertificateFile))")
        #expect(byName.tls == .verifyFull)
        try await PostgresCertificateStore.open(byName, password: server.password).close()

        // verify-ca checks the chain only: a name the certificate does not hold still connects.
        let byOtherName = try PostgresLocation(
            url: "postgres://\(server.user)@127.0.0.2:\(server.port)/\(database)?sslmode=verify-ca&sslrootcert=\(try #require(server.rootCertificateFile))")
        try await PostgresCertificateStore.open(byOtherName, password: server.password).close()
        // require encrypts without checking: a certificate from a root nobody named still connects.
        let unchecked = try PostgresLocation(url: "postgres://\(server.user)@127.0.0.2:\(server.port)/\(database)?sslmode=require")
        let store2 = try await PostgresCertificateStore.open(unchecked, password: server.password)
        let encrypted = try await store2.client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: store2.logger).collect()
        #expect(try #require(encrypted.first).checkedDecode(Bool.self) == true)
        try await store2.close()
    }

    @Test func aServerCertificateThatFailsTheChecksIsRefusedInWords() async throws {
        let server = try TemporaryPostgres.sharedTLS.get()
        let database = try server.makeDatabase("tls")
        let root = try #require(server.rootCertificateFile), other = try #require(server.otherRootCertificateFile)
        let base = "postgres://\(server.user)@127.0.0.1:\(server.port)/\(database)"

        for mode in ["verify-full", "verify-ca"] {
            let wrongRoot = try await Self.openError(base + "?sslmode=\(mode)&sslrootcert=\(other)", password: server.password)
            #expect(wrongRoot.kind == .trustFailure && wrongRoot.message.contains("not signed by a root in \(other)"), "\(mode): \(wrongRoot)")
        }

        // The system's roots do not hold the test root.
        let systemRoots = try await Self.openError(base + "?sslmode=verify-full", password: server.password)
        #expect(systemRoots.kind == .trustFailure && systemRoots.message.contains("not signed by a root the system trusts"), "\(systemRoots)")

        let wrongName = try await Self.openError(
            "postgres://\(server.user)@127.0.0.2:\(server.port)/\(database)?sslmode=verify-full&sslrootcert=\(root)", password: server.password)
        #expect(wrongName.kind == .trustFailure && wrongName.message.contains("not for 127.0.0.2"), "\(wrongName)")

        // Plain TCP: the server's own refusal (pg_hba.conf admits only TLS).
        let plain = try await Self.openError(base + "?sslmode=disable", password: server.password)
        #expect(plain.kind == .network && plain.message.contains("no encryption"), "\(plain)")

        // A roots file that is not one.
        let notRoots = NSTemporaryDirectory() + "not-roots-\(UUID().uuidString).pem"
        try "not a certificate\n".write(toFile: notRoots, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: notRoots) }
        let empty = try await Self.openError(base + "?sslmode=verify-full&sslrootcert=\(notRoots)", password: server.password)
        #expect(empty.kind == .invalidArguments && empty.message.contains("holds no PEM certificate"), "\(empty)")
        try "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".write(toFile: notRoots, atomically: true, encoding: .utf8)
        let garbled = try await Self.openError(base + "?sslmode=verify-full&sslrootcert=\(notRoots)", password: server.password)
        #expect(garbled.kind == .invalidArguments && garbled.message.contains("does not parse"), "\(garbled)")
        let missing = try await Self.openError(base + "?sslmode=verify-full&sslrootcert=/nonexistent/roots.pem", password: server.password)
        #expect(missing.kind == .invalidArguments && missing.message.contains("cannot read"), "\(missing)")
        let directory = try await Self.openError(base + "?sslmode=verify-full&sslrootcert=/etc", password: server.password)
        #expect(directory.kind == .invalidArguments && directory.message.contains("not a regular file"), "\(directory)")
    }

    @Test func aServerWithoutTLSIsRefusedWhenTheURLAsksForIt() async throws {
        let server = try TemporaryPostgres.shared.get()
        let database = try server.makeDatabase("tls")
        let tlsServer = try TemporaryPostgres.sharedTLS.get()
        let root = try #require(tlsServer.rootCertificateFile)
        let error = try await Self.openError(
            "postgres://\(server.user)@127.0.0.1:\(server.port)/\(database)?sslmode=verify-full&sslrootcert=\(root)", password: server.password)
        #expect(error.kind == .trustFailure && error.message.contains("does not offer TLS"), "\(error)")
        let required = try await Self.openError(
            "postgres://\(server.user)@127.0.0.1:\(server.port)/\(database)?sslmode=require", password: server.password)
        #expect(required.kind == .trustFailure && required.message.contains("does not offer TLS"), "\(required)")
    }
}
