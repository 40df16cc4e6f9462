import AutoSSLCore
@testable import AutoSSLStore
import Foundation
import GRDB
import Synchronization
import Testing
import TestSupport

/// Stands in for an event loop: counts the jobs the writer thread hands it.
final class RecordingExecutor: Sendable {
    let queue = DispatchQueue(label: "recording-executor")
    let jobs = Mutex(0)
    func execute(_ work: @escaping @Sendable () -> Void) {
        jobs.withLock { $0 += 1 }
        queue.async(execute: work)
    }
}

enum AffinityMarker {
    /// Only tasks of the affinity test carry an executor; every other test's writes resume directly.
    @TaskLocal static var executor: RecordingExecutor?
}

@Suite struct StoreTests {
    func record(_ serial: String, notAfter: Date = Date().addingTimeInterval(86_400), der: [UInt8]? = [0]) -> CertificateRecord {
        CertificateRecord(
            serial: serial, status: .issued, commonName: "a.internal", names: ["a.internal", "10.0.0.1"],
            notBefore: Date(), notAfter: notAfter, keyType: "P-256", provisioner: "admin", requester: "127.0.0.1",
            renewedFrom: nil, der: der, createdAt: Date())
    }

    @Test func commitsAreDurableAndFull() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        #expect(try await store.synchronousMode() == 2)  // FULL
        let journal = try await store.pool.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
        #expect(journal == "wal")
        try await store.close()
    }

    /// The database holds the EAB keys: its files are private whoever opens it first, an older
    /// database opened to others is tightened, and a symbolic link in its place is refused.
    @Test func theDatabaseFilesAreReadableByTheirOwnerOnly() async throws {
        let dir = TemporaryDirectory()
        let path = dir.file("db.sqlite")
        let store = try SQLiteCertificateStore(path: path)
        try await store.recordIssuance(record("01"), token: nil)
        #expect(fileMode(path) == 0o600 && fileMode(path + "-wal") == 0o600 && fileMode(path + "-shm") == 0o600)
        try await store.close()
        chmod(path, 0o644)
        let reopened = try SQLiteCertificateStore(path: path)
        #expect(fileMode(path) == 0o600)
        #expect(try await reopened.certificate(serial: "01") != nil)
        try await reopened.close()

        let victim = try dir.write("victim", "precious", mode: 0o644)
        let planted = dir.file("planted.sqlite")
        try FileManager.default.createSymbolicLink(atPath: planted, withDestinationPath: victim)
        #expect(throws: AutoSSLError.self) { _ = try SQLiteCertificateStore(path: planted) }
        #expect(try fileMode(victim) == 0o644 && readFile(victim) == "precious")
    }

    /// Reader connections open as they are needed (GRDB's, and the store's lookup connections),
    /// long after the store was opened: each one is checked against the file checked at open, so a link put in the database's place later is
    /// refused instead of being read (or trusted as the CA's records).
    @Test func aConnectionOpenedAfterTheDatabaseWasReplacedIsRefused() async throws {
        let dir = TemporaryDirectory()
        let path = dir.file("db.sqlite")
        let store = try SQLiteCertificateStore(path: path)
        try await store.recordIssuance(record("01"), token: nil)
        #expect(try await store.certificate(serial: "01") != nil)

        let other = try SQLiteCertificateStore(path: dir.file("other.sqlite"))
        try await other.recordIssuance(record("02"), token: nil)
        try await other.close()
        #expect(rename(path, dir.file("moved.sqlite")) == 0)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: dir.file("other.sqlite"))
        // Closes the idle connections: the next read opens a new one.
        store.pool.releaseMemory()
        store.readers.closeIdle()
        await #expect(throws: (any Error).self) { _ = try await store.certificate(serial: "02") }
        try await store.close()
    }

    /// A row the CA did not write (a crafted or hand-edited database file, a restored one): a value
    /// of another type, bytes that are not UTF-8, a number past `Int`, NULL where the schema once
    /// said NOT NULL. GRDB's row subscripts stop the process on them (and the OCSP responder, the
    /// CRL and every ACME request read such rows); every read that meets one throws instead.
    @Test func aDamagedRowIsAnErrorNotAStop() async throws {
        let dir = TemporaryDirectory()
        let pristine = dir.file("pristine.sqlite")
        do {
            let store = try SQLiteCertificateStore(path: pristine)
            try await store.recordIssuance(record("01"), token: nil)
            try await store.recordIssuance(record("02", der: [1]), token: nil)
            _ = try await store.revoke(serial: "02", RevocationRecord(reasonCode: 5, reason: "gone", revokedAt: Date(), revokedBy: "admin"))
            let acme = SQLiteACMEDatabase(store: store)
            let expires = Date().addingTimeInterval(3_600)
            let authorization = ACMEAuthorizationRecord(
                id: "a0", accountID: "acct", orderID: "o", identifier: ACMEIdentifier(type: "dns", value: "x.test"), wildcard: false,
                status: .pending, expires: expires,
                challenges: [ACMEChallengeRecord(id: "c0", authorizationID: "a0", type: "http-01", token: "t", status: .pending)])
            _ = try await acme.createAccount(ACMEAccountRecord(
                id: "acct", provisioner: "acme", thumbprint: "t", jwk: "{}", status: .valid, contact: [], createdAt: Date(), eabKeyID: nil))
            try await acme.createOrder(
                ACMEOrderRecord(
                    id: "o", accountID: "acct", provisioner: "acme", status: .pending, identifiers: [authorization.identifier],
                    notBefore: nil, notAfter: nil, expires: expires, createdAt: Date(), authorizationIDs: ["a0"]),
                authorizations: [authorization])
            try await store.close()
        }
        typealias Read = @Sendable (SQLiteCertificateStore) async throws -> Void
        let certificate: Read = { _ = try await $0.certificate(serial: "01") }
        let list: Read = { _ = try await $0.certificates(CertificateQuery(), now: Date()) }
        let revoked: Read = { _ = try await $0.revokedCertificates(notExpiredBefore: Date()) }
        let revokedRecord: Read = { _ = try await $0.certificate(serial: "02") }
        let lifetimes: Read = { _ = try await $0.lifetimes(notExpiredBefore: Date()) }
        let fleet: Read = { _ = try await $0.fleetCertificates(notExpiredBefore: Date()) }
        let account: Read = { _ = try await SQLiteACMEDatabase(store: $0).account(id: "acct") }
        let order: Read = { _ = try await SQLiteACMEDatabase(store: $0).order(id: "o") }
        let authorizations: Read = { _ = try await SQLiteACMEDatabase(store: $0).authorizations(orderID: "o") }
        let cases: [(damage: [String], reads: [Read])] = [
            (["UPDATE certificates SET not_before = 'x' WHERE serial = '01'"], [certificate, list]),
            (["UPDATE certificates SET names = X'FF' WHERE serial = '01'"], [certificate, list]),
            (["UPDATE revocations SET revoked_at = 'x'"], [revoked, revokedRecord]),
            (["UPDATE revocations SET reason_code = 1e300"], [revoked, revokedRecord]),
            (["UPDATE acme_accounts SET created_at = 'x'"], [account]),
            (["UPDATE acme_accounts SET jwk = X'FF'"], [account]),
            (["UPDATE acme_orders SET expires = 'x'"], [order]),
            (["UPDATE acme_authorizations SET wildcard = 'x'"], [authorizations]),
            // A file made with its own schema: NULL where auto-ssl's schema says NOT NULL.
            (["PRAGMA writable_schema = ON", "UPDATE sqlite_schema SET sql = replace(sql, 'NOT NULL', '') WHERE name = 'certificates'"],
             []),
        ]
        for (index, (damage, reads)) in cases.enumerated() {
            let path = dir.file("case\(index).sqlite")
            for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: pristine + suffix) {
                try FileManager.default.copyItem(atPath: pristine + suffix, toPath: path + suffix)
            }
            let queue = try DatabaseQueue(path: path)
            try await queue.writeWithoutTransaction { db in for sql in damage { try db.execute(sql: sql) } }
            try queue.close()
            if damage.contains(where: { $0.contains("writable_schema") }) {
                let reopened = try DatabaseQueue(path: path)
                try await reopened.write { db in try db.execute(sql: "UPDATE certificates SET names = NULL WHERE serial = '01'") }
                try reopened.close()
            }
            let store = try SQLiteCertificateStore(path: path)
            let all = damage.contains(where: { $0.contains("writable_schema") }) ? [certificate, list, lifetimes, fleet] : reads
            for read in all {
                await #expect(throws: (any Error).self, "\(damage)") { try await read(store) }
            }
            try await store.close()
        }
    }

    /// The steps of an ACME order in flight commit without an fsync (`synchronous=NORMAL`), accounts,
    /// the order's end and certificates with one; the writer connection is back in FULL after each
    /// relaxed batch, and what was committed relaxed is there after reopening.
    @Test func anOrderInFlightCommitsWithoutAnFsyncAndTheRestWithOne() async throws {
        let dir = TemporaryDirectory()
        var store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        var acme = SQLiteACMEDatabase(store: store)
        var counts: GroupCommitter.CommitCounts { store.committer.commitCounts }
        func expectStep(durable: Bool, _ comment: Comment, _ step: () async throws -> Void) async throws {
            let before = counts
            try await step()
            let after = counts
            #expect(after.durable - before.durable == (durable ? 1 : 0) && after.relaxed - before.relaxed == (durable ? 0 : 1), comment)
            #expect(try await store.synchronousMode() == 2, "FULL again after \(comment)")
        }
        let expires = Date().addingTimeInterval(3_600)
        let authorization = ACMEAuthorizationRecord(
            id: "a0", accountID: "acct", orderID: "o", identifier: ACMEIdentifier(type: "dns", value: "x.test"), wildcard: false, status: .pending,
            expires: expires, challenges: [ACMEChallengeRecord(id: "c0", authorizationID: "a0", type: "http-01", token: "t", status: .pending)])
        let order = ACMEOrderRecord(
            id: "o", accountID: "acct", provisioner: "acme", status: .pending, identifiers: [authorization.identifier], notBefore: nil,
            notAfter: nil, expires: expires, createdAt: Date(), authorizationIDs: ["a0"])
        try await expectStep(durable: true, "new account") {
            _ = try await acme.createAccount(ACMEAccountRecord(
                id: "acct", provisioner: "acme", thumbprint: "t", jwk: "{}", status: .valid, contact: [], createdAt: Date(), eabKeyID: nil))
        }
        try await expectStep(durable: false, "new order") { try await acme.createOrder(order, authorizations: [authorization]) }
        try await expectStep(durable: false, "validation started") {
            let started = try await acme.startValidation(challengeID: "c0")
            #expect(started)
        }
        try await expectStep(durable: false, "attempt counted") {
            let counted = try await acme.beginValidationAttempt(challengeID: "c0", maximum: 3)
            #expect(counted)
        }
        try await expectStep(durable: false, "attempt noted") { try await acme.noteValidationAttempt(challengeID: "c0", error: "{}") }
        try await expectStep(durable: false, "validation recorded") {
            let recorded = try await acme.recordValidationOutcome(ACMEValidationOutcome(
                challengeID: "c0", challengeStatus: .valid, validatedAt: Date(), error: nil, authorizationID: "a0", authorizationStatus: .valid,
                orderStatus: .ready))
            #expect(recorded)
        }
        try await expectStep(durable: true, "finalization refused") { try await acme.refuseFinalization(orderID: "o", problem: #"{"type":"x"}"#) }
        try await expectStep(durable: true, "certificate") { try await store.recordIssuance(record("01"), token: nil) }
        try await store.close()

        store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        acme = SQLiteACMEDatabase(store: store)
        let challenge = try await acme.challenge(id: "c0")
        let reopened = try await acme.order(id: "o")
        #expect(challenge?.0.status == .valid && reopened?.status == .invalid)
        try await store.close()
    }

    /// Listings and lookups at once, more of them than there are reader connections (5) or
    /// threads to run tasks on: a lookup holds its thread until a reader is free, so no reader
    /// may be held by a task that needs a thread to give it back. A deadlock stops the process
    /// (the watchdog) instead of hanging the run.
    @Test func listingsAndLookupsAtOnceNeverWaitForEachOther() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        for index in 0..<20 { try await store.recordIssuance(record("0\(index)"), token: nil) }
        let watchdog = DispatchWorkItem { fatalError("reads of the SQLite store deadlocked (listings and lookups at once)") }
        DispatchQueue.global().asyncAfter(deadline: .now() + 120, execute: watchdog)
        defer { watchdog.cancel() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<24 {
                group.addTask {
                    for round in 0..<40 {
                        if index % 2 == 0 {
                            let listed = try await store.certificates(CertificateQuery(), now: Date())
                            #expect(listed.count == 20)
                        } else {
                            let found = try await store.certificate(serial: "0\(round % 20)")
                            #expect(found != nil)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        try await store.close()
    }

    @Test func recordsTheCertificateAndKeepsNothingOfAFailure() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        try await store.recordIssuance(record("01", der: [1, 2, 3]), token: TokenUse(id: "admin:t1", expiresAt: Date().addingTimeInterval(300)))
        let stored = try #require(try await store.certificate(serial: "01"))
        #expect(stored.status == .issued && stored.der == [1, 2, 3] && stored.names == ["a.internal", "10.0.0.1"])
        // A serial already taken fails and rolls back the token consumed in the same transaction.
        let token = TokenUse(id: "admin:t2", expiresAt: Date().addingTimeInterval(300))
        await #expect(throws: StoreError.serialAlreadyExists) { try await store.recordIssuance(self.record("01", der: [9]), token: token) }
        #expect(try await store.certificate(serial: "01")?.der == [1, 2, 3])
        // A record without a certificate is refused before anything is written.
        await #expect(throws: StoreError.missingCertificate) { try await store.recordIssuance(self.record("02", der: nil), token: token) }
        #expect(try await store.certificate(serial: "02") == nil)
        try await store.recordIssuance(record("03", der: [3]), token: token)
        try await store.close()
        // Reopening finds everything again.
        let reopened = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        #expect(try await reopened.certificate(serial: "01")?.der == [1, 2, 3])
        #expect(try await reopened.certificate(serial: "03")?.der == [3])
        try await reopened.close()
    }

    @Test func aClosedStoreRefusesWritesAndTheWriterThreadComesAndGoes() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        try await store.recordIssuance(record("01"), token: nil)
        // The writer thread ends after a second without work and starts again on the next write.
        try await Task.sleep(for: .milliseconds(1_500))
        try await store.recordIssuance(record("02"), token: nil)
        #expect(try await store.certificates(CertificateQuery(), now: Date()).count == 2)
        try await store.close()
        await #expect(throws: (any Error).self) { try await store.recordIssuance(self.record("03"), token: nil) }
    }

    @Test func aTokenWorksOnceAndAFailedReservationLeavesNoRow() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        let token = TokenUse(id: "admin:same", expiresAt: Date().addingTimeInterval(300))
        try await store.recordIssuance(record("0a"), token: token)
        await #expect(throws: StoreError.tokenAlreadyUsed) { try await store.recordIssuance(record("0b"), token: token) }
        #expect(try await store.certificate(serial: "0b") == nil)
        try await store.close()
    }

    @Test func concurrentWritesShareCommitsAndFailuresStayIsolated() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        let shared = TokenUse(id: "admin:shared", expiresAt: Date().addingTimeInterval(300))
        let outcomes = await withTaskGroup(of: Bool.self) { group in
            for i in 0..<200 {
                group.addTask {
                    // Every tenth request replays the same token: exactly one of those may succeed.
                    let token = i % 10 == 0 ? shared : TokenUse(id: "admin:t\(i)", expiresAt: Date().addingTimeInterval(300))
                    do {
                        try await store.recordIssuance(self.record(String(format: "%04x", i + 1)), token: token)
                        return true
                    } catch {
                        return false
                    }
                }
            }
            return await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 }.count == 181)
        #expect(store.committer.largestBatch > 1)
        try await store.close()
    }

    @Test func usedTokensSurviveTheMovesToKeyedTables() async throws {
        let dir = TemporaryDirectory()
        let path = dir.file("db.sqlite")
        // A token's expiry comes from its signed claims, so a replay carries the same one.
        let expiry = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 + 300).rounded())
        // A database as an earlier release left it: used_tokens with a rowid.
        do {
            let pool = try DatabasePool(path: path)
            try SQLiteCertificateStore.migrator.migrate(pool, upTo: "v2-crl")
            try await pool.write { db in
                try db.execute(sql: "INSERT INTO used_tokens (id, expires_at) VALUES ('admin:old', ?)", arguments: [expiry.timeIntervalSince1970])
            }
            try pool.close()
        }
        let store = try SQLiteCertificateStore(path: path)
        let schema = try await store.pool.read { db in
            try String.fetchAll(db, sql: "SELECT sql FROM sqlite_master WHERE tbl_name = 'used_tokens' AND sql IS NOT NULL")
        }
        // One B-tree ordered by expiry: new rows land at its end, and purging reads its start.
        #expect(schema.count == 1)
        #expect(schema.first?.contains("PRIMARY KEY (expires_at, id)") == true)
        #expect(schema.first?.contains("WITHOUT ROWID") == true)
        // The token used before the upgrade is still refused; new ones work once.
        await #expect(throws: StoreError.tokenAlreadyUsed) {
            try await store.consume(TokenUse(id: "admin:old", expiresAt: expiry))
        }
        try await store.recordIssuance(record("0c"), token: TokenUse(id: "admin:new", expiresAt: expiry))
        await #expect(throws: StoreError.tokenAlreadyUsed) {
            try await store.recordIssuance(self.record("0d"), token: TokenUse(id: "admin:new", expiresAt: expiry))
        }
        #expect(try await store.certificate(serial: "0d") == nil)
        #expect(try await store.purgeTokens(expiredBefore: expiry) == 0)
        #expect(try await store.purgeTokens(expiredBefore: expiry.addingTimeInterval(1)) == 2)
        try await store.close()
    }

    @Test func theWriterThreadTakesTheRequestedPriority() async throws {
        let dir = TemporaryDirectory()
        // A higher nice value is allowed to anyone; `ca serve` asks for -10 (root or LimitNICE).
        for (name, requested) in [("niced.sqlite", Int32(7)), ("inherited.sqlite", nil)] {
            let store = try SQLiteCertificateStore(path: dir.file(name), writer: WriterOptions(nice: requested))
            let seen = Mutex<(nice: Int32, name: String)?>(nil)
            // Nice values are per thread and a new thread takes its creator's: the writer is started
            // by the thread that submits, so "inherited" is that thread's value, read with no
            // suspension point before the submission. (A pool thread that a niced writer woke into
            // existence carries that writer's value, so the process's value is not the reference.)
            let inherited = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
            try await store.committer.submit { _ in
                let threadName = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8))?
                    .trimmingCharacters(in: .newlines) ?? ""
                seen.withLock { $0 = (getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0), threadName) }
            }
            let observed = try #require(seen.withLock { $0 })
            #expect(observed.nice == (requested ?? inherited))
            #expect(observed.name == "auto-ssl-writer")
            try await store.close()
        }
    }

    @Test func waitersResumeOnTheirExecutorWithOneJobPerBatch() async throws {
        let affinity = WaiterAffinity(
            current: { AffinityMarker.executor },
            run: { home, work in (home as? RecordingExecutor)?.execute(work) })
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"), writer: WriterOptions(affinity: affinity))
        let executor = RecordingExecutor()
        let issued = await AffinityMarker.$executor.withValue(executor) {
            await withTaskGroup(of: Bool.self) { group in
                for i in 0..<64 {
                    group.addTask { (try? await store.recordIssuance(self.record(String(format: "a%03x", i)), token: nil)) != nil }
                }
                return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
            }
        }
        #expect(issued == 64)
        #expect(try await store.certificates(CertificateQuery(), now: Date()).count == 64)
        // Every waiter came back through the executor, batched: fewer jobs than waiters.
        let jobs = executor.jobs.withLock { $0 }
        #expect(jobs >= 1)
        #expect(store.committer.largestBatch > 1)
        #expect(jobs < 64)
        try await store.close()
    }

    @Test func listsByExpiryAndPurgesTokens() async throws {
        let dir = TemporaryDirectory()
        let store = try SQLiteCertificateStore(path: dir.file("db.sqlite"))
        let now = Date()
        try await store.recordIssuance(record("01", notAfter: now.addingTimeInterval(3600)), token: TokenUse(id: "old", expiresAt: now.addingTimeInterval(-10)))
        try await store.recordIssuance(record("02", notAfter: now.addingTimeInterval(86_400 * 5)), token: nil)
        try await store.recordIssuance(record("03", notAfter: now.addingTimeInterval(-60)), token: nil)
        let soon = try await store.certificates(
            CertificateQuery(expiringBefore: now.addingTimeInterval(48 * 3600), includeExpired: false), now: now)
        #expect(soon.map(\.serial) == ["01"])
        #expect(try await store.certificates(CertificateQuery(), now: now).count == 3)
        #expect(try await store.purgeTokens(expiredBefore: now) == 1)
        try await store.close()
    }
}
