import AutoSSLStore
import Foundation
import Testing
import TestSupport

struct ACMEStoreTests {
    func store() throws -> (TemporaryDirectory, ACMEStore) {
        let directory = TemporaryDirectory()
        return (directory, ACMEStore(try SQLiteCertificateStore(path: directory.file("db.sqlite"))))
    }

    func account(_ id: String, thumbprint: String, eab: String? = nil) -> ACMEAccountRecord {
        ACMEAccountRecord(id: id, provisioner: "acme", thumbprint: thumbprint, jwk: "{}", status: "valid", contact: [], createdAt: Date(), eabKeyID: eab)
    }

    func order(_ id: String, account: String) -> (ACMEOrderRecord, [ACMEAuthorizationRecord]) {
        let authorization = ACMEAuthorizationRecord(
            id: id + "-a", accountID: account, orderID: id, identifier: ACMEIdentifier(type: "dns", value: "x.test"), wildcard: false,
            status: "pending", expires: Date().addingTimeInterval(3_600),
            challenges: [ACMEChallengeRecord(id: id + "-c", authorizationID: id + "-a", type: "http-01", token: "t", status: "pending")])
        let order = ACMEOrderRecord(
            id: id, accountID: account, provisioner: "acme", status: "pending", identifiers: [authorization.identifier], notBefore: nil,
            notAfter: nil, expires: Date().addingTimeInterval(3_600), createdAt: Date(), authorizationIDs: [authorization.id])
        return (order, [authorization])
    }

    @Test func oneAccountPerKeyAndEABKeysBindOnce() async throws {
        let (directory, store) = try store()
        defer { withExtendedLifetime(directory) {} }
        try await store.addEABKey(kid: "k", provisioner: "acme", key: Data([1, 2, 3]))
        let (first, created) = try await store.createAccount(account("a1", thumbprint: "t1", eab: "k"))
        #expect(created && first.eabKeyID == "k")
        let (same, createdAgain) = try await store.createAccount(account("a2", thumbprint: "t1"))
        #expect(!createdAgain && same.id == "a1", "the same key gets the existing account")
        await #expect(throws: ACMEStoreError.eabKeyAlreadyUsed) { _ = try await store.createAccount(self.account("a3", thumbprint: "t3", eab: "k")) }
        #expect(try await store.account(id: "a3") == nil, "a refused binding creates no account")
        #expect(try await store.unboundEABKey(kid: "k", provisioner: "acme") == nil)
        await #expect(throws: ACMEStoreError.accountKeyInUse(existingID: "a1")) {
            _ = try await store.createAccount(self.account("a4", thumbprint: "t4"))
            try await store.changeAccountKey(id: "a4", thumbprint: "t1", jwk: "{}")
        }
    }

    @Test func validationAndFinalizationHappenOnceUnderConcurrency() async throws {
        let (directory, store) = try store()
        defer { withExtendedLifetime(directory) {} }
        _ = try await store.createAccount(account("a", thumbprint: "t"))
        let (record, authorizations) = order("o", account: "a")
        try await store.createOrder(record, authorizations: authorizations)
        let starts = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 { group.addTask { try await store.startValidation(challengeID: "o-c") } }
            return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(starts == 1, "a challenge starts validating exactly once")
        #expect(try await store.order(id: "o")?.status == "pending")
        try await store.finishValidation(challengeID: "o-c", valid: true, error: nil)
        #expect(try await store.authorization(id: "o-a")?.status == "valid")
        #expect(try await store.order(id: "o")?.status == "ready")
        let finalizations = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<20 { group.addTask { try await store.beginFinalize(orderID: "o", notBefore: nil, notAfter: nil) } }
            return try await group.reduce(into: 0) { $0 += $1 ? 1 : 0 }
        }
        #expect(finalizations == 1, "an order is finalized exactly once")
        try await store.completeOrder(orderID: "o", serial: "abcd")
        #expect(try await store.order(id: "o")?.status == "valid")
        #expect(try await store.order(certificateSerial: "abcd")?.accountID == "a")
    }

    @Test func aFailedChallengeInvalidatesTheOrderAndExpiredOrdersArePurged() async throws {
        let (directory, store) = try store()
        defer { withExtendedLifetime(directory) {} }
        _ = try await store.createAccount(account("a", thumbprint: "t"))
        let (record, authorizations) = order("o", account: "a")
        try await store.createOrder(record, authorizations: authorizations)
        #expect(try await store.startValidation(challengeID: "o-c"))
        try await store.finishValidation(challengeID: "o-c", valid: false, error: #"{"type":"urn:ietf:params:acme:error:incorrectResponse"}"#)
        #expect(try await store.order(id: "o")?.status == "invalid")
        #expect(try await store.challenge(id: "o-c")?.0.error?.contains("incorrectResponse") == true)
        #expect(try await store.purge(expiredBefore: Date().addingTimeInterval(7_200)) == 1)
        #expect(try await store.order(id: "o") == nil)
        #expect(try await store.authorization(id: "o-a") == nil)
    }
}
