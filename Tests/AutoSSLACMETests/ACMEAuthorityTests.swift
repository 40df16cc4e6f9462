@testable import AutoSSLACME
import AutoSSLCA
import AutoSSLCore
import AutoSSLStore
import Crypto
import Foundation
import Testing
import TestSupport
import X509

/// The ACME authority without HTTP: the order lifecycle, the derived states, nonces, finalization,
/// over the real SQLite database and a fake network.
@Suite struct ACMEAuthorityTests {
    func problem(_ work: () async throws -> Any) async -> ACMEProblem? {
        do {
            _ = try await work()
            return nil
        } catch let problem as ACMEProblem {
            return problem
        } catch {
            return ACMEAuthority.problem(for: error) ?? ACMEProblem(.serverInternal, "\(error)")
        }
    }

    /// The value of the metric sample whose line starts with `name{` and contains every label pair.
    func metric(_ fixture: ACMEFixture, _ name: String, _ labels: [String]) -> Double? {
        let text = String(decoding: fixture.acme.authority.metrics.exposition(), as: UTF8.self)
        return text.split(separator: "\n").first { line in line.hasPrefix(name + "{") && labels.allSatisfy { line.contains($0) } }
            .flatMap { $0.split(separator: " ").last }.flatMap { Double($0) }
    }

    @Test func problemsGetTheUsualHTTPStatusUnlessOneIsChosen() {
        #expect(ACMEProblem(.badNonce, "x").httpStatus == 400 && ACMEProblem(.orderNotReady, "x").httpStatus == 403)
        #expect(ACMEProblem(.rateLimited, "x").httpStatus == 429 && ACMEProblem(.serverInternal, "x").httpStatus == 500)
        #expect(ACMEProblem(.malformed, "too large", status: 413).httpStatus == 413)
        #expect(ProblemDocument(ACMEProblem(.unauthorized, "no")).status == 403)
    }

    @Test func anOrderGoesFromPendingToReadyToValidAndFinalizesOnce() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["www.example.test", "api.example.test"])
        #expect(created.status == .pending && created.authorizations.count == 2)
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        let early = await problem {
            try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(["www.example.test"])]) {
                acme in { try await acme.finalize($0) }
            }
        }
        #expect(early?.kind == .orderNotReady, "\(String(describing: early))")

        let ready = try await fixture.validate(account, order: created, orderID: orderID)
        #expect(ready.status == .ready)
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .ready, "the last validation marks the order ready")
        for url in created.authorizations {
            let authorization = try await fixture.authorization(account, url: url)
            #expect(authorization.status == .valid && authorization.challenges.count == 1)
        }

        let wrongNames = await problem {
            try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(["other.example.test"])]) {
                acme in { try await acme.finalize($0) }
            }
        }
        #expect(wrongNames?.kind == .badCSR)

        // Two finalizations at once: one issues, the other is told the order is being finalized (or done).
        let csr = try fixture.csr(["www.example.test", "api.example.test"])
        let outcomes = await withTaskGroup(of: ACMEProblem?.self) { group in
            for _ in 0..<2 {
                group.addTask {
                    await self.problem {
                        try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": csr]) { acme in { try await acme.finalize($0) } }
                    }
                }
            }
            return await group.reduce(into: [ACMEProblem?]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == nil }.count == 1, "\(outcomes)")
        #expect(outcomes.compactMap { $0 }.allSatisfy { $0.kind == .orderNotReady }, "\(outcomes)")

        let valid = try await fixture.order(account, id: orderID)
        #expect(valid.status == .valid && valid.certificate != nil)
        let stored = try #require(try await fixture.database.acme.order(id: orderID))
        #expect(stored.status == .valid && stored.certificateSerial != nil, "issuance and completion are one transaction")
        let again = await problem {
            try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": csr]) { acme in { try await acme.finalize($0) } }
        }
        #expect(again?.kind == .orderNotReady && again?.detail.contains("finalized already") == true, "\(String(describing: again))")
        let chain = try await fixture.post(account, "cert/" + orderID, id: orderID, json: nil) { acme in { try await acme.certificate($0) } }
        #expect(chain.contentType == "application/pem-certificate-chain")
        #expect(String(decoding: chain.body, as: UTF8.self).components(separatedBy: "BEGIN CERTIFICATE").count == 3)

        // Counted for /metrics: the order created and made valid, both validations, one issuance.
        #expect(metric(fixture, "auto_ssl_acme_orders_total", [#"state="created""#]) == 1)
        #expect(metric(fixture, "auto_ssl_acme_orders_total", [#"state="valid""#]) == 1)
        #expect(metric(fixture, "auto_ssl_acme_validations_total", [#"type="http-01""#, #"outcome="valid""#]) == 2)
        #expect(metric(fixture, "auto_ssl_certificate_operations_total", [#"operation="issue""#, #"outcome="ok""#, #"provisioner="acme/"#]) == 1)
    }

    /// A key cut off by a revocation is refused at finalize as RFC 8555's badPublicKey, and the
    /// order does not become valid; nor can it become an account's key (new account, key change).
    @Test func finalizingWithTheKeyOfARevokedCertificateIsBadPublicKey() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let raw = P256.Signing.PrivateKey()
        let key = try SigningKey(derRepresentation: raw.derRepresentation)
        var serial = ""
        for round in 0..<2 {
            let created = try await fixture.newOrder(account, names: ["keyed.example.test"])
            let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
            _ = try await fixture.validate(account, order: created, orderID: orderID)
            let outcome = await problem {
                try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(["keyed.example.test"], key: key)]) {
                    acme in { try await acme.finalize($0) }
                }
            }
            if round == 0 {
                #expect(outcome == nil, "\(String(describing: outcome))")
                serial = try #require(try await fixture.database.acme.order(id: orderID)?.certificateSerial)
                let der = try #require(try await fixture.acme.authority.certificateRecord(serial: serial)?.der)
                try await fixture.acme.authority.revoke(.init(
                    serial: SerialText.decimal(fromHex: serial), reasonCode: 1, reason: "key compromise", token: nil,
                    presented: try Certificate(derEncoded: der), remote: nil))
            } else {
                #expect(outcome?.kind == .badPublicKey && outcome?.detail.contains("same key") == true, "\(String(describing: outcome))")
                #expect(try await fixture.database.acme.order(id: orderID)?.status != .valid)
            }
        }
        let compromised = await problem {
            try await fixture.post(TestAccount(key: raw), "new-account", json: ["contact": ["mailto:a@example.com"]]) { $0.newAccount }
        }
        #expect(compromised?.kind == .badPublicKey && compromised?.detail.contains("cannot be an account key") == true, "\(String(describing: compromised))")
        // Nor can an account change its key to it (RFC 8555 §7.3.5: the inner JWS is signed by the new key).
        let keyChange = fixture.endpoint("key-change")
        let inner = try TestAccount(key: raw).body(
            url: keyChange.url, nonce: "unused",
            payload: try JSONSerialization.data(withJSONObject: ["account": try #require(account.kid), "oldKey": account.jwk]), useJWK: true)
        let changed = await problem {
            try await fixture.post(account, "key-change", json: try JSONSerialization.jsonObject(with: inner)) { acme in { try await acme.keyChange($0) } }
        }
        #expect(changed?.kind == .badPublicKey && changed?.detail.contains("cannot be an account key") == true, "\(String(describing: changed))")
    }

    /// An account whose key a revocation cuts off later (another account got a certificate for
    /// that key, revoked for key compromise) can do nothing more: no order, no key change (which
    /// would hand the account to whoever else holds the key). Its requests are 401 unauthorized.
    @Test func anAccountWhoseKeyIsRevokedLaterIsRefused() async throws {
        let fixture = try await ACMEFixture()
        let (victim, _) = try await fixture.newAccount()
        _ = try await fixture.newOrder(victim, names: ["before.example.test"])
        let (other, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(other, names: ["shared.example.test"])
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        _ = try await fixture.validate(other, order: created, orderID: orderID)
        let victimKey = try SigningKey(derRepresentation: victim.key.derRepresentation)
        _ = try await fixture.post(other, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(["shared.example.test"], key: victimKey)]) {
            acme in { try await acme.finalize($0) }
        }
        let serial = try #require(try await fixture.database.acme.order(id: orderID)?.certificateSerial)
        let der = try #require(try await fixture.acme.authority.certificateRecord(serial: serial)?.der)
        _ = try await fixture.acme.authority.revoke(.init(
            serial: SerialText.decimal(fromHex: serial), reasonCode: 1, reason: "key compromise", token: nil,
            presented: try Certificate(derEncoded: der), remote: nil))

        let order = await problem { try await fixture.newOrder(victim, names: ["after.example.test"]) }
        #expect(order?.kind == .unauthorized && order?.httpStatus == 401 && order?.detail.contains("key was revoked") == true, "\(String(describing: order))")
        let keyChange = fixture.endpoint("key-change")
        let inner = try TestAccount().body(
            url: keyChange.url, nonce: "unused",
            payload: try JSONSerialization.data(withJSONObject: ["account": try #require(victim.kid), "oldKey": victim.jwk]), useJWK: true)
        let changed = await problem {
            try await fixture.post(victim, "key-change", json: try JSONSerialization.jsonObject(with: inner)) { acme in { try await acme.keyChange($0) } }
        }
        #expect(changed?.kind == .unauthorized && changed?.httpStatus == 401, "\(String(describing: changed))")
        // The other account, whose own key is untouched, goes on.
        _ = try await fixture.newOrder(other, names: ["still.example.test"])
    }

    /// RFC 8555 §11.1: a CSR for the account's own key is badCSR, and the order stays ready for a
    /// CSR with a key of its own.
    @Test func aCSRForTheAccountKeyIsBadCSR() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["own-key.example.test"])
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        _ = try await fixture.validate(account, order: created, orderID: orderID)
        let accountKey = try SigningKey(derRepresentation: account.key.derRepresentation)
        let refused = await problem {
            try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(["own-key.example.test"], key: accountKey)]) {
                acme in { try await acme.finalize($0) }
            }
        }
        #expect(refused?.kind == .badCSR && refused?.detail.contains("account key") == true, "\(String(describing: refused))")
        let status = try await fixture.database.acme.order(id: orderID)?.status
        #expect(status == .ready || status == .pending, "\(String(describing: status))")  // ready, whether marked so yet or not
        let issued = try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(["own-key.example.test"])]) {
            acme in { try await acme.finalize($0) }
        }
        #expect(issued.status == 200)
    }

    /// After its authorization was deactivated, answering a challenge is refused (it would stay
    /// pending forever while the order is invalid), and no validation starts.
    @Test func aChallengeOfADeactivatedAuthorizationCannotBeAnswered() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["dropped.example.test"])
        let authorizationURL = try #require(created.authorizations.first)
        let authorizationID = String(authorizationURL.split(separator: "/").last ?? "")
        let authorization = try await fixture.authorization(account, url: authorizationURL)
        let challenge = try #require(authorization.challenges.first { $0.type == "http-01" })
        _ = try await fixture.post(account, "authz/" + authorizationID, id: authorizationID, json: ["status": "deactivated"]) { acme in { try await acme.authorization($0) } }
        fixture.network.serve(token: challenge.token, content: challenge.token + "." + account.thumbprint)
        let id = String(challenge.url.split(separator: "/").last ?? "")
        let refused = await problem {
            try await fixture.post(account, "chall/" + id, id: id, json: [String: String]()) { acme in { try await acme.challenge($0) } }
        }
        #expect(refused?.kind == .malformed && refused?.detail.contains("deactivated") == true, "\(String(describing: refused))")
        #expect(try await fixture.database.acme.challenge(id: id)?.0.status == .pending)
        #expect(fixture.network.requests.isEmpty, "no validation was attempted")
    }

    /// RFC 8555 §7.5.2: an authorization the client deactivates after its order became ready makes
    /// the order invalid (in the same write): finalize is refused and nothing is issued.
    @Test func deactivatingAnAuthorizationOfAReadyOrderInvalidatesIt() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let names = ["kept.example.test", "dropped.example.test"]
        let created = try await fixture.newOrder(account, names: names)
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        let ready = try await fixture.validate(account, order: created, orderID: orderID)
        #expect(ready.status == .ready)
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .ready)
        let authorizationID = String(created.authorizations[1].split(separator: "/").last ?? "")
        let reply = try await fixture.post(account, "authz/" + authorizationID, id: authorizationID, json: ["status": "deactivated"]) { acme in
            { try await acme.authorization($0) }
        }
        #expect(try JSONDecoder().decode(ACMEAuthorizationObject.self, from: Data(reply.body)).status == .deactivated)
        let order = try await fixture.order(account, id: orderID)
        #expect(order.status == .invalid && order.error?.detail?.contains("deactivated") == true, "\(String(describing: order.error))")
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .invalid)
        let refused = await problem {
            try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(names)]) {
                acme in { try await acme.finalize($0) }
            }
        }
        #expect(refused?.kind == .orderNotReady && refused?.detail.contains("invalid") == true, "\(String(describing: refused))")
        let stored = try #require(try await fixture.database.acme.order(id: orderID))
        #expect(stored.status == .invalid && stored.certificateSerial == nil)
    }

    /// Two replicas (two authorities over one database) finalizing one order at once: each signs,
    /// one certificate is recorded and handed out, the other request is told the order is no longer
    /// ready, and the order stays valid with the recorded one.
    @Test func replicasFinalizingOneOrderRecordOneCertificate() async throws {
        let fixture = try await ACMEFixture()
        let second = try await ACMEAuthority(
            authority: fixture.authority, database: fixture.database.acme, network: fixture.network, ownMachineAddresses: [],
            attemptDelays: [0], attemptTimeout: 2)
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["replicas.example.test"])
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        _ = try await fixture.validate(account, order: created, orderID: orderID)
        let csr = try fixture.csr(["replicas.example.test"])
        var requests: [ACMERequest] = []
        for _ in 0..<2 {
            let endpoint = fixture.endpoint("order/\(orderID)/finalize", id: orderID)
            let body = try account.body(
                url: endpoint.url, nonce: fixture.acme.makeNonce(), payload: try JSONSerialization.data(withJSONObject: ["csr": csr]), useJWK: false)
            requests.append(try await fixture.acme.authenticate(endpoint, body: body, contentType: "application/jose+json"))
        }
        let (first, other) = (requests[0], requests[1])
        async let one = Self.outcome { try await fixture.acme.finalize(first) }
        async let two = Self.outcome { try await second.finalize(other) }
        let outcomes = await [one, two]
        #expect(outcomes.filter { $0 == nil }.count == 1, "\(outcomes)")
        #expect(outcomes.compactMap { $0 }.allSatisfy { $0.kind == .orderNotReady }, "\(outcomes)")
        let stored = try #require(try await fixture.database.acme.order(id: orderID))
        let issued = try await fixture.database.certificates.certificates(CertificateQuery(), now: Date()).filter { $0.names == ["replicas.example.test"] }
        #expect(stored.status == .valid && issued.map(\.serial) == [stored.certificateSerial].compactMap { $0 }, "\(issued.map(\.serial))")
    }

    static func outcome(_ body: () async throws -> ACMEReply) async -> ACMEProblem? {
        do {
            _ = try await body()
            return nil
        } catch let problem as ACMEProblem {
            return problem
        } catch {
            return ACMEProblem(.serverInternal, "\(error)")
        }
    }

    /// A finalization that fails for a temporary reason (the CA's database unavailable: 503) leaves
    /// the order ready, to be finalized again; a refusal (here: a name the policy refuses) makes it
    /// invalid with the problem.
    @Test func aFinalizationThatFailsForATemporaryReasonLeavesTheOrderReady() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["retry.example.test"])
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        _ = try await fixture.validate(account, order: created, orderID: orderID)
        let temporary: [any Error] = [StoreError.unavailable("disk full"), AuthorityError(.unavailable, "serial collision; retry the request")]
        for error in temporary {
            let problem = await fixture.acme.abandonFinalize(orderID: orderID, after: error)
            #expect(problem.kind == .serverInternal && problem.httpStatus == 503, "\(problem)")
            let stored = try #require(try await fixture.database.acme.order(id: orderID))
            #expect(stored.status == .ready && stored.error == nil, "\(error)")
        }
        let issued = try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(["retry.example.test"])]) {
            acme in { try await acme.finalize($0) }
        }
        #expect(issued.status == 200)
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .valid)

        let refusedOrder = try await fixture.newOrder(account, names: ["refused.example.test"])
        let refusedID = String(refusedOrder.finalize.split(separator: "/").dropLast().last ?? "")
        _ = try await fixture.validate(account, order: refusedOrder, orderID: refusedID)
        let refusal = await fixture.acme.abandonFinalize(orderID: refusedID, after: AuthorityError(.forbidden, "not allowed", about: .names))
        #expect(refusal.kind == .rejectedIdentifier, "\(refusal)")
        let stored = try #require(try await fixture.database.acme.order(id: refusedID))
        #expect(stored.status == .invalid && ProblemDocument(stored: stored.error)?.type.hasSuffix("rejectedIdentifier") == true)
    }

    /// Key rollover is a compare-and-swap (RFC 8555 §7.3.5): of two key changes signed with the same
    /// old key, both authenticated before either ran, the first applies and the second is refused.
    @Test func aSecondKeyChangeSignedWithTheSameOldKeyIsRefused() async throws {
        let fixture = try await ACMEFixture()
        let (account, accountID) = try await fixture.newAccount()
        let kid = try #require(account.kid)
        let endpoint = fixture.endpoint("key-change")
        var requests: [ACMERequest] = []
        var newKeys: [TestAccount] = []
        for _ in 0..<2 {
            let newKey = TestAccount()
            let inner = try newKey.body(
                url: endpoint.url, nonce: "unused", payload: try JSONSerialization.data(withJSONObject: ["account": kid, "oldKey": account.jwk]),
                useJWK: true)
            let body = try account.body(url: endpoint.url, nonce: fixture.acme.makeNonce(), payload: inner)
            requests.append(try await fixture.acme.authenticate(endpoint, body: body, contentType: "application/jose+json"))
            newKeys.append(newKey)
        }
        let first = try await fixture.acme.keyChange(requests[0])
        #expect(first.status == 200)
        let second = requests[1]
        let refused = await problem { try await fixture.acme.keyChange(second) }
        #expect(refused?.kind == .unauthorized && refused?.detail.contains("changed meanwhile") == true, "\(String(describing: refused))")
        #expect(try await fixture.database.acme.account(id: accountID)?.thumbprint == newKeys[0].thumbprint, "the first key change stands")
        var rolled = newKeys[0]
        rolled.kid = kid
        _ = try await fixture.newOrder(rolled, names: ["rolled.example.test"])
    }

    /// An ACME revocation is counted under its provisioner (`acme/NAME`); asking again is
    /// alreadyRevoked and counts as refused, not as another revocation.
    @Test func acmeRevocationsAreCountedUnderTheirProvisionerOnce() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["counted.example.test"])
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        _ = try await fixture.validate(account, order: created, orderID: orderID)
        _ = try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(["counted.example.test"])]) {
            acme in { try await acme.finalize($0) }
        }
        let serial = try #require(try await fixture.database.acme.order(id: orderID)?.certificateSerial)
        let der = try #require(try await fixture.acme.authority.certificateRecord(serial: serial)?.der)
        let payload: [String: Any] = ["certificate": Base64URL.encode(der), "reason": 4]
        let first = try await fixture.post(account, "revoke-cert", json: payload) { acme in { try await acme.revokeCertificate($0) } }
        #expect(first.status == 200)
        let second = await problem { try await fixture.post(account, "revoke-cert", json: payload) { acme in { try await acme.revokeCertificate($0) } } }
        #expect(second?.kind == .alreadyRevoked, "\(String(describing: second))")
        let revoke = [#"operation="revoke""#, #"provisioner="acme/acme""#]
        #expect(metric(fixture, "auto_ssl_certificate_operations_total", revoke + [#"outcome="ok""#]) == 1)
        #expect(metric(fixture, "auto_ssl_certificate_operations_total", revoke + [#"outcome="refused""#]) == 1)
    }

    /// Dates the CA would refuse at finalize are refused at newOrder (malformed, no order made),
    /// before the client proves control of its names; dates within the policy are accepted.
    @Test func orderDatesOutsideThePolicyAreRefusedAtNewOrder() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let identifiers = [["type": "dns", "value": "dated.example.test"]]
        for (notBefore, notAfter, words) in [
            (nil as String?, "2099-01-01T00:00:00Z", "exceeds the maximum 720h (30 days)"),
            ("2098-01-01T00:00:00Z", nil as String?, "notBefore is too far in the future"),
        ] {
            var payload: [String: Any] = ["identifiers": identifiers]
            payload["notBefore"] = notBefore
            payload["notAfter"] = notAfter
            let refused = await problem { try await fixture.post(account, "new-order", json: payload) { acme in { try await acme.newOrder($0) } } }
            #expect(refused?.kind == .malformed && refused?.detail.contains(words) == true, "\(String(describing: refused))")
            #expect(refused?.detail.contains("(631") != true, "a duration is not repeated: \(String(describing: refused))")
        }
        let within = Timestamp.rfc3339(Date().addingTimeInterval(3 * 86_400))
        let accepted = try await fixture.post(account, "new-order", json: ["identifiers": identifiers, "notAfter": within]) { acme in { try await acme.newOrder($0) } }
        #expect(accepted.status == 201)
    }

    @Test func pollingAnOrderIsARead() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["read.example.test"])
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        let stored = try #require(try await fixture.database.acme.order(id: orderID))
        // The authorization turned valid without the order being marked (as after a crash between the two).
        let authorizationID = try #require(stored.authorizationIDs.first)
        let challenge = try #require(try await fixture.database.acme.authorization(id: authorizationID)?.challenges.first)
        #expect(try await fixture.database.acme.startValidation(challengeID: challenge.id))
        #expect(try await fixture.database.acme.recordValidationOutcome(ACMEValidationOutcome(
            challengeID: challenge.id, challengeStatus: .valid, validatedAt: Date(), error: nil, authorizationID: authorizationID,
            authorizationStatus: .valid, orderStatus: nil)))
        #expect(try await fixture.order(account, id: orderID).status == .ready, "derived from the authorizations")
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .pending, "and nothing written by reading")

        // Past its expiry the order reads as invalid, still without a write.
        let later = Date().addingTimeInterval(ACMEAuthority.orderLifetime + 60)
        let current = try #require(try await fixture.acme.currentOrder(id: orderID, now: later))
        #expect(current.status == .invalid && ProblemDocument(stored: current.error)?.detail == "the order expired")
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .pending)
        let expired = ACMEStateRules.effective(try #require(try await fixture.database.acme.authorization(id: authorizationID)), now: later)
        #expect(expired.status == .expired)

        // Finalize marks a derived-ready order ready, then processing, then valid.
        let reply = try await fixture.post(account, "order/\(orderID)/finalize", id: orderID, json: ["csr": try fixture.csr(["read.example.test"])]) {
            acme in { try await acme.finalize($0) }
        }
        #expect(reply.status == 200)
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .valid)
    }

    /// A reader that got the order just before its validation failed, and its authorizations just
    /// after, still reports the validation's error (the two reads are not one snapshot; the failure
    /// writes the authorization and the order in one transaction).
    @Test func anOrderReadJustBeforeItsValidationFailedStillReportsTheError() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["race.example.test"])
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        let before = try #require(try await fixture.database.acme.order(id: orderID))
        #expect(before.status == .pending && before.error == nil)
        _ = try await fixture.validate(account, order: created, orderID: orderID, content: "not-the-key-authorization")
        let seen = try await fixture.acme.effectiveOrder(before, now: Date())
        #expect(seen.status == .invalid)
        #expect(ProblemDocument(stored: seen.error)?.type.hasSuffix("incorrectResponse") == true, "\(String(describing: seen.error))")
    }

    @Test func aFailedChallengeInvalidatesTheAuthorizationAndTheOrder() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["wrong.example.test"])
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        let order = try await fixture.validate(account, order: created, orderID: orderID, content: "not-the-key-authorization")
        #expect(order.status == .invalid)
        #expect(order.error?.type.hasSuffix("incorrectResponse") == true, "\(String(describing: order.error))")
        let authorization = try await fixture.authorization(account, url: try #require(created.authorizations.first))
        #expect(authorization.status == .invalid)
        let challenge = try #require(authorization.challenges.first { $0.type == "http-01" })
        #expect(challenge.status == .invalid && challenge.error?.detail?.contains("wrong content") == true)
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .invalid)
        #expect(fixture.network.requests.count == 3, "three attempts: \(fixture.network.requests)")
        // The validation's event (audit line and metrics) follows its durable outcome, which a
        // reader may see first.
        for _ in 0..<100 where metric(fixture, "auto_ssl_acme_validations_total", [#"outcome="invalid""#]) == nil {
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        #expect(metric(fixture, "auto_ssl_acme_validations_total", [#"outcome="invalid""#]) == 1)
        #expect(metric(fixture, "auto_ssl_acme_orders_total", [#"state="invalid""#]) == 1)
    }

    /// A challenge's POST answers with the validation's outcome when it ends at once, and with
    /// `processing` (and Retry-After) when its first attempt failed and the next waits.
    @Test func aChallengeAnswersItsOutcomeWhenTheValidationEndsAtOnce() async throws {
        // The validation that ends at once gets a generous wait, so that a loaded machine does
        // not turn its outcome into `processing`; the one that retries keeps the default wait,
        // and its first retry is 5 s away, well past it.
        for (content, delays, wait, expected) in [
            (nil as String?, [0.0, 0, 0], 60.0, ACMEChallengeStatus.valid), ("wrong", [0, 5, 5], ACMEAuthority.challengeAnswerWait, .processing),
        ] {
            let fixture = try await ACMEFixture(attemptDelays: delays, challengeAnswerWait: wait)
            let (account, _) = try await fixture.newAccount()
            let created = try await fixture.newOrder(account, names: ["at-once.example.test"])
            let authorization = try await fixture.authorization(account, url: try #require(created.authorizations.first))
            let challenge = try #require(authorization.challenges.first { $0.type == "http-01" })
            fixture.network.serve(token: challenge.token, content: content ?? challenge.token + "." + account.thumbprint)
            let id = String(challenge.url.split(separator: "/").last ?? "")
            let started = ContinuousClock.now
            let reply = try await fixture.post(account, "chall/" + id, id: id, json: [String: String]()) { acme in { try await acme.challenge($0) } }
            let waited = ContinuousClock.now - started
            let answered = try JSONDecoder().decode(ACMEChallengeObject.self, from: Data(reply.body))
            #expect(answered.status == expected, "\(String(decoding: reply.body, as: UTF8.self))")
            #expect((reply.retryAfter != nil) == (expected == .processing))
            // Not held until the retry 5 s away (the bound leaves a loaded machine its margin).
            #expect(expected == .valid ? answered.validated != nil : waited < .seconds(4.5), "\(waited)")
        }
    }

    /// Work a client can pile up is bounded: validations in progress across the CA, and the
    /// orders one account holds open. Past either, the answer is rateLimited (429) and nothing
    /// changes: the challenge stays pending, no order is made.
    @Test func validationsAndOpenOrdersAreBounded() async throws {
        let fixture = try await ACMEFixture(challengeAnswerWait: 60)
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["bounded.example.test"])
        let authorization = try await fixture.authorization(account, url: try #require(created.authorizations.first))
        let challenge = try #require(authorization.challenges.first { $0.type == "http-01" })
        fixture.network.serve(token: challenge.token, content: challenge.token + "." + account.thumbprint)
        let id = String(challenge.url.split(separator: "/").last ?? "")
        let inProgress = fixture.acme.validationsInProgress
        let accountID = String(try #require(account.kid).split(separator: "/").last ?? "")
        let perAccount = ACMEAuthority.maximumValidationsInProgressPerAccount
        // The account's own share taken (by its other validations): refused, others are not.
        for _ in 0..<perAccount { #expect(inProgress.take(account: accountID) == nil) }
        let refusedForTheAccount = await problem {
            try await fixture.post(account, "chall/" + id, id: id, json: [String: String]()) { acme in { try await acme.challenge($0) } }
        }
        #expect(refusedForTheAccount?.kind == .rateLimited && refusedForTheAccount?.httpStatus == 429)
        #expect(refusedForTheAccount?.detail.contains("this account has \(perAccount)") == true, "\(String(describing: refusedForTheAccount))")
        #expect(inProgress.take(account: "another") == nil && inProgress.held(by: "another") == 1)
        inProgress.release(account: "another")
        for _ in 0..<perAccount { inProgress.release(account: accountID) }
        // The whole CA's places taken by other accounts: refused too.
        let fillers = ACMEAuthority.maximumValidationsInProgress / perAccount
        for filler in 0..<fillers {
            for _ in 0..<perAccount { #expect(inProgress.take(account: "filler-\(filler)") == nil) }
        }
        let refused = await problem {
            try await fixture.post(account, "chall/" + id, id: id, json: [String: String]()) { acme in { try await acme.challenge($0) } }
        }
        #expect(refused?.kind == .rateLimited && refused?.httpStatus == 429, "\(String(describing: refused))")
        #expect(try await fixture.database.acme.challenge(id: id)?.0.status == .pending)
        #expect(inProgress.held() == ACMEAuthority.maximumValidationsInProgress, "a refused POST gives back the place it did not get")
        for filler in 0..<fillers {
            for _ in 0..<perAccount { inProgress.release(account: "filler-\(filler)") }
        }
        let accepted = try await fixture.post(account, "chall/" + id, id: id, json: [String: String]()) { acme in { try await acme.challenge($0) } }
        #expect(accepted.status == 200)
        #expect(inProgress.held() == 0 && inProgress.held(by: accountID) == 0, "the finished validation gave its place back")

        for index in 1..<ACMEAuthority.maximumOpenOrders {
            _ = try await fixture.post(account, "new-order", json: ["identifiers": [["type": "dns", "value": "o\(index).example.test"]]]) { acme in
                { try await acme.newOrder($0) }
            }
        }
        // The first order is ready (its one challenge is valid): still open.
        let tooMany = await problem {
            try await fixture.post(account, "new-order", json: ["identifiers": [["type": "dns", "value": "one-more.example.test"]]]) { acme in
                { try await acme.newOrder($0) }
            }
        }
        #expect(tooMany?.kind == .rateLimited && tooMany?.detail.contains("\(ACMEAuthority.maximumOpenOrders) open orders") == true)
        let (other, _) = try await fixture.newAccount()
        _ = try await fixture.newOrder(other, names: ["other-account.example.test"])
    }

    @Test func aNonceWorksOnceAndOnlyIfItIsOurs() async throws {
        let fixture = try await ACMEFixture()
        let nonce = fixture.acme.makeNonce()
        try await fixture.acme.spendNonce(nonce)
        let replayed = await problem { try await fixture.acme.spendNonce(nonce) }
        #expect(replayed?.kind == .badNonce && replayed?.detail.contains("already used") == true)
        let forged = await problem { try await fixture.acme.spendNonce("bm90LWEtbm9uY2U") }
        #expect(forged?.kind == .badNonce)
        var tampered = Array(Base64URL.decode(fixture.acme.makeNonce()) ?? Data())
        tampered[9] ^= 1
        let altered = await problem { try await fixture.acme.spendNonce(Base64URL.encode(tampered)) }
        #expect(altered?.kind == .badNonce && altered?.detail.contains("unknown or expired") == true)
        let old = fixture.acme.makeNonce(now: Date().addingTimeInterval(-ACMEAuthority.nonceLifetime - 1))
        let expired = await problem { try await fixture.acme.spendNonce(old) }
        #expect(expired?.kind == .badNonce)
        let missing = await problem { try await fixture.acme.spendNonce(nil) }
        #expect(missing?.kind == .badNonce)
        // Through authentication: the same JWS twice is refused the second time.
        let account = TestAccount()
        let endpoint = fixture.endpoint("new-account")
        let body = try account.body(url: endpoint.url, nonce: fixture.acme.makeNonce(), payload: Data("{}".utf8))
        _ = try await fixture.acme.authenticate(endpoint, body: body, contentType: "application/jose+json")
        let again = await problem { try await fixture.acme.authenticate(endpoint, body: body, contentType: "application/jose+json") }
        #expect(again?.kind == .badNonce)
    }

    @Test func requestsAreCheckedBeforeAnythingHappens() async throws {
        let fixture = try await ACMEFixture()
        let (account, accountID) = try await fixture.newAccount()
        let endpoint = fixture.endpoint("new-order")
        let wrongURL = try account.body(url: fixture.base + "/new-account", nonce: fixture.acme.makeNonce(), payload: Data("{}".utf8))
        #expect(await problem { try await fixture.acme.authenticate(endpoint, body: wrongURL, contentType: nil) }?.kind == .unauthorized)
        let good = try account.body(url: endpoint.url, nonce: fixture.acme.makeNonce(), payload: Data("{}".utf8))
        #expect(await problem { try await fixture.acme.authenticate(endpoint, body: good, contentType: "text/plain") }?.status == 415)
        var stranger = TestAccount()
        stranger.kid = account.kid
        let forged = try stranger.body(url: endpoint.url, nonce: fixture.acme.makeNonce(), payload: Data("{}".utf8))
        #expect(await problem { try await fixture.acme.authenticate(endpoint, body: forged, contentType: nil) }?.kind == .unauthorized)
        let unsupported = await problem {
            try await fixture.post(account, "new-order", json: ["identifiers": [["type": "email", "value": "a@b.c"]]]) { acme in { try await acme.newOrder($0) } }
        }
        #expect(unsupported?.kind == .unsupportedIdentifier)
        // An existing key gets its account back; onlyReturnExisting for an unknown key is refused.
        var same = account
        same.kid = nil
        let existing = try await fixture.post(same, "new-account", json: [String: String]()) { $0.newAccount }
        #expect(existing.status == 200 && existing.location?.hasSuffix(accountID) == true)
        let unknown = await problem { try await fixture.post(TestAccount(), "new-account", json: ["onlyReturnExisting": true]) { $0.newAccount } }
        #expect(unknown?.kind == .accountDoesNotExist)
        // A deactivated account can do nothing more.
        _ = try await fixture.post(account, "account/" + accountID, id: accountID, json: ["status": "deactivated"]) { $0.account }
        let after = await problem { try await fixture.newOrder(account, names: ["late.example.test"]) }
        #expect(after?.kind == .unauthorized && after?.httpStatus == 401, "RFC 8555 §7.3.6: \(String(describing: after))")
        // Nor does its key get it back through newAccount.
        let again = await problem { try await fixture.post(same, "new-account", json: [String: String]()) { $0.newAccount } }
        #expect(again?.kind == .unauthorized && again?.httpStatus == 401 && again?.detail.contains("deactivated") == true, "\(String(describing: again))")
    }

    @Test func wildcardsNeedDNS01AndIPsNeverGetIt() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let order = try await fixture.newOrder(account, names: ["*.apps.example.test", "127.0.0.1"])
        let wildcard = try await fixture.authorization(account, url: order.authorizations[0])
        #expect(wildcard.wildcard == true && wildcard.identifier.value == "apps.example.test")
        #expect(wildcard.challenges.map(\.type) == ["dns-01"])
        let ip = try await fixture.authorization(account, url: order.authorizations[1])
        #expect(!ip.challenges.map(\.type).contains("dns-01"))
        let httpOnly = try await ACMEFixture(challenges: ["http-01"])
        let (other, _) = try await httpOnly.newAccount()
        let refused = await problem { try await httpOnly.newOrder(other, names: ["*.x.example.test"]) }
        #expect(refused?.kind == .rejectedIdentifier && refused?.detail.contains("wildcards need dns-01") == true)
    }
}
