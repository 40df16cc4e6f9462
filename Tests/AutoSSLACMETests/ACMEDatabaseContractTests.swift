import AutoSSLStore
import Foundation
import Testing
import TestSupport

/// Opens a fresh, empty `ACMEDatabase` for one check, with whatever must stay alive while it is used.
struct ACMEDatabaseFactory: Sendable, CustomStringConvertible {
    var description: String
    var open: @Sendable () async throws -> (any ACMEDatabase, AnyObject)

    static let sqlite = ACMEDatabaseFactory(description: "SQLite") {
        let directory = TemporaryDirectory()
        let database = try CADatabase.openSQLite(path: directory.file("db.sqlite"))
        return (database.acme, directory)
    }
}

/// What every `ACMEDatabase` must do, whichever database implements it. Each implementation runs
/// every check in a suite of its own (`ACMEDatabaseContractTests` for SQLite,
/// `PostgresACMEDatabaseContractTests`), calling these functions with its factory.
enum ACMEDatabaseContract {
    static func account(_ id: String, thumbprint: String, eab: String? = nil) -> ACMEAccountRecord {
        ACMEAccountRecord(id: id, provisioner: "acme", thumbprint: thumbprint, jwk: "{}", status: .valid, contact: [], createdAt: Date(), eabKeyID: eab)
    }

    static func order(_ id: String, account: String, authorizations count: Int = 1, expires: Date = Date().addingTimeInterval(3_600))
        -> (ACMEOrderRecord, [ACMEAuthorizationRecord])
    {
        let authorizations = (0..<count).map { index in
            ACMEAuthorizationRecord(
                id: "\(id)-a\(index)", accountID: account, orderID: id, identifier: ACMEIdentifier(type: "dns", value: "x\(index).test"),
                wildcard: false, status: .pending, expires: expires,
                challenges: [
                    ACMEChallengeRecord(id: "\(id)-c\(index)", authorizationID: "\(id)-a\(index)", type: "http-01", token: "t\(index)", status: .pending),
                    ACMEChallengeRecord(id: "\(id)-d\(index)", authorizationID: "\(id)-a\(index)", type: "dns-01", token: "u\(index)", status: .pending),
                ])
        }
        let order = ACMEOrderRecord(
            id: id, accountID: account, provisioner: "acme", status: .pending, identifiers: authorizations.map(\.identifier), notBefore: nil,
            notAfter: nil, expires: expires, createdAt: Date(), authorizationIDs: authorizations.map(\.id))
        return (order, authorizations)
    }

    /// Counts how many of `count` concurrent calls returned true.
    static func winners(_ count: Int, _ work: @escaping @Sendable () async throws -> Bool) async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<count { group.addTask { try await work() } }
            return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
    }

    static func oneAccountPerKeyAndEABKeysBindOnce(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        try await store.addEABKey(kid: "k", provisioner: "acme", key: Data([1, 2, 3]), now: Date())
        #expect(try await store.unboundEABKey(kid: "k", provisioner: "acme") == Data([1, 2, 3]))
        #expect(try await store.unboundEABKey(kid: "k", provisioner: "other") == nil, "a key belongs to its provisioner")
        let (first, created) = try await store.createAccount(Self.account("a1", thumbprint: "t1", eab: "k"))
        #expect(created && first.eabKeyID == "k")
        let (same, createdAgain) = try await store.createAccount(Self.account("a2", thumbprint: "t1"))
        #expect(!createdAgain && same.id == "a1", "the same key gets the existing account")
        await #expect(throws: ACMEDatabaseError.eabKeyAlreadyUsed) { _ = try await store.createAccount(Self.account("a3", thumbprint: "t3", eab: "k")) }
        #expect(try await store.account(id: "a3") == nil, "a refused binding creates no account")
        #expect(try await store.unboundEABKey(kid: "k", provisioner: "acme") == nil)
        #expect(try await store.eabKeys(provisioner: "acme").map(\.boundAccount) == ["a1"])
        _ = try await store.createAccount(Self.account("a4", thumbprint: "t4"))
        await #expect(throws: ACMEDatabaseError.accountKeyInUse(existingID: "a1")) {
            _ = try await store.changeAccountKey(id: "a4", oldThumbprint: "t4", thumbprint: "t1", jwk: "{}")
        }
        await #expect(throws: ACMEDatabaseError.notFound) {
            _ = try await store.changeAccountKey(id: "nobody", oldThumbprint: "t8", thumbprint: "t9", jwk: "{}")
        }
        #expect(try await store.changeAccountKey(id: "a4", oldThumbprint: "t4", thumbprint: "t5", jwk: #"{"new":1}"#))
        #expect(try await store.account(provisioner: "acme", thumbprint: "t5")?.id == "a4")
        #expect(try await store.account(provisioner: "acme", thumbprint: "t4") == nil)
        #expect(try await store.updateAccountContact(id: "a4", contact: ["mailto:x@y.z"])?.contact == ["mailto:x@y.z"])
    }

    /// Key rollover is a compare-and-swap from the key the request was signed with: a second
    /// rollover from the same old key changes nothing, of concurrent ones exactly one applies, and a
    /// deactivated account keeps its key.
    static func aKeyRolloverAppliesOnlyFromTheCurrentKey(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a", thumbprint: "old"))
        #expect(try await store.changeAccountKey(id: "a", oldThumbprint: "old", thumbprint: "first", jwk: #"{"k":"first"}"#))
        #expect(!(try await store.changeAccountKey(id: "a", oldThumbprint: "old", thumbprint: "second", jwk: #"{"k":"second"}"#)))
        let account = try #require(try await store.account(id: "a"))
        #expect(account.thumbprint == "first" && account.jwk == #"{"k":"first"}"#)
        #expect(try await store.account(provisioner: "acme", thumbprint: "second") == nil)
        let applied = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<10 {
                group.addTask { try await store.changeAccountKey(id: "a", oldThumbprint: "first", thumbprint: "racer\(index)", jwk: "{}") }
            }
            return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(applied == 1, "of concurrent rollovers from one key, exactly one applies")
        _ = try await store.createAccount(Self.account("b", thumbprint: "b-key"))
        #expect(try await store.deactivateAccount(id: "b")?.status == .deactivated)
        #expect(!(try await store.changeAccountKey(id: "b", oldThumbprint: "b-key", thumbprint: "b-new", jwk: "{}")))
        #expect(try await store.account(id: "b")?.thumbprint == "b-key", "a deactivated account keeps its key")
    }

    static func onlyUnboundEABKeysAreRemoved(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        try await store.addEABKey(kid: "unused", provisioner: "acme", key: Data([1]), now: Date())
        try await store.addEABKey(kid: "used", provisioner: "acme", key: Data([2]), now: Date())
        _ = try await store.createAccount(Self.account("a1", thumbprint: "t1", eab: "used"))
        #expect(try await store.removeEABKey(kid: "used") == .bound(provisioner: "acme", account: "a1"))
        #expect(try await store.eabKeys(provisioner: "acme").map(\.kid).sorted() == ["unused", "used"], "a bound key stays")
        #expect(try await store.account(id: "a1")?.status == .valid)
        #expect(try await store.removeEABKey(kid: "unused") == .removed(provisioner: "acme"))
        #expect(try await store.unboundEABKey(kid: "unused", provisioner: "acme") == nil, "a removed key binds nothing")
        #expect(try await store.removeEABKey(kid: "unused") == .notFound)
        #expect(try await store.removeEABKey(kid: "never") == .notFound)
        #expect(try await store.eabKeys(provisioner: "acme").map(\.kid) == ["used"])
    }

    static func deactivatingAnAccountDeactivatesItsAuthorizations(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a", thumbprint: "t"))
        let (record, authorizations) = Self.order("o", account: "a")
        try await store.createOrder(record, authorizations: authorizations)
        #expect(try await store.deactivateAccount(id: "a")?.status == .deactivated)
        #expect(try await store.authorization(id: "o-a0")?.status == .deactivated)
        #expect(try await store.updateAccountContact(id: "a", contact: ["mailto:x@y.z"])?.contact == [], "a deactivated account stays as it is")
        #expect(try await store.deactivateAccount(id: "nobody") == nil)
    }

    static func readsNeverWrite(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a", thumbprint: "t"))
        let (record, authorizations) = Self.order("o", account: "a", expires: Date().addingTimeInterval(-60))
        try await store.createOrder(record, authorizations: authorizations)
        // Long expired, but stored as pending: reading it shows it as stored.
        #expect(try await store.order(id: "o")?.status == .pending)
        #expect(try await store.authorization(id: "o-a0")?.status == .pending)
        #expect(try await store.authorizations(orderID: "o").map(\.status) == [.pending])
        #expect(try await store.order(id: "o")?.status == .pending)
        let stored = try #require(try await store.order(id: "o"))
        #expect(stored.authorizationIDs == ["o-a0"] && stored.identifiers == record.identifiers)
        #expect(try await store.challenge(id: "o-c0")?.0.status == .pending)
        #expect(try await store.orderIDs(accountID: "a") == ["o"])
    }

    static func validationAndFinalizationHappenOnceUnderConcurrency(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a", thumbprint: "t"))
        let (record, authorizations) = Self.order("o", account: "a", authorizations: 2)
        try await store.createOrder(record, authorizations: authorizations)
        #expect(try await Self.winners(20) { try await store.startValidation(challengeID: "o-c0") } == 1, "a challenge starts validating exactly once")
        #expect(try await store.challengesInProcessing() == ["o-c0"])
        // Attempts are counted durably, up to the maximum; starting the validation counted the first.
        #expect(try await Self.winners(5) { try await store.beginValidationAttempt(challengeID: "o-c0", maximum: 3) } == 2)
        try await store.noteValidationAttempt(challengeID: "o-c0", error: #"{"type":"x"}"#)
        #expect(try await store.challenge(id: "o-c0")?.0.error == #"{"type":"x"}"#)
        let outcome = ACMEValidationOutcome(
            challengeID: "o-c0", challengeStatus: .valid, validatedAt: Date(), error: nil, authorizationID: "o-a0", authorizationStatus: .valid,
            orderStatus: nil)
        #expect(try await Self.winners(10) { try await store.recordValidationOutcome(outcome) } == 1, "an outcome is written once")
        #expect(try await store.authorization(id: "o-a0")?.status == .valid)
        #expect(try await store.order(id: "o")?.status == .pending, "the order is left alone when the outcome says so")
        #expect(!(try await store.startValidation(challengeID: "o-d0")), "no validation starts once the authorization is no longer pending")

        #expect(try await store.startValidation(challengeID: "o-c1"))
        #expect(try await store.recordValidationOutcome(ACMEValidationOutcome(
            challengeID: "o-c1", challengeStatus: .valid, validatedAt: Date(), error: nil, authorizationID: "o-a1", authorizationStatus: .valid,
            orderStatus: .ready)))
        #expect(try await store.order(id: "o")?.status == .ready)
        #expect(
            try await Self.winners(20) { try await store.setOrderStatus(id: "o", from: .ready, to: .processing, error: nil) } == 1,
            "a transition happens exactly once")
        // Processing: a finalization of an earlier version, which a crash interrupted.
        #expect(try await store.ordersInProcessing() == ["o"])
        #expect(try await store.resetInterruptedFinalizations() == 1)
        #expect(try await store.ordersInProcessing().isEmpty)
        #expect(try await store.order(id: "o")?.status == .ready)
        // A finalization refused for good makes the ready order invalid with the problem.
        try await store.refuseFinalization(orderID: "o", problem: #"{"type":"urn:ietf:params:acme:error:badCSR"}"#)
        let invalid = try #require(try await store.order(id: "o"))
        #expect(invalid.status == .invalid && invalid.error?.contains("badCSR") == true)
        #expect(!(try await store.setOrderStatus(id: "o", from: .ready, to: .processing, error: nil)))
    }

    /// An outcome asking for `ready` marks the order only once every authorization is valid, decided
    /// in its own transaction: of two validations finishing together, the second to write marks it.
    static func theLastValidationOfAnOrderMarksItReadyEvenWhenTheyFinishTogether(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a", thumbprint: "t"))
        func valid(_ order: String, _ index: Int) -> ACMEValidationOutcome {
            ACMEValidationOutcome(
                challengeID: "\(order)-c\(index)", challengeStatus: .valid, validatedAt: Date(), error: nil, authorizationID: "\(order)-a\(index)",
                authorizationStatus: .valid, orderStatus: .ready)
        }
        let (first, firstAuthorizations) = Self.order("one", account: "a", authorizations: 2)
        try await store.createOrder(first, authorizations: firstAuthorizations)
        for index in 0..<2 { #expect(try await store.startValidation(challengeID: "one-c\(index)")) }
        #expect(try await store.recordValidationOutcome(valid("one", 0)))
        #expect(try await store.order(id: "one")?.status == .pending, "one authorization is still pending")
        #expect(try await store.recordValidationOutcome(valid("one", 1)))
        #expect(try await store.order(id: "one")?.status == .ready)

        let orders = (0..<12).map { "o\($0)" }
        for id in orders {
            let (record, authorizations) = Self.order(id, account: "a", authorizations: 3)
            try await store.createOrder(record, authorizations: authorizations)
            for index in 0..<3 { #expect(try await store.startValidation(challengeID: "\(id)-c\(index)")) }
        }
        let outcomes = orders.flatMap { id in (0..<3).map { valid(id, $0) } }
        let written = try await withThrowingTaskGroup(of: Bool.self) { group in
            for outcome in outcomes { group.addTask { try await store.recordValidationOutcome(outcome) } }
            return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(written == outcomes.count)
        for id in orders { #expect(try await store.order(id: id)?.status == .ready, "\(id)") }
    }

    /// An account holds at most `openOrderLimit` open orders: one more creates nothing; an order
    /// that ends (here: invalid) or expires makes room again; other accounts are not counted.
    static func anAccountsOpenOrdersAreLimited(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a", thumbprint: "t"))
        _ = try await store.createAccount(Self.account("b", thumbprint: "u"))
        for id in ["o1", "o2"] {
            let (record, authorizations) = Self.order(id, account: "a")
            try await store.createOrder(record, authorizations: authorizations, openOrderLimit: 2)
        }
        let (third, thirdAuthorizations) = Self.order("o3", account: "a")
        await #expect(throws: ACMEDatabaseError.tooManyOpenOrders(limit: 2)) {
            try await store.createOrder(third, authorizations: thirdAuthorizations, openOrderLimit: 2)
        }
        #expect(try await store.order(id: "o3") == nil)
        #expect(try await store.authorization(id: "o3-a0") == nil)
        let (other, otherAuthorizations) = Self.order("b1", account: "b")
        try await store.createOrder(other, authorizations: otherAuthorizations, openOrderLimit: 2)
        #expect(try await store.setOrderStatus(id: "o1", from: .pending, to: .invalid, error: nil))
        try await store.createOrder(third, authorizations: thirdAuthorizations, openOrderLimit: 2)
        // An expired order is not open: it does not count.
        let (stale, staleAuthorizations) = Self.order("o4", account: "a", expires: Date().addingTimeInterval(-1))
        try await store.createOrder(stale, authorizations: staleAuthorizations)
        let (fifth, fifthAuthorizations) = Self.order("o5", account: "a")
        await #expect(throws: ACMEDatabaseError.tooManyOpenOrders(limit: 2)) {
            try await store.createOrder(fifth, authorizations: fifthAuthorizations, openOrderLimit: 2)
        }
        #expect(try await store.setOrderStatus(id: "o2", from: .pending, to: .invalid, error: nil))
        try await store.createOrder(fifth, authorizations: fifthAuthorizations, openOrderLimit: 2)
    }

    static func aFailedChallengeInvalidatesTheOrderAndExpiredOrdersArePurged(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a", thumbprint: "t"))
        let (record, authorizations) = Self.order("o", account: "a")
        try await store.createOrder(record, authorizations: authorizations)
        #expect(try await store.startValidation(challengeID: "o-c0"))
        let error = #"{"type":"urn:ietf:params:acme:error:incorrectResponse"}"#
        #expect(try await store.recordValidationOutcome(ACMEValidationOutcome(
            challengeID: "o-c0", challengeStatus: .invalid, validatedAt: nil, error: error, authorizationID: "o-a0",
            authorizationStatus: .invalid, orderStatus: .invalid)))
        let order = try #require(try await store.order(id: "o"))
        #expect(order.status == .invalid && order.error == error)
        #expect(try await store.challenge(id: "o-c0")?.0.error?.contains("incorrectResponse") == true)
        #expect(try await store.authorization(id: "o-a0")?.status == .invalid)
        #expect(!(try await store.setAuthorizationStatus(id: "o-a0", from: [.pending, .valid], to: .deactivated)))
        #expect(try await store.purge(expiredBefore: Date().addingTimeInterval(7_200)) == 1)
        #expect(try await store.order(id: "o") == nil)
        #expect(try await store.authorization(id: "o-a0") == nil)
        #expect(try await store.challenge(id: "o-c0") == nil)
    }

    /// Of two challenges of one authorization validated at once, one valid and one failing: the
    /// failure written second changes neither the authorization (valid already) nor the order.
    static func aFailureAfterAnotherChallengeValidatedTheAuthorizationLeavesTheOrder(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a", thumbprint: "t"))
        let (record, authorizations) = Self.order("o", account: "a", authorizations: 2)
        try await store.createOrder(record, authorizations: authorizations)
        // Both challenges of the first authorization start while it is pending.
        #expect(try await store.startValidation(challengeID: "o-c0"))
        #expect(try await store.startValidation(challengeID: "o-d0"))
        #expect(try await store.recordValidationOutcome(ACMEValidationOutcome(
            challengeID: "o-c0", challengeStatus: .valid, validatedAt: Date(), error: nil, authorizationID: "o-a0", authorizationStatus: .valid,
            orderStatus: .ready)))
        let error = #"{"type":"urn:ietf:params:acme:error:dns"}"#
        #expect(try await store.recordValidationOutcome(ACMEValidationOutcome(
            challengeID: "o-d0", challengeStatus: .invalid, validatedAt: nil, error: error, authorizationID: "o-a0", authorizationStatus: .invalid,
            orderStatus: .invalid)))
        #expect(try await store.challenge(id: "o-d0")?.0.status == .invalid, "the failed challenge is recorded")
        #expect(try await store.authorization(id: "o-a0")?.status == .valid)
        let order = try #require(try await store.order(id: "o"))
        #expect(order.status == .pending && order.error == nil, "the order still waits for its other authorization")
        #expect(try await store.startValidation(challengeID: "o-c1"))
        #expect(try await store.recordValidationOutcome(ACMEValidationOutcome(
            challengeID: "o-c1", challengeStatus: .valid, validatedAt: Date(), error: nil, authorizationID: "o-a1", authorizationStatus: .valid,
            orderStatus: .ready)))
        #expect(try await store.order(id: "o")?.status == .ready)
    }

    /// Deactivating an authorization (RFC 8555 §7.5.2) makes its order invalid, in the same
    /// transaction, when it is pending or ready: it cannot be finalized any more, and it no longer
    /// counts as open. An order being finalized is left to finish.
    static func deactivatingAnAuthorizationInvalidatesItsOrder(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a", thumbprint: "t"))
        func validate(_ order: String, authorizations count: Int) async throws {
            for index in 0..<count {
                #expect(try await store.startValidation(challengeID: "\(order)-c\(index)"))
                #expect(try await store.recordValidationOutcome(ACMEValidationOutcome(
                    challengeID: "\(order)-c\(index)", challengeStatus: .valid, validatedAt: Date(), error: nil,
                    authorizationID: "\(order)-a\(index)", authorizationStatus: .valid, orderStatus: .ready)))
            }
        }
        for (id, count) in [("pending", 1), ("ready", 2), ("finalizing", 1)] {
            let (record, authorizations) = Self.order(id, account: "a", authorizations: count)
            try await store.createOrder(record, authorizations: authorizations)
        }
        let error = #"{"type":"urn:ietf:params:acme:error:unauthorized","detail":"deactivated"}"#
        #expect(try await store.deactivateAuthorization(id: "pending-a0", orderError: error))
        #expect(try await store.authorization(id: "pending-a0")?.status == .deactivated)
        let pending = try #require(try await store.order(id: "pending"))
        #expect(pending.status == .invalid && pending.error == error)

        try await validate("ready", authorizations: 2)
        #expect(try await store.order(id: "ready")?.status == .ready)
        #expect(try await store.deactivateAuthorization(id: "ready-a1", orderError: error))
        #expect(try await store.authorization(id: "ready-a1")?.status == .deactivated)
        #expect(try await store.authorization(id: "ready-a0")?.status == .valid, "the order's other authorizations stay as they are")
        let ready = try #require(try await store.order(id: "ready"))
        #expect(ready.status == .invalid && ready.error == error)
        #expect(!(try await store.setOrderStatus(id: "ready", from: .ready, to: .valid, error: nil)), "an order with a deactivated authorization is never completed")
        #expect(!(try await store.deactivateAuthorization(id: "ready-a1", orderError: error)), "deactivated already")
        #expect(!(try await store.deactivateAuthorization(id: "nothing", orderError: error)))

        try await validate("finalizing", authorizations: 1)
        // Processing: an earlier version's finalization, which a deactivation leaves alone.
        #expect(try await store.setOrderStatus(id: "finalizing", from: .ready, to: .processing, error: nil))
        #expect(try await store.deactivateAuthorization(id: "finalizing-a0", orderError: error))
        #expect(try await store.order(id: "finalizing")?.status == .processing)
        #expect(try await store.setOrderStatus(id: "finalizing", from: .processing, to: .invalid, error: error))

        // None of the three is open now: a limit of one open order leaves room for one more.
        let (next, nextAuthorizations) = Self.order("next", account: "a")
        try await store.createOrder(next, authorizations: nextAuthorizations, openOrderLimit: 1)
    }

    struct NoKey: Error {}

    /// An account with its revoked-key check: the hash is asked of the account read, an unknown
    /// account asks nothing, and a key that cannot be worked out fails the look-up.
    static func anAccountIsReadWithItsRevokedKeyCheck(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        _ = try await store.createAccount(Self.account("a1", thumbprint: "t1"))
        var asked: [String] = []
        let found = try #require(try await store.account(id: "a1", keyHash: { asked.append($0.id); return "no-such-hash" }))
        #expect(found.account.thumbprint == "t1" && !found.keyRevoked && asked == ["a1"])
        #expect(try await store.account(id: "nobody", keyHash: { _ in Issue.record("asked for no account"); return "" }) == nil)
        await #expect(throws: NoKey.self) { try await store.account(id: "a1", keyHash: { _ in throw NoKey() }) }
    }

    static func noncesAreSpentOnceAndSecretsAreStable(_ factory: ACMEDatabaseFactory) async throws {
        let (store, keepAlive) = try await factory.open()
        defer { withExtendedLifetime(keepAlive) {} }
        let expiry = Date().addingTimeInterval(3_600)
        #expect(try await Self.winners(10) { try await store.consumeNonce("n1", expiresAt: expiry) } == 1)
        #expect(try await store.consumeNonce("n2", expiresAt: expiry))
        let key = try await store.key(named: "acme-nonce", size: 32)
        #expect(key.count == 32)
        #expect(try await store.key(named: "acme-nonce", size: 32) == key)
        #expect(try await store.key(named: "other", size: 32) != key)
    }
}

/// The contract on SQLite (the CA's default database).
@Suite struct ACMEDatabaseContractTests {
    @Test func oneAccountPerKeyAndEABKeysBindOnce() async throws {
        try await ACMEDatabaseContract.oneAccountPerKeyAndEABKeysBindOnce(.sqlite)
    }

    @Test func onlyUnboundEABKeysAreRemoved() async throws {
        try await ACMEDatabaseContract.onlyUnboundEABKeysAreRemoved(.sqlite)
    }

    @Test func deactivatingAnAccountDeactivatesItsAuthorizations() async throws {
        try await ACMEDatabaseContract.deactivatingAnAccountDeactivatesItsAuthorizations(.sqlite)
    }

    @Test func readsNeverWrite() async throws {
        try await ACMEDatabaseContract.readsNeverWrite(.sqlite)
    }

    @Test func validationAndFinalizationHappenOnceUnderConcurrency() async throws {
        try await ACMEDatabaseContract.validationAndFinalizationHappenOnceUnderConcurrency(.sqlite)
    }

    @Test func theLastValidationOfAnOrderMarksItReadyEvenWhenTheyFinishTogether() async throws {
        try await ACMEDatabaseContract.theLastValidationOfAnOrderMarksItReadyEvenWhenTheyFinishTogether(.sqlite)
    }

    @Test func anAccountsOpenOrdersAreLimited() async throws {
        try await ACMEDatabaseContract.anAccountsOpenOrdersAreLimited(.sqlite)
    }

    @Test func aFailedChallengeInvalidatesTheOrderAndExpiredOrdersArePurged() async throws {
        try await ACMEDatabaseContract.aFailedChallengeInvalidatesTheOrderAndExpiredOrdersArePurged(.sqlite)
    }

    @Test func aKeyRolloverAppliesOnlyFromTheCurrentKey() async throws {
        try await ACMEDatabaseContract.aKeyRolloverAppliesOnlyFromTheCurrentKey(.sqlite)
    }

    @Test func aFailureAfterAnotherChallengeValidatedTheAuthorizationLeavesTheOrder() async throws {
        try await ACMEDatabaseContract.aFailureAfterAnotherChallengeValidatedTheAuthorizationLeavesTheOrder(.sqlite)
    }

    @Test func deactivatingAnAuthorizationInvalidatesItsOrder() async throws {
        try await ACMEDatabaseContract.deactivatingAnAuthorizationInvalidatesItsOrder(.sqlite)
    }

    @Test func anAccountIsReadWithItsRevokedKeyCheck() async throws {
        try await ACMEDatabaseContract.anAccountIsReadWithItsRevokedKeyCheck(.sqlite)
    }

    @Test func noncesAreSpentOnceAndSecretsAreStable() async throws {
        try await ACMEDatabaseContract.noncesAreSpentOnceAndSecretsAreStable(.sqlite)
    }
}
