import Foundation
import Testing
import TestSupport

/// Renewal (mTLS and x5c token), revocation (holder, provisioner token, `ca revoke`) and the CRL,
/// through our client and an independent one, checked with openssl.
@Suite(.serialized) struct RenewRevokeEndToEndTests {
    static let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources").path

    final class Setup: @unchecked Sendable {
        let ca: RunningCA
        let fingerprint: String
        var provisionerPassword: String { ca.sandbox.configDir + "/provisioner-password" }

        init() throws {
            ca = try RunningCA()
            fingerprint = try ca.fingerprint
        }

        func file(_ name: String) -> String { ca.sandbox.root.file(name) }

        @discardableResult
        func issue(_ name: String, san: String) throws -> String {
            let result = try ca.sandbox.run([
                "cert", "issue", "--ca-url", ca.url, "--fingerprint", fingerprint, "--san", san,
                "--out-cert", file(name + ".crt"), "--out-key", file(name + ".key"), "--password-file", provisionerPassword,
            ])
            guard result.status == 0 else { throw TestFailure("cert issue: \(result)") }
            return try serial(file(name + ".crt"))
        }

        func serial(_ path: String) throws -> String {
            let out = try runProcess("openssl", ["x509", "-in", path, "-noout", "-serial"]).stdout
            return String(out.split(separator: "=").last ?? "").trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        }

        func renew(_ name: String, method: String, out: String) throws -> ProcessResult {
            try ca.sandbox.run([
                "cert", "renew", "--ca-url", ca.url, "--fingerprint", fingerprint, "--cert", file(name + ".crt"),
                "--key", file(name + ".key"), "--out-cert", file(out + ".crt"), "--method", method,
            ])
        }

        func python(_ mode: String, chain: String, key: String, out: String) throws -> [String: Any] {
            let result = try runProcess("python3", [
                RenewRevokeEndToEndTests.resources + "/renewal_client.py", ca.url, ca.rootPath, chain, key, mode, out,
            ])
            guard result.status == 0 else { throw TestFailure("python \(mode): \(result)") }
            return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
        }

        func crlPEM(_ path: String = "/crl") throws -> String {
            let result = try runProcess("curl", ["-sf", "--cacert", ca.rootPath, ca.url + path + "?pem"])
            guard result.status == 0 else { throw TestFailure("GET \(path)?pem: \(result)") }
            return result.stdout
        }

        /// Serials on a CRL, lower-case hex without leading zeros.
        func crlSerials(_ path: String = "/crl") throws -> Set<String> {
            let text = try runProcess("sh", ["-c", "openssl crl -noout -text"], stdin: try crlPEM(path)).stdout
            return Set(text.split(separator: "\n").compactMap { line -> String? in
                let trimmed = line.trimmingCharacters(in: .whitespaces)
                guard trimmed.hasPrefix("Serial Number:") else { return nil }
                return trimmed.dropFirst("Serial Number:".count).trimmingCharacters(in: .whitespaces).lowercased()
            }.map { String($0.drop { $0 == "0" }) })
        }
    }

    @Test func renewalByBothMethodsAndBothClients() throws {
        let s = try Setup()
        let original = try s.issue("a", san: "renew.internal")
        let key = try readFile(s.file("a.key"))

        let mtls = try s.renew("a", method: "mtls", out: "a2")
        #expect(mtls.status == 0, "\(mtls)\n\(s.ca.log)")
        try FileManager.default.copyItem(atPath: s.file("a.key"), toPath: s.file("a2.key"))
        let renewedMTLS = try s.serial(s.file("a2.crt"))
        #expect(renewedMTLS != original)
        let token = try s.renew("a2", method: "token", out: "a3")
        #expect(token.status == 0, "\(token)")
        try FileManager.default.copyItem(atPath: s.file("a.key"), toPath: s.file("a3.key"))
        let renewedToken = try s.serial(s.file("a3.crt"))

        // Same names, same key, same lifetime; the chain verifies strictly.
        for name in ["a2", "a3"] {
            let text = try runProcess("openssl", ["x509", "-in", s.file(name + ".crt"), "-noout", "-text"]).stdout
            #expect(text.contains("DNS:renew.internal"))
            let verify = try runProcess("openssl", ["verify", "-x509_strict", "-CAfile", s.ca.rootPath, "-untrusted", s.file(name + ".crt"), s.file(name + ".crt")])
            #expect(verify.status == 0, "\(verify)")
            #expect(try runProcess("openssl", ["x509", "-in", s.file(name + ".crt"), "-noout", "-pubkey"]).stdout
                    == (try runProcess("openssl", ["pkey", "-in", s.file("a.key"), "-pubout"]).stdout))
        }
        #expect(try readFile(s.file("a.key")) == key)
        let shown = try s.ca.sandbox.run(["ca", "certs", "show", renewedToken])
        #expect(shown.stdout.contains("Renewed from: \(renewedMTLS.count % 2 == 1 ? "0" + renewedMTLS : renewedMTLS)"), "\(shown)")

        // The independent client: mutual TLS with Python's ssl, then an x5c token made with jwcrypto.
        let python1 = try s.python("renew-mtls", chain: s.file("a3.crt"), key: s.file("a.key"), out: s.file("a4.crt"))
        #expect(python1["status"] as? Int == 201, "\(python1)")
        let python2 = try s.python("renew-x5c", chain: s.file("a4.crt"), key: s.file("a.key"), out: s.file("a5.crt"))
        #expect(python2["status"] as? Int == 201, "\(python2)")
        let events = try s.ca.auditEvents().filter { $0["event"] as? String == "certificate.renewed" }
        #expect(events.count == 4)
    }

    @Test func revokedForeignAndLongExpiredCertificatesAreNotRenewed() throws {
        let s = try Setup()
        let serial = try s.issue("r", san: "revoked.internal")
        // Revoked by its holder (our client, mutual TLS).
        let revoke = try s.ca.sandbox.run([
            "cert", "revoke", "--ca-url", s.ca.url, "--fingerprint", s.fingerprint, "--cert", s.file("r.crt"),
            "--key", s.file("r.key"), "--reason-code", "1", "--reason", "key leaked",
        ])
        #expect(revoke.status == 0, "\(revoke)")
        for method in ["mtls", "token"] {
            let refused = try s.renew("r", method: method, out: "r2")
            #expect(refused.status != 0 && refused.stderr.contains("revoked"), "\(method): \(refused)")
        }
        #expect(!FileManager.default.fileExists(atPath: s.file("r2.crt")))
        let show = try s.ca.sandbox.run(["ca", "certs", "list", "--revoked", "--json"])
        #expect(show.stdout.contains(serial) && show.stdout.contains("key leaked") && show.stdout.contains("holder"))

        // A certificate from another CA: refused at TLS for mTLS, with a message for a token.
        let foreign = try runProcess("python3", [Self.resources + "/forge_certificate.py", "foreign", s.file("f.crt"), s.file("f.key")])
        #expect(foreign.status == 0, "\(foreign)")
        let foreignToken = try s.python("renew-x5c", chain: s.file("f.crt"), key: s.file("f.key"), out: s.file("f2.crt"))
        #expect(foreignToken["status"] as? Int == 401 && (foreignToken["message"] as? String ?? "").contains("not issued by this CA"), "\(foreignToken)")
        let foreignTLS = try s.renew("f", method: "mtls", out: "f3")
        #expect(foreignTLS.status != 0)

        // Signed by our intermediate but expired three days ago: far beyond the 5 % grace window.
        let expired = try runProcess("python3", [
            Self.resources + "/forge_certificate.py", "expired", s.file("e.crt"), s.file("e.key"),
            s.ca.sandbox.caDir + "/certs/intermediate_ca.crt", s.ca.sandbox.caDir + "/secrets/intermediate_ca_key",
            s.ca.sandbox.configDir + "/ca-password",
        ])
        #expect(expired.status == 0, "\(expired)")
        let expiredToken = try s.renew("e", method: "token", out: "e2")
        #expect(expiredToken.status != 0 && expiredToken.stderr.contains("grace window"), "\(expiredToken)")

        let refusals = try s.ca.auditEvents().filter { $0["event"] as? String == "renewal.refused" }.compactMap { $0["reason"] as? String }
        #expect(refusals.contains { $0.contains("revoked") })
        #expect(refusals.contains { $0.contains("grace window") })
        // A foreign certificate is an authentication failure, refused before the token's claims are read.
        let failures = try s.ca.auditEvents().filter { $0["event"] as? String == "auth.failure" }.compactMap { $0["reason"] as? String }
        #expect(failures.contains { $0.contains("not issued by this CA") })
    }

    /// A browser that holds a certificate of this CA sends it with any request a page makes, other
    /// sites' pages included: a certificate presented over mutual TLS renews or revokes only on a
    /// request no page could have sent by itself (no Origin, no cross-site Sec-Fetch-Site, no form or
    /// text/plain body). curl stands in for the browser, the same certificate for the one it holds.
    @Test func aWebPageCannotRenewOrRevokeWithTheBrowsersClientCertificate() throws {
        let s = try Setup()
        let serial = try s.issue("b", san: "browser.internal")
        let decimal = try runProcess("python3", ["-c", "import sys; print(int(sys.argv[1], 16))", serial]).stdout
            .trimmingCharacters(in: .newlines)
        let body = #"{"serial":"\#(decimal)","reasonCode":1,"passive":true}"#
        func post(_ path: String, _ headers: [String], body: String?) throws -> (status: String, body: String) {
            var arguments = ["-s", "-o", "/dev/stderr", "-w", "%{http_code}", "--cacert", s.ca.rootPath,
                             "--cert", s.file("b.crt"), "--key", s.file("b.key"), "-X", "POST", s.ca.url + path]
            for header in headers { arguments += ["-H", header] }
            if let body { arguments += ["--data-binary", body] }
            let result = try runProcess("curl", arguments)
            return (result.stdout, result.stderr)
        }
        let pages: [(String, [String], String?)] = [
            ("/revoke", ["Content-Type: application/json", "Origin: https://evil.example"], body),
            ("/revoke", ["Content-Type: text/plain;charset=UTF-8"], body),
            ("/revoke", ["Content-Type: application/x-www-form-urlencoded"], body),
            ("/revoke", ["Content-Type: multipart/form-data; boundary=x"], body),
            ("/revoke", ["Content-Type: application/json", "Sec-Fetch-Site: cross-site"], body),
            ("/renew", ["Origin: null"], nil),
            ("/renew", ["Content-Type: text/plain"], ""),
            ("/renew", ["Sec-Fetch-Site: same-site"], nil),
        ]
        for (path, headers, body) in pages {
            let answer = try post(path, headers, body: body)
            #expect(answer.status == "403" && answer.body.contains("a web page could have sent"), "\(path) \(headers): \(answer)")
        }
        #expect(try s.crlSerials().isEmpty)
        #expect(try s.ca.auditEvents().filter { $0["event"] as? String == "certificate.renewed" }.isEmpty)
        #expect(try s.ca.auditEvents().filter { ($0["reason"] as? String ?? "").contains("a web page could have sent") }.count == pages.count)

        // The same certificate from a program (or the user's own navigation): renewed, then revoked.
        let renewed = try post("/renew", ["Content-Type: application/json", "Sec-Fetch-Site: none"], body: nil)
        #expect(renewed.status == "201", "\(renewed)")
        let revoked = try post("/revoke", ["Content-Type: application/json"], body: body)
        #expect(revoked.status == "200", "\(revoked)")
        #expect(try s.crlSerials().contains(String(serial.drop { $0 == "0" })))
    }

    @Test func revocationPathsAndTheCRL() throws {
        let s = try Setup()
        let keep = try s.issue("keep", san: "keep.internal")
        let holder = try s.issue("holder", san: "holder.internal")
        let byProvisioner = try s.issue("prov", san: "prov.internal")
        let byAdmin = try s.issue("admin", san: "admin.internal")
        let byPython = try s.issue("py", san: "py.internal")
        #expect(try s.crlSerials().isEmpty)

        let holderRevoke = try s.ca.sandbox.run([
            "cert", "revoke", "--ca-url", s.ca.url, "--fingerprint", s.fingerprint, "--cert", s.file("holder.crt"),
            "--key", s.file("holder.key"), "--method", "token",
        ])
        #expect(holderRevoke.status == 0, "\(holderRevoke)")
        // Published at once: the CRL lists it immediately after the call returns.
        #expect(try s.crlSerials() == [holder].map { String($0.drop { $0 == "0" }) }.reduce(into: Set<String>()) { $0.insert($1) })

        let provisionerRevoke = try s.ca.sandbox.run([
            "cert", "revoke", "--ca-url", s.ca.url, "--fingerprint", s.fingerprint, "--serial", byProvisioner,
            "--password-file", s.provisionerPassword, "--reason-code", "5",
        ])
        #expect(provisionerRevoke.status == 0, "\(provisionerRevoke)")
        let python = try s.python("revoke-x5c", chain: s.file("py.crt"), key: s.file("py.key"), out: s.file("unused"))
        #expect(python["status"] as? Int == 200, "\(python)")

        // `ca revoke` writes to the database directly; the running server publishes it within seconds.
        let decimal = try runProcess("python3", ["-c", "import sys; print(int(sys.argv[1], 16))", byAdmin]).stdout.trimmingCharacters(in: .newlines)
        let admin = try s.ca.sandbox.run(["ca", "revoke", decimal, "--reason", "decommissioned", "--reason-code", "5"])
        #expect(admin.status == 0, "\(admin)")
        let expected = Set([holder, byProvisioner, byAdmin, byPython].map { String($0.drop { $0 == "0" }) })
        var listed = try s.crlSerials()
        for _ in 0..<30 where listed != expected {
            usleep(500_000)
            listed = try s.crlSerials()
        }
        #expect(listed == expected, "CRL lists \(listed), expected \(expected)")
        #expect(!listed.contains(String(keep.drop { $0 == "0" })))

        // openssl: the CRL verifies against the intermediate, and -crl_check refuses revoked certificates only.
        let crl = try s.ca.sandbox.root.write("crl.pem", try s.crlPEM())
        let intermediate = s.ca.sandbox.caDir + "/certs/intermediate_ca.crt"
        let chain = try s.ca.sandbox.root.write("chain.pem", try readFile(s.ca.rootPath) + (try readFile(intermediate)))
        let crlVerify = try runProcess("openssl", ["crl", "-in", crl, "-CAfile", chain, "-noout", "-verify"])
        #expect(crlVerify.status == 0 && (crlVerify.stdout + crlVerify.stderr).contains("verify OK"), "\(crlVerify)")
        let text = try runProcess("openssl", ["crl", "-in", crl, "-noout", "-text"]).stdout
        #expect(text.contains("CRL Version 2") || text.contains("Version 2 (0x1)"), "\(text)")
        #expect(text.contains("X509v3 CRL Number") && text.contains("X509v3 Authority Key Identifier") && text.contains("Next Update"))
        #expect(text.contains("Key Compromise") == false && text.contains("Cessation Of Operation"), "\(text)")
        for (name, revoked) in [("keep", false), ("holder", true), ("admin", true), ("prov", true)] {
            let result = try runProcess("openssl", [
                "verify", "-crl_check", "-CAfile", s.ca.rootPath, "-untrusted", intermediate, "-CRLfile", crl, s.file(name + ".crt"),
            ])
            if revoked {
                #expect(result.status != 0 && (result.stdout + result.stderr).contains("certificate revoked"), "\(name): \(result)")
            } else {
                #expect(result.status == 0, "\(name): \(result)")
            }
        }
        // DER at /crl, the same list.
        let der = try runProcess("sh", ["-c", "curl -sf --cacert \(s.ca.rootPath) \(s.ca.url)/1.0/crl | openssl crl -inform DER -noout -text"])
        #expect(der.status == 0 && der.stdout.contains("Revoked Certificates"), "\(der)")
        let events = try s.ca.auditEvents().filter { $0["event"] as? String == "certificate.revoked" }
        #expect(events.count == 4)
        #expect(Set(events.compactMap { ($0["detail"] as? String)?.components(separatedBy: "by ").last }) == ["holder", "provisioner:admin", "admin"])
    }

    @Test func afterARotationEachIntermediateHasItsOwnCRL() throws {
        let s = try Setup()
        let oldIntermediate = try s.ca.sandbox.root.write(
            "old-intermediate.pem", try readFile(s.ca.sandbox.caDir + "/certs/intermediate_ca.crt"))
        let before = try s.issue("before", san: "before.rotation.internal")
        let rotated = try s.ca.sandbox.run(["ca", "rotate-intermediate", "--yes"])
        #expect(rotated.status == 0, "\(rotated)")
        try s.ca.restart()
        let archived = try FileManager.default.contentsOfDirectory(atPath: s.ca.sandbox.caDir + "/certs/intermediates")
        let oldSerial = try #require(archived.first).replacingOccurrences(of: ".crt", with: "")
        let after = try s.issue("after", san: "after.rotation.internal")
        #expect(try s.crlSerials().isEmpty && s.crlSerials("/crl/" + oldSerial).isEmpty)

        // Both revoked with `ca revoke` while the server runs: each appears on its own issuer's CRL only.
        for serial in [before, after] {
            let revoked = try s.ca.sandbox.run(["ca", "revoke", serial, "--reason-code", "4"])
            #expect(revoked.status == 0, "\(revoked)")
        }
        func stripped(_ serial: String) -> String { String(serial.drop { $0 == "0" }) }
        var current = try s.crlSerials(), old = try s.crlSerials("/1.0/crl/" + oldSerial)
        for _ in 0..<30 where current != [stripped(after)] || old != [stripped(before)] {
            usleep(500_000)
            current = try s.crlSerials()
            old = try s.crlSerials("/1.0/crl/" + oldSerial)
        }
        #expect(current == [stripped(after)], "current CRL: \(current)")
        #expect(old == [stripped(before)], "archived intermediate's CRL: \(old)")

        // openssl: the old CRL is signed by the old intermediate, and -crl_check refuses the revoked
        // certificate under it (before this, no CRL existed for that issuer at all).
        let oldCRL = try s.ca.sandbox.root.write("old-crl.pem", try s.crlPEM("/crl/" + oldSerial))
        let chain = try s.ca.sandbox.root.write("old-chain.pem", try readFile(s.ca.rootPath) + (try readFile(oldIntermediate)))
        let crlVerify = try runProcess("openssl", ["crl", "-in", oldCRL, "-CAfile", chain, "-noout", "-verify"])
        #expect(crlVerify.status == 0 && (crlVerify.stdout + crlVerify.stderr).contains("verify OK"), "\(crlVerify)")
        let check = try runProcess("openssl", [
            "verify", "-crl_check", "-CAfile", s.ca.rootPath, "-untrusted", oldIntermediate, "-CRLfile", oldCRL, s.file("before.crt"),
        ])
        #expect(check.status != 0 && (check.stdout + check.stderr).contains("certificate revoked"), "\(check)")
        // The current intermediate's serial names the current CRL; an unknown one is a JSON 404.
        let currentSerial = try s.serial(s.ca.sandbox.caDir + "/certs/intermediate_ca.crt")
        #expect(try s.crlSerials("/crl/" + currentSerial) == [stripped(after)])
        let missing = try runProcess("curl", ["-s", "--cacert", s.ca.rootPath, "-w", "\n%{http_code}", s.ca.url + "/crl/00ff"])
        #expect(missing.stdout.hasSuffix("404") && missing.stdout.contains("no CRL for an intermediate"), "\(missing)")
    }

    /// A leaked intermediate key: `rotate-intermediate --compromised SERIAL` has the root revoke the
    /// current intermediate and the archived ones in its own CRL (openssl verifies it with the root
    /// and refuses them under it), deletes their keys, and what they signed neither renews nor
    /// revokes any more; naming an intermediate that is not the current one changes nothing.
    @Test func aCompromisedIntermediateIsRevokedByTheRootAndRenewsNothing() throws {
        let s = try Setup()
        // From `ca init` on, the root has a CRL (number 1, empty), so that clients checking CRLs
        // for the whole chain work: curl --crlfile with both CRLs in one file, as operations.md says.
        let first = try s.ca.sandbox.root.write("root-crl-1.pem", try s.crlPEM("/crl/root"))
        let firstText = try runProcess("openssl", ["crl", "-in", first, "-CAfile", s.ca.rootPath, "-noout", "-verify", "-text"])
        #expect(firstText.status == 0 && firstText.stdout.contains("No Revoked Certificates"), "\(firstText)")
        let both = try s.ca.sandbox.root.write("chain-crls.pem", try s.crlPEM("/crl") + (try s.crlPEM("/crl/root")))
        let checked = try runProcess("curl", ["-sf", "--crlfile", both, "--cacert", s.ca.rootPath, s.ca.url + "/health"])
        #expect(checked.status == 0, "curl --crlfile with the intermediate's and the root's CRL: \(checked)")
        // One intermediate archived by an ordinary rotation, then the current one leaks.
        let archivedIntermediate = try s.ca.sandbox.root.write(
            "archived-intermediate.pem", try readFile(s.ca.sandbox.caDir + "/certs/intermediate_ca.crt"))
        let archivedSerial = try s.serial(archivedIntermediate)
        #expect(try s.ca.sandbox.run(["ca", "rotate-intermediate", "--yes"]).status == 0)
        try s.ca.restart()
        let oldIntermediate = try s.ca.sandbox.root.write(
            "old-intermediate.pem", try readFile(s.ca.sandbox.caDir + "/certs/intermediate_ca.crt"))
        let oldSerial = try s.serial(oldIntermediate)
        try s.issue("before", san: "before.compromise.internal")
        let wrong = try s.ca.sandbox.run(["ca", "rotate-intermediate", "--compromised", archivedSerial, "--yes"])
        #expect(wrong.status == 2 && wrong.stderr.contains("not the current intermediate"), "\(wrong)")
        let unchanged = try runProcess("openssl", ["crl", "-in", s.ca.sandbox.caDir + "/certs/root_ca.crl", "-inform", "DER", "-noout", "-crlnumber"])
        #expect(unchanged.stdout.contains("crlNumber=0x01"), "a refused rotation changes nothing: \(unchanged)")
        let rotated = try s.ca.sandbox.run(["ca", "rotate-intermediate", "--compromised", oldSerial, "--yes"])
        #expect(rotated.status == 0 && rotated.stdout.contains("revoked by the root"), "\(rotated)")
        #expect(!FileManager.default.fileExists(atPath: s.ca.sandbox.caDir + "/certs/intermediates/\(oldSerial).crt"))
        for serial in [oldSerial, archivedSerial] {
            #expect(!FileManager.default.fileExists(atPath: s.ca.sandbox.caDir + "/secrets/intermediates/\(serial).key"), "\(serial)'s key is kept")
        }
        // Naming it again (it is no longer the current one) revokes nothing more.
        let again = try s.ca.sandbox.run(["ca", "rotate-intermediate", "--compromised", oldSerial, "--yes"])
        #expect(again.status == 2, "\(again)")
        try s.ca.restart()

        let arl = try s.ca.sandbox.root.write("root-crl.pem", try s.crlPEM("/1.0/crl/ROOT"))
        let signed = try runProcess("openssl", ["crl", "-in", arl, "-CAfile", s.ca.rootPath, "-noout", "-verify", "-text"])
        #expect(signed.status == 0 && (signed.stdout + signed.stderr).contains("verify OK"), "\(signed)")
        for serial in [oldSerial, archivedSerial] {
            #expect(signed.stdout.uppercased().contains(String(serial.uppercased().drop { $0 == "0" })), "\(serial): \(signed)")
        }
        #expect(signed.stdout.contains("CA Compromise"), "\(signed)")
        let number = signed.stdout.components(separatedBy: "CRL Number:").dropFirst().first?
            .trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").first.map(String.init)
        #expect(number == "2", "the root CRL of the first compromise is number 2 (ca init wrote 1): \(signed)")
        for intermediate in [oldIntermediate, archivedIntermediate] {
            let refused = try runProcess("openssl", ["verify", "-crl_check", "-CAfile", s.ca.rootPath, "-CRLfile", arl, intermediate])
            #expect(refused.status != 0 && (refused.stdout + refused.stderr).contains("certificate revoked"), "\(refused)")
        }

        let byToken = try s.renew("before", method: "token", out: "after-token")
        #expect(byToken.status != 0 && byToken.stderr.contains("not issued by this CA"), "\(byToken)")
        let byMTLS = try s.renew("before", method: "mtls", out: "after-mtls")
        #expect(byMTLS.status != 0, "\(byMTLS)")
        for out in ["after-token", "after-mtls"] { #expect(!FileManager.default.fileExists(atPath: s.file(out + ".crt"))) }
        let revoke = try s.ca.sandbox.run([
            "cert", "revoke", "--ca-url", s.ca.url, "--fingerprint", s.fingerprint, "--cert", s.file("before.crt"), "--key", s.file("before.key"),
        ])
        #expect(revoke.status != 0, "\(revoke)")
        // A new certificate comes from the new intermediate, which the root has not revoked.
        try s.issue("fresh", san: "after.compromise.internal")
        let fresh = try runProcess("openssl", [
            "verify", "-crl_check", "-CAfile", s.ca.rootPath, "-CRLfile", arl, s.ca.sandbox.caDir + "/certs/intermediate_ca.crt",
        ])
        #expect(fresh.status == 0, "\(fresh)")
    }

    func certificateCount(_ s: Setup) throws -> Int {
        let listed = try s.ca.sandbox.run(["ca", "certs", "list", "--json"])
        return (try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [Any])?.count ?? -1
    }

    /// The reported crash: an x5c token of a self-signed certificate with `exp` 1e19 (or nbf -9e18,
    /// exp 9e18) on /renew and as the `ott` of /revoke ended `ca serve`.
    @Test func x5cTokensWithHugeTimesFromAForeignCertificateAreRefusedAndTheServerStaysUp() throws {
        let s = try Setup()
        let forged = try runProcess("python3", [Self.resources + "/forge_certificate.py", "foreign", s.file("f.crt"), s.file("f.key")])
        #expect(forged.status == 0, "\(forged)")
        let before = try certificateCount(s)
        let now = Int(Date().timeIntervalSince1970)
        for times in ["\(now),1e19", "-9e18,9e18", "\(now),1e400"] {
            for mode in ["renew-x5c", "revoke-x5c"] {
                let result = try runProcess(
                    "env", ["X5C_TIMES=\(times)", "python3", Self.resources + "/renewal_client.py", s.ca.url, s.ca.rootPath,
                            s.file("f.crt"), s.file("f.key"), mode, s.file("out.crt")])
                let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any] ?? [:]
                #expect(object["status"] as? Int == 401, "\(mode) \(times): \(result)")
                #expect(s.ca.process.isRunning, "\(mode) \(times) stopped the server: \(s.ca.log)")
            }
        }
        #expect(try runProcess("curl", ["-sf", "--cacert", s.ca.rootPath, s.ca.url + "/health"]).status == 0)
        #expect(try certificateCount(s) == before)
        let failures = try s.ca.auditEvents().filter { $0["event"] as? String == "auth.failure" }
        #expect(failures.count == 6 && failures.allSatisfy { ($0["reason"] as? String ?? "").contains("not issued by this CA") }, "\(failures)")
    }

    /// Renewal keeps the key: revoking a certificate revokes the earlier one with its key (both on
    /// the CRL), neither renews, and the CA issues nothing for that key again (issue A, renew to B,
    /// revoke B, then A is revoked, refused renewal, and a /sign with A's key is refused).
    @Test func revokingARenewedCertificateRevokesItsPredecessorAndItsKey() throws {
        let s = try Setup()
        let first = try s.issue("a", san: "keyed.internal")
        let renewed = try s.renew("a", method: "mtls", out: "b")
        #expect(renewed.status == 0, "\(renewed)")
        let second = try s.serial(s.file("b.crt"))
        // OCSP for A, asked first so the server holds a cached "good" for it.
        func ocspForA() throws -> String {
            try runProcess("openssl", [
                "ocsp", "-issuer", s.ca.sandbox.caDir + "/certs/intermediate_ca.crt", "-cert", s.file("a.crt"),
                "-url", s.ca.url + "/ocsp", "-CAfile", s.ca.rootPath,
            ]).stdout
        }
        #expect(try ocspForA().contains(": good"))
        let revoke = try s.ca.sandbox.run([
            "cert", "revoke", "--ca-url", s.ca.url, "--fingerprint", s.fingerprint, "--cert", s.file("b.crt"), "--key", s.file("a.key"),
            "--reason-code", "1", "--reason", "key compromise",
        ])
        #expect(revoke.status == 0, "\(revoke)")
        let status = try ocspForA()
        #expect(status.contains(": revoked") && status.contains("keyCompromise"), "\(status)")
        let stripped = { (serial: String) in String(serial.drop { $0 == "0" }) }
        #expect(try s.crlSerials().isSuperset(of: [stripped(first), stripped(second)]), "both serials are on the CRL")
        let crl = try s.ca.sandbox.root.write("crl.pem", try s.crlPEM())
        let verify = try runProcess("openssl", [
            "verify", "-crl_check", "-CAfile", s.ca.rootPath, "-untrusted", s.file("a.crt"), "-CRLfile", crl, s.file("a.crt"),
        ])
        #expect(verify.status != 0 && (verify.stdout + verify.stderr).contains("revoked"), "\(verify)")
        for method in ["mtls", "token"] {
            let refused = try s.renew("a", method: method, out: "c-\(method)")
            #expect(refused.status != 0 && refused.stderr.contains("revoked"), "\(method): \(refused)")
            #expect(!FileManager.default.fileExists(atPath: s.file("c-\(method).crt")))
        }
        let signed = try runProcess("python3", [
            Self.resources + "/provisioner_sign.py", s.ca.url, s.ca.rootPath, "-", "admin", s.provisionerPassword, "keyed.internal",
            s.file("a.key"),
        ])
        let answer = try JSONSerialization.jsonObject(with: Data(signed.stdout.utf8)) as? [String: Any] ?? [:]
        #expect(answer["status"] as? Int == 403 && (answer["message"] as? String ?? "").contains("same key"), "\(signed)")
        let revoked = try s.ca.auditEvents().filter { $0["event"] as? String == "certificate.revoked" }
        #expect(revoked.contains { $0["serial"] as? String == first && ($0["detail"] as? String ?? "").contains("same key as \(second)") }, "\(revoked)")

        // `ca revoke` on the CA host does the same and names what it revoked with the key.
        let third = try s.issue("c", san: "admin-keyed.internal")
        #expect(try s.renew("c", method: "mtls", out: "d").status == 0)
        let fourth = try s.serial(s.file("d.crt"))
        let admin = try s.ca.sandbox.run(["ca", "revoke", fourth, "--reason-code", "1"])
        #expect(admin.status == 0 && admin.stdout.contains("Also revoked, for having the same key: \(third)"), "\(admin)")
    }

    /// Over mutual TLS the handshake takes an expired leaf of this CA and the authority applies the
    /// grace window (a refusal that names it, not a TLS alert); a foreign leaf fails the handshake.
    @Test func mutualTLSLeavesExpiredCertificatesToTheGraceWindowAndRefusesForeignOnes() throws {
        let s = try Setup()
        let expired = try runProcess("python3", [
            Self.resources + "/forge_certificate.py", "expired", s.file("e.crt"), s.file("e.key"),
            s.ca.sandbox.caDir + "/certs/intermediate_ca.crt", s.ca.sandbox.caDir + "/secrets/intermediate_ca_key",
            s.ca.sandbox.configDir + "/ca-password",
        ])
        #expect(expired.status == 0, "\(expired)")
        let answer = try runProcess("curl", [
            "-s", "--cacert", s.ca.rootPath, "--cert", s.file("e.crt"), "--key", s.file("e.key"), "-X", "POST",
            "-w", "\\n%{http_code}", s.ca.url + "/1.0/renew",
        ])
        #expect(answer.status == 0 && answer.stdout.hasSuffix("403") && answer.stdout.contains("grace window"), "\(answer)")
        let foreign = try runProcess("python3", [Self.resources + "/forge_certificate.py", "foreign", s.file("f.crt"), s.file("f.key")])
        #expect(foreign.status == 0)
        let refused = try runProcess("curl", [
            "-s", "--cacert", s.ca.rootPath, "--cert", s.file("f.crt"), "--key", s.file("f.key"), "-X", "POST", s.ca.url + "/1.0/renew",
        ])
        #expect(refused.status != 0, "a foreign client certificate passed the handshake: \(refused)")
        #expect(s.ca.process.isRunning)
    }
}
