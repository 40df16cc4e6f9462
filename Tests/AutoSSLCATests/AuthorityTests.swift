@testable import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation
import Testing
import TestSupport
import X509

/// The authority without HTTP: tokens, policy, durations, audit, durable records.
@Suite struct AuthorityTests {
    static let provisionerPassword = "provisioner-password-for-tests"

    final class Fixture: @unchecked Sendable {
        let dir = TemporaryDirectory()
        let directories: Directories
        let authority: Authority
        let key: ECJWK
        let url = "https://127.0.0.1:9443"

        init(policy: PolicySettings? = nil, grace: Double? = nil) async throws {
            directories = Directories(
                configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("certs"), systemdDir: dir.file("sd"))
            var options = CAInitOptions()
            options.name = "Authority Test"
            options.addresses = [ListenAddress(host: "127.0.0.1", port: 9443)]
            options.dnsNames = ["ca.test.internal"]
            options.caPassword = .given("ca-password-for-tests-123")
            options.provisionerPassword = .given(AuthorityTests.provisionerPassword)
            _ = try CAInitializer(directories: directories).initialise(options)
            if policy != nil || grace != nil {
                var configuration = try AutoSSLConfiguration.load(from: directories.configFile)
                configuration.ca?.provisioners[0].policy = policy
                configuration.ca?.renewalGraceFraction = grace
                try configuration.save(to: directories.configFile)
            }
            let passwordFile = try dir.write("ca.pw", "ca-password-for-tests-123\n")
            authority = try await AuthorityLoader(directories: directories).load(passwordFile: passwordFile)
            let jwe = try FileOperations.readText(authority.settings.provisioners[0].encryptedKeyFile)
            key = try JSONDecoder().decode(ECJWK.self, from: try PasswordJWE.decrypt(jwe, password: AuthorityTests.provisionerPassword))
        }

        func token(
            sans: [String], aud: String? = nil, iss: String = "admin", lifetime: Int64 = 300, offset: Int64 = 0,
            jti: String = UUID().uuidString, sha: String? = nil, signer: ECJWK? = nil
        ) throws -> String {
            let now = Int64(Date().timeIntervalSince1970) + offset
            let claims = ProvisionerTokenClaims(
                iss: iss, aud: [aud ?? url + "/1.0/sign"], sub: sans.first ?? "", sans: sans, nbf: now, iat: now,
                exp: now + lifetime, jti: jti, sha: sha ?? authority.rootFingerprint)
            let signingKey = signer ?? key
            return try JWT.sign(payload: claims, kid: signingKey.kid ?? signingKey.thumbprint, key: try signingKey.privateKey())
        }

        func csr(_ names: [String], algorithm: KeyAlgorithm = .p256) throws -> String {
            try VerifiedCSR.make(names: names.map(SubjectName.init(parsing:)), key: SigningKey.generate(algorithm))
        }

        func auditLines() throws -> [[String: Any]] {
            try readFile(directories.auditLog).split(separator: "\n").map {
                try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
            }
        }
    }

    func expectRefusal(
        _ fixture: Fixture, _ request: Authority.SignRequest, kind: AuthorityError.Kind, containing text: String,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async {
        do {
            _ = try await fixture.authority.sign(request)
            Issue.record("request was accepted", sourceLocation: sourceLocation)
        } catch let error as AuthorityError {
            #expect(error.kind == kind, "\(error.message)", sourceLocation: sourceLocation)
            #expect(error.message.contains(text), "\(error.message)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func issuesARecordedCertificateThatVerifies() async throws {
        let f = try await Fixture()
        let names = ["web01.internal", "10.0.0.7"]
        let issued = try await f.authority.sign(.init(csrPEM: try f.csr(names), token: try f.token(sans: names), remote: "192.0.2.1"))
        let issuedLeaf = try issued.leaf
        #expect(issuedLeaf.subjectNames.map(\.description) == names)
        #expect(issuedLeaf.issuer == f.authority.intermediate.subject)
        let lifetime = issuedLeaf.notValidAfter.timeIntervalSince(issuedLeaf.notValidBefore)
        #expect(abs(lifetime - (7 * 86_400 + 60)) < 5)  // 7 days plus the backdating
        let record = try #require(try await f.authority.store.certificate(serial: issued.serial))
        #expect(record.status == .issued && record.provisioner == "admin" && record.requester == "192.0.2.1")
        #expect(record.der == (try issuedLeaf.derBytes()))
        let audit = try f.auditLines().last!
        #expect(audit["event"] as? String == "certificate.issued")
        #expect(audit["serial"] as? String == issued.serial)
        #expect(audit["remote"] as? String == "192.0.2.1")
        #expect(audit["sans"] as? [String] == names)
        // The key identifier read from the CSR's bytes is the one computed from the key.
        let ski = try #require(try issuedLeaf.extensions.subjectKeyIdentifier)
        #expect(ski.keyIdentifier == CertificateProfiles.keyIdentifier(for: issuedLeaf.publicKey))
        #expect(issued.leafPEM == (try issuedLeaf.pemString()))
        // A token that repeats a name (in any case) gets a certificate that names it once.
        let repeated = try await f.authority.sign(.init(
            csrPEM: try f.csr(["a.internal", "10.0.0.8"]), token: try f.token(sans: ["a.internal", "A.Internal", "10.0.0.8", "10.0.0.8"])))
        #expect(try repeated.leaf.subjectNames.map(\.description) == ["a.internal", "10.0.0.8"])
    }

    @Test func auditLinesAreSortedCompactJSON() throws {
        let event = AuditLog.Event(
            "certificate.issued", time: Date(timeIntervalSince1970: 1_796_000_000.5), serial: "0a1b", sans: ["a.test", "10.0.0.1"],
            provisioner: "admin", remote: "192.0.2.1", reason: "quote \" and \\ and \n", detail: "valid until x")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(event.jsonLine.utf8)) as? [String: Any])
        let sorted = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        #expect(event.jsonLine == String(decoding: sorted, as: UTF8.self))
        #expect(object["time"] as? String == "2026-11-30T00:53:20.500Z")
        let minimal = AuditLog.Event("service.start", time: Date(timeIntervalSince1970: 0))
        #expect(minimal.jsonLine == #"{"event":"service.start","time":"1970-01-01T00:00:00.000Z"}"#)
    }

    @Test func aTokenWorksOnlyOnce() async throws {
        let f = try await Fixture()
        let token = try f.token(sans: ["a.internal"])
        _ = try await f.authority.sign(.init(csrPEM: try f.csr(["a.internal"]), token: token))
        await expectRefusal(f, .init(csrPEM: try f.csr(["a.internal"]), token: token), kind: .unauthorized, containing: "already used")
        #expect(try f.auditLines().last?["event"] as? String == "auth.failure")
    }

    @Test func refusesBadTokens() async throws {
        let f = try await Fixture()
        let csr = try f.csr(["a.internal"])
        let stranger = ECJWK.generatePrivate()
        let cases: [(String, AuthorityError.Kind, String)] = [
            (try f.token(sans: ["a.internal"], aud: "https://evil.example:9443/1.0/sign"), .unauthorized, "audience"),
            (try f.token(sans: ["a.internal"], aud: f.url + "/1.0/renew"), .unauthorized, "audience"),
            (try f.token(sans: ["a.internal"], signer: stranger), .unauthorized, "unknown key"),
            (try f.token(sans: ["a.internal"], iss: "someone"), .unauthorized, "issuer"),
            (try f.token(sans: ["a.internal"], lifetime: 86_400 + 3600), .unauthorized, "lifetime exceeds"),
            (try f.token(sans: ["a.internal"], offset: -900), .unauthorized, "expired"),
            (try f.token(sans: ["a.internal"], offset: 900), .unauthorized, "not valid yet"),
            (try f.token(sans: ["a.internal"], sha: String(repeating: "0", count: 64)), .unauthorized, "fingerprint"),
            ("not-a-token", .unauthorized, "malformed"),
        ]
        for (token, kind, text) in cases {
            await expectRefusal(f, .init(csrPEM: csr, token: token), kind: kind, containing: text)
        }
        // The token's kid points at the real provisioner but another key signed it.
        var forged = try f.token(sans: ["a.internal"], signer: stranger).split(separator: ".").map(String.init)
        forged[0] = Base64URL.encode(Data(#"{"alg":"ES256","kid":"\#(f.key.kid!)"}"#.utf8))
        await expectRefusal(f, .init(csrPEM: csr, token: forged.joined(separator: ".")), kind: .unauthorized, containing: "signature")
        #expect(try f.auditLines().filter { $0["event"] as? String == "auth.failure" }.count == cases.count + 1)
    }

    @Test func audiences() async throws {
        let f = try await Fixture()
        for audience in ["https://127.0.0.1:9443/1.0/sign", "https://127.0.0.1:9443/sign", "https://ca.test.internal:9443/sign"] {
            #expect(f.authority.isAcceptedAudience(audience, path: "/sign"), "\(audience)")
        }
        for audience in ["http://127.0.0.1:9443/sign", "https://127.0.0.1:9444/sign", "https://127.0.0.1:9443/sign/x"] {
            #expect(!f.authority.isAcceptedAudience(audience, path: "/sign"), "\(audience)")
        }
    }

    @Test func csrMustMatchTheToken() async throws {
        let f = try await Fixture()
        await expectRefusal(
            f, .init(csrPEM: try f.csr(["a.internal", "b.internal"]), token: try f.token(sans: ["a.internal"])),
            kind: .forbidden, containing: "do not match")
        await expectRefusal(
            f, .init(csrPEM: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                     token: try f.token(sans: ["a.internal"])),
            kind: .badRequest, containing: "CSR")
        await expectRefusal(
            f, .init(csrPEM: try rsa1024CSR(), token: try f.token(sans: ["weak.internal"])),
            kind: .badRequest, containing: "RSA key of 1024 bits")
    }

    @Test func durationsAreBoundedNotClamped() async throws {
        let f = try await Fixture()
        await expectRefusal(
            f, .init(csrPEM: try f.csr(["a.internal"]), token: try f.token(sans: ["a.internal"]), notAfter: "744h"),
            kind: .forbidden, containing: "exceeds the maximum 720h")
        await expectRefusal(
            f, .init(csrPEM: try f.csr(["a.internal"]), token: try f.token(sans: ["a.internal"]), notAfter: "1m"),
            kind: .forbidden, containing: "shorter than the minimum")
        await expectRefusal(
            f, .init(csrPEM: try f.csr(["a.internal"]), token: try f.token(sans: ["a.internal"]), notAfter: "soon"),
            kind: .badRequest, containing: "notAfter")
        let issued = try await f.authority.sign(
            .init(csrPEM: try f.csr(["a.internal"]), token: try f.token(sans: ["a.internal"]), notAfter: "24h"))
        let issuedLeaf = try issued.leaf
        // 24 hours from the request, plus the 60 s the start is backdated by.
        #expect(issuedLeaf.notValidAfter.timeIntervalSince(issuedLeaf.notValidBefore) == 86_400 + 60)
        let until = ISO8601DateFormatter().string(from: Date().addingTimeInterval(3 * 86_400))
        let exact = try await f.authority.sign(
            .init(csrPEM: try f.csr(["b.internal"]), token: try f.token(sans: ["b.internal"]), notAfter: until))
        let exactLeaf = try exact.leaf
        #expect(ISO8601DateFormatter().string(from: exactLeaf.notValidAfter) == until)
    }

    @Test func neverOutlivesTheIntermediate() async throws {
        let f = try await Fixture()
        let nearEnd = f.authority.intermediate.notValidAfter.addingTimeInterval(-86_400)
        do {
            _ = try f.authority.validity(
                .requested(notBefore: nil, notAfter: nil), policy: f.authority.provisioners.jwk[0].policy, now: nearEnd,
                refuse: { AuthorityError($0, $1) })
            Issue.record("accepted a certificate outliving the intermediate")
        } catch let error as AuthorityError {
            #expect(error.message.contains("ca rotate-intermediate"))
        }
    }

    @Test func policyLimitsNamesAndKeyTypes() async throws {
        let f = try await Fixture(policy: PolicySettings(allowedDNS: [".internal"], allowedIPs: ["10.0.0.0/8"], keyTypes: ["P-256"]))
        _ = try await f.authority.sign(
            .init(csrPEM: try f.csr(["web.internal", "10.9.9.9"]), token: try f.token(sans: ["web.internal", "10.9.9.9"])))
        await expectRefusal(
            f, .init(csrPEM: try f.csr(["web.example.com"]), token: try f.token(sans: ["web.example.com"])),
            kind: .forbidden, containing: "web.example.com is not allowed by policy")
        await expectRefusal(
            f, .init(csrPEM: try f.csr(["192.168.1.1"]), token: try f.token(sans: ["192.168.1.1"])),
            kind: .forbidden, containing: "192.168.1.1 is not allowed")
        await expectRefusal(
            f, .init(csrPEM: try f.csr(["web.internal"], algorithm: .p384), token: try f.token(sans: ["web.internal"])),
            kind: .forbidden, containing: "key type P-384")
        #expect(try f.auditLines().last?["event"] as? String == "request.refused")
    }

    @Test func serverCertificateCoversTheConfiguredNames() async throws {
        let f = try await Fixture()
        let (key, chain) = try await f.authority.issueServerCertificate()
        #expect(chain[0].publicKey == key.publicKey)
        #expect(Set(chain[0].subjectNames.map(\.description)) == ["127.0.0.1", "ca.test.internal"])
    }

    @Test func failureLimiterBlocksAfterTheLimit() async {
        let limiter = FailureLimiter(limit: 3, window: 60)
        let start = Date()
        for i in 0..<3 {
            #expect(limiter.retryAfter("a", now: start) == nil)
            limiter.recordFailure("a", now: start.addingTimeInterval(Double(i)))
        }
        #expect(limiter.retryAfter("a", now: start.addingTimeInterval(3)) == 57)
        #expect(limiter.retryAfter("b", now: start.addingTimeInterval(3)) == nil)
        #expect(limiter.retryAfter("a", now: start.addingTimeInterval(61)) == nil)
    }

    /// Failures from more addresses than it remembers (easy from an IPv6 network): memory stays
    /// bounded; those whose failures left the window go first, then those that failed longest ago.
    @Test func failureLimiterRemembersABoundedNumberOfAddresses() {
        let limiter = FailureLimiter(limit: 3, window: 60, maximumAddresses: 1_000)
        let start = Date()
        for i in 0..<5_000 { limiter.recordFailure("2001:db8::\(String(i, radix: 16))", now: start.addingTimeInterval(Double(i) / 1_000)) }
        #expect(limiter.rememberedAddresses <= 1_000)
        for _ in 0..<3 { limiter.recordFailure("10.0.0.1", now: start.addingTimeInterval(5)) }
        for i in 0..<2_000 { limiter.recordFailure("2001:db8:1::\(String(i, radix: 16))", now: start.addingTimeInterval(5)) }
        #expect(limiter.rememberedAddresses <= 1_000)
        // The address that failed last is still blocked; one of the first was forgotten.
        for _ in 0..<3 { limiter.recordFailure("10.0.0.3", now: start.addingTimeInterval(7)) }
        for i in 0..<2_000 { limiter.recordFailure("2001:db8:2::\(String(i, radix: 16))", now: start.addingTimeInterval(6)) }
        #expect(limiter.retryAfter("10.0.0.3", now: start.addingTimeInterval(8)) != nil)
        #expect(limiter.recordedFailures("2001:db8::0") == 0)
        // One address failing again and again keeps only what decides.
        for _ in 0..<10_000 { limiter.recordFailure("10.0.0.2", now: start.addingTimeInterval(6)) }
        #expect(limiter.retryAfter("10.0.0.2", now: start.addingTimeInterval(6)) == 60)
        #expect(limiter.recordedFailures("10.0.0.2") == 3)
        // An address whose failures have all left the window is forgotten at the next sweep.
        for i in 0..<1_000 { limiter.recordFailure("2001:db8:3::\(String(i, radix: 16))", now: start.addingTimeInterval(100)) }
        #expect(limiter.recordedFailures("10.0.0.2") == 0)
        #expect(limiter.rememberedAddresses <= 1_000)
    }

    @Test func renewalKeepsNamesKeyAndLifetimeAndRecordsTheOrigin() async throws {
        let f = try await Fixture()
        let names = ["keep.internal", "10.0.0.9"]
        let first = try await f.authority.sign(.init(csrPEM: try f.csr(names), token: try f.token(sans: names), notAfter: "48h"))
        let firstLeaf = try first.leaf
        let later = Date().addingTimeInterval(36 * 3600)
        let renewed = try await f.authority.renew(.mutualTLS(first.leaf), remote: "192.0.2.9", now: later)
        let renewedLeaf = try renewed.leaf
        #expect(renewedLeaf.publicKey == firstLeaf.publicKey)
        #expect(renewedLeaf.subjectNames == firstLeaf.subjectNames)
        #expect(renewedLeaf.notValidAfter.timeIntervalSince(renewedLeaf.notValidBefore)
            == firstLeaf.notValidAfter.timeIntervalSince(firstLeaf.notValidBefore))
        #expect(try await f.authority.store.certificate(serial: renewed.serial)?.renewedFrom == first.serial)
        #expect(try f.auditLines().last?["event"] as? String == "certificate.renewed")
    }

    @Test func renewalGraceWindowIsFivePercentOfTheLifetime() async throws {
        let f = try await Fixture()
        let issued = try await f.authority.sign(.init(csrPEM: try f.csr(["g.internal"]), token: try f.token(sans: ["g.internal"]), notAfter: "100h"))
        let issuedLeaf = try issued.leaf
        let lifetime = issuedLeaf.notValidAfter.timeIntervalSince(issuedLeaf.notValidBefore)
        _ = try await f.authority.renew(.mutualTLS(issuedLeaf), remote: nil, now: issuedLeaf.notValidAfter.addingTimeInterval(lifetime * 0.04))
        do {
            _ = try await f.authority.renew(.mutualTLS(issuedLeaf), remote: nil, now: issuedLeaf.notValidAfter.addingTimeInterval(lifetime * 0.06))
            Issue.record("renewed beyond the grace window")
        } catch let error as AuthorityError {
            #expect(error.kind == .forbidden && error.message.contains("grace window"))
        }
    }

    @Test func zeroGraceDisablesRenewalAfterExpiry() async throws {
        let f = try await Fixture(grace: 0)
        let issued = try await f.authority.sign(.init(csrPEM: try f.csr(["z.internal"]), token: try f.token(sans: ["z.internal"])))
        let issuedLeaf = try issued.leaf
        await #expect(throws: AuthorityError.self) {
            _ = try await f.authority.renew(.mutualTLS(issuedLeaf), remote: nil, now: issuedLeaf.notValidAfter.addingTimeInterval(1))
        }
        _ = try await f.authority.renew(.mutualTLS(issuedLeaf), remote: nil, now: issuedLeaf.notValidAfter.addingTimeInterval(-1))
    }

    @Test func aGraceWindowWiderThanFivePercentIsRefusedWhenTheCALoads() async throws {
        for wide in [0.06, 0.5, 1.0, -0.01] {
            do {
                _ = try await Fixture(grace: wide)
                Issue.record("loaded with renewal_grace_fraction \(wide)")
            } catch let error as AutoSSLError {
                #expect(error.kind == .invalidArguments && error.message.contains("renewal_grace_fraction"), "\(error)")
            }
        }
        // The widest allowed window works as configured.
        let f = try await Fixture(grace: 0.05)
        #expect(f.authority.renewalGraceFraction == 0.05)
    }

    @Test func revokedCertificatesAreNeverRenewedAndAppearInTheCRL() async throws {
        let f = try await Fixture()
        let issued = try await f.authority.sign(.init(csrPEM: try f.csr(["r.internal"]), token: try f.token(sans: ["r.internal"])))
        let issuedLeaf = try issued.leaf
        try await f.authority.revoke(.init(
            serial: SerialText.decimal(fromHex: issued.serial), reasonCode: 1, reason: "test", token: nil, presented: issuedLeaf, remote: nil))
        await #expect(throws: AuthorityError.self) { _ = try await f.authority.renew(.mutualTLS(issuedLeaf), remote: nil) }
        let crl = try await f.authority.crl.current()
        let dir = TemporaryDirectory()
        let text = try runProcess("openssl", ["crl", "-inform", "DER", "-in", try dir.writeData("crl.der", crl), "-noout", "-text"]).stdout
        #expect(text.uppercased().contains(issued.serial.uppercased()), "\(text)")
        // Another certificate cannot be revoked by presenting this one.
        let other = try await f.authority.sign(.init(csrPEM: try f.csr(["o.internal"]), token: try f.token(sans: ["o.internal"])))
        let otherLeaf = try other.leaf
        await #expect(throws: AuthorityError.self) {
            try await f.authority.revoke(.init(
                serial: other.serial, reasonCode: 0, reason: "", token: nil, presented: issuedLeaf, remote: nil))
        }
        await #expect(throws: AuthorityError.self) {
            try await f.authority.revoke(.init(serial: other.serial, reasonCode: 7, reason: "", token: nil, presented: otherLeaf, remote: nil))
        }
    }

    /// A certificate signed with the CA's own intermediate key (as a leaked key, current or
    /// archived, would sign one) under a recorded serial, but with other names and another key, is
    /// not the recorded certificate: it renews nothing and revokes nothing.
    @Test func aCertificateSignedByTheCAButNotTheOneRecordedNeitherRenewsNorRevokes() async throws {
        let f = try await Fixture()
        let issued = try await f.authority.sign(.init(csrPEM: try f.csr(["victim.internal"]), token: try f.token(sans: ["victim.internal"])))
        let genuine = try issued.leaf
        let forged = try CertificateProfiles.leaf(
            names: [try SubjectName(parsing: "forged.internal")], publicKey: try SigningKey.generate(.p256).publicKey,
            serial: genuine.serialNumber, issuer: f.authority.intermediate, issuerKey: f.authority.intermediateKey,
            notBefore: genuine.notValidBefore, notAfter: genuine.notValidAfter)
        #expect(f.authority.isIssuedByThisCA(forged), "the signature alone is genuine")
        do {
            _ = try await f.authority.renew(.mutualTLS(forged), remote: "192.0.2.66")
            Issue.record("a forged certificate was renewed")
        } catch let error as AuthorityError {
            #expect(error.kind == .unauthorized && error.message.contains("not the certificate this CA recorded"), "\(error.message)")
        }
        do {
            try await f.authority.revoke(.init(
                serial: issued.serial, reasonCode: 0, reason: "", token: nil, presented: forged, remote: "192.0.2.66"))
            Issue.record("a forged certificate revoked the genuine one")
        } catch let error as AuthorityError {
            #expect(error.kind == .unauthorized && error.message.contains("not the certificate this CA recorded"), "\(error.message)")
        }
        #expect(try await f.authority.store.certificate(serial: issued.serial)?.revocation == nil)
        // The genuine certificate still renews.
        _ = try await f.authority.renew(.mutualTLS(genuine), remote: nil)
    }

    /// Renewal keeps the key: revoking the renewed certificate revokes its predecessor too (both in
    /// the CRL, each audited), and no certificate is issued for that key again, by token or renewal.
    @Test func revokingACertificateRevokesItsKeyEverywhere() async throws {
        let f = try await Fixture()
        let key = try SigningKey.generate(.p256)
        let names = ["keyed.internal"]
        let first = try await f.authority.sign(.init(
            csrPEM: try VerifiedCSR.make(names: names.map(SubjectName.init(parsing:)), key: key), token: try f.token(sans: names)))
        let renewed = try await f.authority.renew(.mutualTLS(try first.leaf), remote: nil)
        try await f.authority.revoke(.init(
            serial: renewed.serial, reasonCode: 1, reason: "key compromise", token: nil, presented: try renewed.leaf, remote: "192.0.2.7"))
        let predecessor = try #require(try await f.authority.store.certificate(serial: first.serial)?.revocation)
        #expect(predecessor.reasonCode == 1 && predecessor.revokedBy == "holder, same key as \(renewed.serial)")
        let crl = try await f.authority.crl.current()
        let dir = TemporaryDirectory()
        let text = try runProcess("openssl", ["crl", "-inform", "DER", "-in", try dir.writeData("crl.der", crl), "-noout", "-text"]).stdout.uppercased()
        #expect(text.contains(first.serial.uppercased()) && text.contains(renewed.serial.uppercased()), "\(text)")
        let revokedLines = try f.auditLines().filter { $0["event"] as? String == "certificate.revoked" }
        #expect(Set(revokedLines.compactMap { $0["serial"] as? String }) == [first.serial, renewed.serial])
        await expectRefusal(
            f, .init(csrPEM: try VerifiedCSR.make(names: names.map(SubjectName.init(parsing:)), key: key), token: try f.token(sans: names)),
            kind: .revokedKey, containing: "same key")
        await #expect(throws: AuthorityError.self) { _ = try await f.authority.renew(.mutualTLS(try first.leaf), remote: nil) }
        // Another key for the same names is issued as before.
        _ = try await f.authority.sign(.init(csrPEM: try f.csr(names), token: try f.token(sans: names)))
    }

    /// A stolen provisioner password gives its holder the key (the encrypted key is public), so
    /// changing the password gives the provisioner a new key: tokens signed with the old one are
    /// refused, the new password opens the new key, and the change is in the audit log.
    @Test func changingAProvisionerPasswordReplacesItsKey() async throws {
        let f = try await Fixture()
        let before = f.authority.settings.provisioners[0]
        let newPassword = "another-provisioner-password-456"
        let changed = try await SharedSettingsSync(directories: f.directories).change(
            "provisioner password admin", event: "provisioner.key-rotated", provisioner: "admin"
        ) {
            try ProvisionerAdmin(directories: f.directories).changePassword(
                name: "admin", current: AuthorityTests.provisionerPassword, new: newPassword, kdfIterations: 210_000)
        }
        #expect(changed.publicKey != before.publicKey)
        // A wrong current password is a trust failure (exit 6, as for a token), and changes nothing.
        do {
            _ = try ProvisionerAdmin(directories: f.directories).changePassword(
                name: "admin", current: "not-the-password-at-all-000", new: "a-third-password-789", kdfIterations: 210_000)
            Issue.record("a wrong current password changed the provisioner's key")
        } catch let error as AutoSSLError {
            #expect(error.kind == .trustFailure && error.message.contains("is wrong"), "\(error)")
        }
        #expect(try ProvisionerAdmin(directories: f.directories).list().first { $0.name == "admin" }?.publicKey == changed.publicKey)
        let reloaded = try await AuthorityLoader(directories: f.directories).load(passwordFile: try f.dir.write("ca2.pw", "ca-password-for-tests-123\n"))
        let names = ["after.internal"]
        do {
            _ = try await reloaded.sign(.init(csrPEM: try f.csr(names), token: try f.token(sans: names)))
            Issue.record("a token signed with the old key was accepted")
        } catch let error as AuthorityError {
            #expect(error.kind == .unauthorized, "\(error.message)")
        }
        let jwe = try FileOperations.readText(changed.encryptedKeyFile)
        #expect(throws: (any Error).self) { _ = try PasswordJWE.decrypt(jwe, password: AuthorityTests.provisionerPassword) }
        let newKey = try JSONDecoder().decode(ECJWK.self, from: try PasswordJWE.decrypt(jwe, password: newPassword))
        _ = try await reloaded.sign(.init(csrPEM: try f.csr(names), token: try f.token(sans: names, signer: newKey)))
        let rotated = try #require(try f.auditLines().last { $0["event"] as? String == "provisioner.key-rotated" })
        #expect(rotated["provisioner"] as? String == "admin")
    }

    /// As in step-ca, a removed provisioner renews nothing: its certificates stay valid until they
    /// expire, a renewal is refused (and audited) with what to do instead, and `ca provisioner
    /// remove` finds them beforehand to say so. A provisioner that remains renews as before.
    @Test func certificatesOfARemovedProvisionerAreNotRenewed() async throws {
        let f = try await Fixture()
        _ = try ProvisionerAdmin(directories: f.directories).add(
            name: "ops", password: .given("ops-provisioner-password-789"), policy: nil, kdfIterations: 210_000)
        let withOps = try await AuthorityLoader(directories: f.directories).load(passwordFile: try f.dir.write("ca2.pw", "ca-password-for-tests-123\n"))
        let issued = try await withOps.sign(.init(csrPEM: try f.csr(["gone.internal"]), token: try f.token(sans: ["gone.internal"])))
        let issuedLeaf = try issued.leaf
        let revocations = AdminRevocation(directories: f.directories)
        #expect(try await revocations.usableCertificates(of: "admin").map(\.serial) == [issued.serial])
        #expect(try await revocations.usableCertificates(of: "ops").isEmpty)
        // An ACME provisioner's certificates are recorded as acme/NAME and found by its name too.
        let now = Date()
        let acmeRecord = CertificateRecord(
            serial: "0A1B2C", status: .issued, commonName: "acme.internal", names: ["acme.internal"], notBefore: now - 60,
            notAfter: now + 3600, keyType: "P-256", provisioner: "acme/acme", requester: nil, renewedFrom: nil,
            der: try issuedLeaf.derBytes(), createdAt: now)
        try await f.authority.store.recordIssuance(acmeRecord, token: nil, completingOrder: nil, refusingRevokedKey: nil)
        #expect(try await revocations.usableCertificates(of: "acme").map(\.serial) == ["0A1B2C"])
        #expect(try await revocations.usableCertificates(of: "acme/acme").map(\.serial) == ["0A1B2C"])

        try ProvisionerAdmin(directories: f.directories).remove(name: "admin")
        let reloaded = try await AuthorityLoader(directories: f.directories).load(passwordFile: try f.dir.write("ca3.pw", "ca-password-for-tests-123\n"))
        do {
            _ = try await reloaded.renew(.mutualTLS(issuedLeaf), remote: "192.0.2.7")
            Issue.record("a certificate of a removed provisioner was renewed")
        } catch let error as AuthorityError {
            #expect(error.kind == .forbidden, "\(error.message)")
            #expect(error.message.contains("provisioner \"admin\", which this CA no longer has") && error.message.contains("server enroll"), "\(error.message)")
        }
        let refusal = try #require(try f.auditLines().last { $0["event"] as? String == "renewal.refused" })
        #expect(refusal["serial"] as? String == issued.serial)
        #expect(try await reloaded.store.certificate(serial: issued.serial)?.revocation == nil, "the certificate itself stays valid")

        // A new provisioner under the removed one's name would renew them again: refused while they
        // can be used; another name, or the name of a provisioner that exists, is not checked.
        do {
            try await revocations.checkNameReusable(forNewProvisioner: "admin", acme: false)
            Issue.record("the removed provisioner's name was given out again")
        } catch let error as AutoSSLError {
            #expect(error.message.contains("1 certificate of a removed provisioner named \"admin\""), "\(error)")
            #expect(error.hint?.contains("ca revoke --provisioner admin") == true, "\(error)")
        }
        try await revocations.checkNameReusable(forNewProvisioner: "fresh", acme: false)
        try await revocations.checkNameReusable(forNewProvisioner: "ops", acme: false)
        // An ACME provisioner named admin would not renew the password provisioner's certificates.
        try await revocations.checkNameReusable(forNewProvisioner: "admin", acme: true)
    }

    /// The name the CA's own TLS certificates are recorded under is no provisioner's, and the CA key
    /// password (stored on this machine) is refused as a new provisioner's, as at `ca init`.
    @Test func provisionersCannotTakeTheCAServerNameOrTheCAPassword() async throws {
        let f = try await Fixture()
        let admin = ProvisionerAdmin(directories: f.directories)
        #expect(throws: AutoSSLError.self) { _ = try admin.add(name: "ca-server", password: .generate, policy: nil, kdfIterations: 210_000) }
        try FileOperations.writeAtomically("ca-password-for-tests-123\n", to: f.directories.caPasswordFile, mode: 0o600)
        do {
            _ = try admin.add(name: "same", password: .given("ca-password-for-tests-123"), policy: nil, kdfIterations: 210_000)
            Issue.record("the CA key password became a provisioner password")
        } catch let error as AutoSSLError {
            #expect(error.kind == .invalidArguments && error.message.contains("must differ from the CA key password"), "\(error)")
        }
        _ = try admin.add(name: "other", password: .given("another-password-for-tests"), policy: nil, kdfIterations: 210_000)
        await #expect(throws: AutoSSLError.self) {
            _ = try await AdminRevocation(directories: f.directories).revokeIssued(
                by: "ca-server", after: Date(timeIntervalSince1970: 0), before: nil, reasonCode: 0, reason: "", dryRun: true)
        }
    }

    /// A key change interrupted after the new key file was written (config.yaml names the new key,
    /// the stored password is still the old one, the new one waits in `.pending`): running the
    /// command again with the stored password completes it first, and no key is left unopenable.
    @Test func anInterruptedProvisionerKeyChangeIsCompletedByRunningItAgain() async throws {
        let f = try await Fixture()
        let admin = ProvisionerAdmin(directories: f.directories)
        let added = try admin.add(name: "ops", password: .generate, policy: nil, kdfIterations: 210_000)
        let stored = try #require(added.generatedPasswordFile)
        let first = try Passwords.fromFileContents(readFile(stored))
        let changed = try admin.changePassword(name: "ops", current: first, new: "second-password-for-ops-123", kdfIterations: 210_000)
        #expect(try Passwords.fromFileContents(readFile(stored)) == "second-password-for-ops-123")
        #expect(!FileManager.default.fileExists(atPath: stored + ".pending"))
        // The state a crash before the last step leaves.
        try FileOperations.writeAtomically("second-password-for-ops-123\n", to: stored + ".pending", mode: 0o600)
        try FileOperations.writeAtomically(first + "\n", to: stored, mode: 0o600)
        let repaired = try admin.changePassword(name: "ops", current: first, new: "third-password-for-ops-123", kdfIterations: 210_000)
        #expect(repaired.publicKey != changed.publicKey)
        #expect(try Passwords.fromFileContents(readFile(stored)) == "third-password-for-ops-123")
        let opened = try JSONDecoder().decode(
            ECJWK.self, from: try PasswordJWE.decrypt(try FileOperations.readText(repaired.encryptedKeyFile), password: "third-password-for-ops-123"))
        #expect(try opened.publicOnly.jsonString() == (try admin.list().first { $0.name == "ops" })?.publicKey)
        // A wrong password with nothing pending changes nothing.
        #expect(throws: AutoSSLError.self) {
            _ = try admin.changePassword(name: "ops", current: "not-the-password-at-all", new: "fourth-password-for-ops-1", kdfIterations: 210_000)
        }
        #expect(try Passwords.fromFileContents(readFile(stored)) == "third-password-for-ops-123")
    }

    /// The certificate download (ACME) carries each leaf's own intermediate: the one there is
    /// before a rotation (served without parsing the leaf), the archived one for a leaf it signed
    /// after the rotation, and the new one for the new leaves.
    @Test func aDownloadedChainCarriesTheLeafsOwnIntermediate() async throws {
        let f = try await Fixture()
        let names = ["chain.internal"]
        let before = try await f.authority.sign(.init(csrPEM: try f.csr(names), token: try f.token(sans: names), remote: "192.0.2.1"))
        let oldIntermediate = try f.authority.intermediate.pemString()
        #expect(try await f.authority.pemChain(serial: before.serial) == before.leafPEM + oldIntermediate)
        #expect(try await f.authority.pemChain(serial: "00") == nil)

        _ = try IntermediateRotation(directories: f.directories).rotate(caPassword: "ca-password-for-tests-123")
        let rotated = try await AuthorityLoader(directories: f.directories).load(passwordFile: try f.dir.write("ca4.pw", "ca-password-for-tests-123\n"))
        #expect(rotated.previousIntermediates.count == 1 && rotated.intermediate != f.authority.intermediate)
        #expect(try await rotated.pemChain(serial: before.serial) == before.leafPEM + oldIntermediate)
        let after = try await rotated.sign(.init(csrPEM: try f.csr(names), token: try f.token(sans: names), remote: "192.0.2.1"))
        #expect(try await rotated.pemChain(serial: after.serial) == after.leafPEM + (try rotated.intermediate.pemString()))
    }

    /// An interrupted `rotate-intermediate --compromised` may leave the current intermediate listed
    /// as revoked by the root before it was replaced: the CA then refuses to start, naming the fix.
    @Test func aCAWhoseCurrentIntermediateTheRootRevokedDoesNotStart() async throws {
        let f = try await Fixture()
        let serial = f.authority.intermediate.serialNumber.hexString
        try FileOperations.writeAtomically(
            #"{"crl_number": 1, "revoked": [{"serial": "\#(serial)", "revoked_at": 1800000000}]}"# + "\n",
            to: f.authority.settings.paths.caDir + "/certs/revoked_intermediates.json", mode: 0o644)
        do {
            _ = try await AuthorityLoader(directories: f.directories).load(passwordFile: try f.dir.write("ca3.pw", "ca-password-for-tests-123\n"))
            Issue.record("the CA started with a revoked intermediate")
        } catch let error as AutoSSLError {
            #expect(error.message.contains("revoked by the root") && (error.hint ?? "").contains("--compromised \(serial)"), "\(error)")
        }
    }

    func rsa1024CSR() throws -> String {
        let dir = TemporaryDirectory()
        let result = try runProcess("openssl", [
            "req", "-new", "-newkey", "rsa:1024", "-nodes", "-keyout", dir.file("k"), "-out", dir.file("r"),
            "-subj", "/CN=weak.internal",
        ])
        #expect(result.status == 0, "\(result)")
        return try readFile(dir.file("r"))
    }
}

/// The first-issuance watch: silent until it knows the issued names, then each new name once.
@Suite struct FirstIssuanceWatchTests {
    @Test func eachNewNameIsReportedOnceAfterTheKnownNamesAreLoaded() {
        let watch = FirstIssuanceWatch()
        #expect(watch.unseen(["a.internal"]).isEmpty, "nothing before load")
        watch.load(["a.internal", "10.0.0.1"])
        #expect(watch.unseen(["a.internal", "10.0.0.1"]).isEmpty)
        #expect(watch.unseen(["b.internal", "a.internal", "b.internal"]) == ["b.internal"])
        #expect(watch.unseen(["b.internal"]).isEmpty)
        let many = (0..<10_000).map { "host-\($0).internal" }
        #expect(watch.unseen(many) == many, "no two of 10,000 names share a hash")
        #expect(watch.unseen(many).isEmpty)
    }
}
