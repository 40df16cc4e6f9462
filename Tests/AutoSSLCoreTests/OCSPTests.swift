@testable import AutoSSLCore
import Foundation
import Testing
import TestSupport
import X509

/// The OCSP codec against independent implementations: requests made by `openssl ocsp -reqout`,
/// responses read and verified by `openssl ocsp -respin` and by Python's `cryptography`.
@Suite struct OCSPTests {
    struct PKI {
        let dir = TemporaryDirectory()
        let root: Certificate
        let intermediate: Certificate
        let key: SigningKey
        let leaves: [Certificate]
        var rootFile: String { dir.file("root.pem") }
        var intermediateFile: String { dir.file("int.pem") }
        func leafFile(_ index: Int) -> String { dir.file("leaf\(index).pem") }

        init(_ algorithm: KeyAlgorithm = .p256) throws {
            let now = Date()
            let rootKey = try SigningKey.generate(.p384)
            root = try CertificateProfiles.root(caName: "OCSP Test", key: rootKey, notBefore: now - 60, notAfter: now + 86_400 * 365)
            key = try SigningKey.generate(algorithm)
            intermediate = try CertificateProfiles.intermediate(
                caName: "OCSP Test", publicKey: key.publicKey, root: root, rootKey: rootKey, notBefore: now - 60,
                notAfter: now + 86_400 * 300)
            var leaves: [Certificate] = []
            for index in 0..<2 {
                leaves.append(try CertificateProfiles.leaf(
                    names: [.dns("leaf\(index).test")], publicKey: try SigningKey.generate(.p256).publicKey,
                    serial: CertificateProfiles.randomSerial(), issuer: intermediate, issuerKey: key, notBefore: now - 60,
                    notAfter: now + 86_400))
            }
            self.leaves = leaves
            _ = try dir.write("root.pem", try root.pemString())
            _ = try dir.write("int.pem", try intermediate.pemString())
            for (index, leaf) in leaves.enumerated() { _ = try dir.write("leaf\(index).pem", try leaf.pemString()) }
        }

        /// A request made by openssl for the given leaves.
        func opensslRequest(_ indexes: [Int], extra: [String] = []) throws -> (path: String, der: [UInt8]) {
            let path = dir.file("req-\(indexes.map(String.init).joined())-\(extra.joined().filter(\.isLetter)).der")
            var arguments = ["ocsp", "-issuer", intermediateFile, "-reqout", path] + extra
            for index in indexes { arguments += ["-cert", leafFile(index)] }
            let made = try runProcess("openssl", arguments)
            #expect(made.status == 0, "\(made)")
            return (path, Array(try Data(contentsOf: URL(fileURLWithPath: path))))
        }

        func respond(_ request: OCSP.Request, statuses: [OCSP.CertStatus], now: Date = Date()) throws -> String {
            let hashes = try OCSP.IssuerHashes(issuer: intermediate)
            let singles = zip(request.certIDs, statuses).map {
                OCSP.SingleResponse(certID: $0, status: $1, thisUpdate: now - 60, nextUpdate: now + 3600)
            }
            let der = try OCSP.successfulResponse(
                responderKeyHash: hashes.responderKeyHash, signer: key, producedAt: now, responses: singles, nonce: request.nonce)
            return try dir.writeData("resp-\(UUID().uuidString).der", der)
        }
    }

    @Test(arguments: [[String](), ["-sha256"], ["-no_nonce"]])
    func readsOpenSSLRequests(extra: [String]) throws {
        let pki = try PKI()
        let (_, der) = try pki.opensslRequest([0, 1], extra: extra)
        let request = try OCSP.parseRequest(der)
        let hashes = try OCSP.IssuerHashes(issuer: pki.intermediate)
        #expect(request.certIDs.map(\.serialHex) == pki.leaves.map(\.serialNumber.hexString))
        #expect(request.certIDs.allSatisfy(hashes.matches))
        #expect(request.certIDs.allSatisfy { $0.hashAlgorithm == (extra == ["-sha256"] ? .sha256 : .sha1) })
        #expect((request.nonce != nil) == (extra != ["-no_nonce"]))
        // The base64 GET form of the same request, standard and URL-safe, percent-encoded or not.
        let base64 = Data(der).base64EncodedString()
        for form in [base64, base64.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "",
                     base64.replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")] {
            #expect(try OCSP.parseRequest(getPath: form[...]) == request, "\(form)")
        }
    }

    @Test func aCertIDOfAnotherIssuerDoesNotMatch() throws {
        let (ours, other) = (try PKI(), try PKI())
        let request = try OCSP.parseRequest(try other.opensslRequest([0]).der)
        #expect(!(try OCSP.IssuerHashes(issuer: ours.intermediate)).matches(request.certIDs[0]))
    }

    @Test(arguments: [KeyAlgorithm.p256, .rsa2048])
    func opensslVerifiesResponsesAndReadsEachStatusAndTheNonce(algorithm: KeyAlgorithm) throws {
        let pki = try PKI(algorithm)
        let (requestFile, der) = try pki.opensslRequest([0, 1])
        let request = try OCSP.parseRequest(der)
        let revokedAt = Date(timeIntervalSince1970: 1_760_000_000)
        let response = try pki.respond(request, statuses: [.good, .revoked(at: revokedAt, reasonCode: 1)])
        // -reqin without -cert: openssl checks the response against openssl's own request, nonce included.
        let checked = try runProcess("openssl", [
            "ocsp", "-reqin", requestFile, "-respin", response, "-VAfile", pki.intermediateFile, "-CAfile", pki.rootFile, "-resp_text",
        ])
        let output = checked.stdout + checked.stderr
        #expect(checked.status == 0, "\(checked)")
        #expect(output.contains("Response verify OK") && !output.contains("Nonce Verify error") && !output.contains("WARNING"), "\(output)")
        #expect(output.contains("Cert Status: good") && output.contains("Cert Status: revoked"), "\(output)")
        #expect(output.contains("Revocation Reason: keyCompromise (0x1)"), "\(output)")
        #expect(output.contains("Revocation Time: Oct  9 08:53:20 2025 GMT"), "\(output)")
        #expect(output.contains("OCSP Nonce") && output.contains("Responder Id: ") && !output.contains("Responder Id: C = "), "byKey: \(output)")
        // -cert: openssl matches each certificate to its answer.
        let perCertificate = try runProcess("openssl", [
            "ocsp", "-respin", response, "-issuer", pki.intermediateFile, "-VAfile", pki.intermediateFile, "-CAfile", pki.rootFile,
            "-cert", pki.leafFile(0), "-cert", pki.leafFile(1), "-no_nonce",
        ])
        let statuses = perCertificate.stdout + perCertificate.stderr
        #expect(statuses.contains("\(pki.leafFile(0)): good"), "\(statuses)")
        #expect(statuses.contains("\(pki.leafFile(1)): revoked") && statuses.contains("Reason: keyCompromise"), "\(statuses)")
        // Python's cryptography agrees.
        let python = try runPython("""
            import sys
            from cryptography.x509 import ocsp, load_pem_x509_certificate
            from cryptography import x509
            r = ocsp.load_der_ocsp_response(open(sys.argv[1], "rb").read())
            print(r.response_status.name)
            for s in r.responses:
                print(format(s.serial_number, "032x"), s.certificate_status.name, s.revocation_reason, s.revocation_time_utc, int((s.next_update_utc - s.this_update_utc).total_seconds()))
            print(r.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce.hex())
            """, arguments: [response])
        let lines = python.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "SUCCESSFUL", "\(python)")
        #expect(lines.dropFirst().first == "\(pki.leaves[0].serialNumber.hexString) GOOD None None 3660", "\(python)")
        #expect(lines.dropFirst(2).first == "\(pki.leaves[1].serialNumber.hexString) REVOKED ReasonFlags.key_compromise 2025-10-09 08:53:20+00:00 3660", "\(python)")
        // cryptography reads the nonce inside extnValue's OCTET STRING, as openssl wrote it in the request.
        let nonce = try #require(request.nonce)
        #expect(nonce.count == 18 && nonce.prefix(2) == [0x04, 0x10])
        #expect(lines.dropFirst(3).first == Hex.encode(nonce.dropFirst(2)), "nonce echoed: \(python)")
    }

    @Test func unknownAndUnspecifiedRevocationAreWrittenAsRFC6960Says() throws {
        let pki = try PKI()
        let (requestFile, der) = try pki.opensslRequest([0, 1], extra: ["-no_nonce"])
        let request = try OCSP.parseRequest(der)
        let response = try pki.respond(request, statuses: [.unknown, .revoked(at: Date(), reasonCode: 0)])
        let checked = try runProcess("openssl", [
            "ocsp", "-reqin", requestFile, "-respin", response, "-issuer", pki.intermediateFile, "-VAfile", pki.intermediateFile,
            "-cert", pki.leafFile(0), "-cert", pki.leafFile(1), "-no_nonce",
        ])
        let output = checked.stdout + checked.stderr
        #expect(output.contains("\(pki.leafFile(0)): unknown"), "\(output)")
        #expect(output.contains("\(pki.leafFile(1)): revoked") && !output.contains("Reason:"), "\(output)")
    }

    @Test func errorResponsesAreWhatOpenSSLAndCryptographyRead() throws {
        let dir = TemporaryDirectory()
        for (status, name) in [(OCSP.ErrorStatus.malformedRequest, "MALFORMED_REQUEST"), (.internalError, "INTERNAL_ERROR"),
                               (.tryLater, "TRY_LATER"), (.unauthorized, "UNAUTHORIZED")] {
            let file = try dir.writeData("\(name).der", OCSP.errorResponse(status))
            let python = try runPython("""
                import sys
                from cryptography.x509 import ocsp
                print(ocsp.load_der_ocsp_response(open(sys.argv[1], "rb").read()).response_status.name)
                """, arguments: [file])
            #expect(python.stdout == name + "\n", "\(python)")
            let text = try runProcess("openssl", ["ocsp", "-respin", file, "-resp_text", "-noverify"])
            #expect((text.stdout + text.stderr).contains("Responder Error: \(String(describing: status).lowercased()) (\(status.rawValue))"), "\(text)")
        }
    }

    @Test func refusesHostileRequestsWithAnError() throws {
        let pki = try PKI()
        let (_, der) = try pki.opensslRequest([0])
        let refused: [[UInt8]] = [
            [], [0x30], [0x30, 0x00], [0x30, 0x80, 0x00, 0x00], [0x04, 0x00], Array(der.dropLast()), der + [0x00],
            [UInt8](repeating: 0x30, count: OCSP.maximumRequestBytes + 1),
            // A sequence nested far deeper than any request.
            Array(repeating: [0x30, 0x82, 0x0F, 0xFF], count: 64).flatMap { $0 },
        ]
        for bytes in refused {
            #expect(throws: OCSP.MalformedRequest.self, "\(bytes.prefix(8))") { try OCSP.parseRequest(bytes) }
        }
        // More CertIDs than allowed.
        let many = try pki.opensslRequest(Array(repeating: 0, count: OCSP.maximumCertIDs + 1))
        #expect(throws: OCSP.MalformedRequest.self) { try OCSP.parseRequest(many.der) }
        let most = try pki.opensslRequest(Array(repeating: 0, count: OCSP.maximumCertIDs))
        #expect(try OCSP.parseRequest(most.der).certIDs.count == OCSP.maximumCertIDs)
        for path in ["", "!!!", "%zz", "A", String(repeating: "A", count: OCSP.maximumRequestBytes * 2 + 4)] {
            #expect(throws: OCSP.MalformedRequest.self, "\(path.prefix(10))") { try OCSP.parseRequest(getPath: path[...]) }
        }
        // Every truncation and every single-byte change of a real request either parses or throws.
        var random = SeededGenerator(seed: 6960)
        for length in 0..<der.count { _ = try? OCSP.parseRequest(Array(der.prefix(length))) }
        for _ in 0..<5000 {
            var mutated = der
            let index = Int.random(in: 0..<mutated.count, using: &random)
            mutated[index] = UInt8.random(in: 0...255, using: &random)
            _ = try? OCSP.parseRequest(mutated)
        }
    }
}
