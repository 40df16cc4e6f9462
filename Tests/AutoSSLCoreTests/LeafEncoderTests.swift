@testable import AutoSSLCore
import Foundation
import SwiftASN1
import Testing
import X509

/// The leaf encoder must write exactly what swift-certificates writes for `CertificateProfiles.leaf`
/// (the to-be-signed part byte for byte; the signatures differ because ECDSA is randomized), and
/// its certificates must verify under the issuer.
@Suite struct LeafEncoderTests {
    struct Issuer {
        var certificate: Certificate
        var key: SigningKey
        var encoder: LeafEncoder
    }

    static func issuer(_ algorithm: KeyAlgorithm, name: String) throws -> Issuer {
        let now = Date()
        let rootKey = try SigningKey.generate(.p384)
        let root = try CertificateProfiles.root(caName: name, key: rootKey, notBefore: now - 60, notAfter: now + 86_400 * 3650)
        let key = try SigningKey.generate(algorithm)
        let intermediate = try CertificateProfiles.intermediate(
            caName: name, publicKey: key.publicKey, root: root, rootKey: rootKey, notBefore: now - 60,
            notAfter: now + 86_400 * 1825)
        return Issuer(certificate: intermediate, key: key, encoder: try LeafEncoder(issuer: intermediate, issuerKey: key))
    }

    static func randomName(_ random: inout SeededGenerator) throws -> SubjectName {
        switch Int.random(in: 0..<5, using: &random) {
        case 0:
            return try SubjectName(parsing: (0..<4).map { _ in String(UInt8.random(in: 0...255, using: &random)) }.joined(separator: "."))
        case 1:
            return try SubjectName(parsing: (0..<8).map { _ in String(UInt16.random(in: 0...0xFFFF, using: &random), radix: 16) }.joined(separator: ":"))
        default:
            // Labels up to 63 characters, so some names (and SAN lists) need long-form lengths.
            let letters = Array("abcdefghijklmnopqrstuvwxyz0123456789")
            let labels = (0..<Int.random(in: 1...4, using: &random)).map { _ in
                String((0..<Int.random(in: 1...63, using: &random)).map { _ in letters.randomElement(using: &random)! })
            }
            return try SubjectName(parsing: labels.joined(separator: ".") + ".test")
        }
    }

    /// Encodes with both, returns (ours, the library's) after checking ours verifies.
    static func both(
        _ issuer: Issuer, names: [SubjectName], key: Certificate.PublicKey, spki: ArraySlice<UInt8>? = nil,
        notBefore: Date, notAfter: Date, revocation: RevocationPointers = .none
    ) throws -> (ours: Certificate, library: Certificate, oursDER: [UInt8])? {
        let encoder = revocation.isEmpty ? issuer.encoder : try LeafEncoder(issuer: issuer.certificate, issuerKey: issuer.key, revocation: revocation)
        let serial = CertificateProfiles.randomSerial()
        let algorithm = try #require(KeyAlgorithm(publicKey: key))
        guard let der = try encoder.encode(
            names: names, subjectPublicKeyInfo: try spki ?? CertificateProfiles.subjectPublicKeyInfo(of: key)[...], keyAlgorithm: algorithm,
            subjectKeyIdentifier: CertificateProfiles.keyIdentifier(for: key), serial: Array(serial.bytes),
            notBefore: notBefore, notAfter: notAfter) else { return nil }
        let ours = try Certificate(derEncoded: der)
        let library = try CertificateProfiles.leaf(
            names: names, publicKey: key, serial: serial, issuer: issuer.certificate, issuerKey: issuer.key,
            notBefore: notBefore, notAfter: notAfter, revocation: revocation)
        #expect(issuer.certificate.publicKey.isValidSignature(ours.signature, for: ours))
        #expect(try ours.derBytes() == der)
        return (ours, library, der)
    }

    @Test func writesTheLibrarysBytesForEveryIssuerAndKeyType() throws {
        var random = SeededGenerator(seed: 2026)
        let leafKeys = try [KeyAlgorithm.p256, .p384, .rsa2048].map { try SigningKey.generate($0).publicKey }
        for algorithm in [KeyAlgorithm.p256, .p384, .rsa2048] {
            let issuer = try Self.issuer(algorithm, name: "Encoder \(algorithm.rawValue) Ünïcode")
            for round in 0..<40 {
                let count = round % 10 == 0 ? Int.random(in: 20...40, using: &random) : Int.random(in: 1...4, using: &random)
                var names: [SubjectName] = []
                while names.count < count {
                    let name = try Self.randomName(&random)
                    if !names.contains(name) { names.append(name) }
                }
                let start = Date(timeIntervalSince1970: Double.random(in: 1.7e9...1.9e9, using: &random))
                let end = start.addingTimeInterval(Double.random(in: 60...(30 * 86_400), using: &random))
                let key = leafKeys[round % leafKeys.count]
                let pair = try #require(try Self.both(issuer, names: names, key: key, notBefore: start, notAfter: end))
                #expect(pair.ours.tbsCertificateBytes == pair.library.tbsCertificateBytes, "\(names)")
                #expect(pair.ours.signatureAlgorithm == pair.library.signatureAlgorithm)
            }
        }
    }

    @Test func writesTheLibrarysBytesWithCRLAndOCSPURLs() throws {
        let key = try SigningKey.generate(.p256).publicKey
        let start = Date(timeIntervalSince1970: 1.8e9)
        for algorithm in [KeyAlgorithm.p256, .rsa2048] {
            let issuer = try Self.issuer(algorithm, name: "Pointers")
            for pointers in [
                try RevocationPointers(crlURL: "http://ca.internal:8080/crl", ocspURL: "http://ca.internal:8080/ocsp"),
                try RevocationPointers(crlURL: "https://ca.internal/crl/" + String(repeating: "a", count: 200), ocspURL: nil),
                try RevocationPointers(crlURL: nil, ocspURL: "http://[fd00::1]:8080/ocsp"),
            ] {
                let pair = try #require(try Self.both(
                    issuer, names: [.dns("p.test")], key: key, notBefore: start, notAfter: start + 86_400, revocation: pointers))
                #expect(pair.ours.tbsCertificateBytes == pair.library.tbsCertificateBytes, "\(pointers)")
                // The library reads them back as the extensions they are.
                let points = pair.ours.extensions.first { $0.oid == [2, 5, 29, 31] as ASN1ObjectIdentifier }
                #expect((points != nil) == (pointers.crlURL != nil))
                let access = try pair.ours.extensions.authorityInformationAccess.map { Array($0) } ?? []
                #expect(access.map(\.location) == (pointers.ocspURL.map { [GeneralName.uniformResourceIdentifier($0)] } ?? []), "\(access)")
                #expect(access.allSatisfy { $0.method == .ocspServer })
            }
        }
    }

    @Test func refusesURLsThatCannotGoIntoACertificate() {
        for url in ["ftp://ca/crl", "http://", "http://ca/crl with space", "http://ca/crl?x=1", "http://ca/é", "", "ldap://ca",
                    "http://ca/" + String(repeating: "a", count: 600)] {
            #expect(throws: AutoSSLError.self, "\(url)") { try RevocationPointers(crlURL: url, ocspURL: nil) }
        }
    }

    @Test func timesMatchTheLibraryAtTheUTCTimeBoundariesAndRounding() throws {
        let issuer = try Self.issuer(.p256, name: "Times")
        let key = try SigningKey.generate(.p256).publicKey
        let boundaries: [TimeInterval] = [
            -631_152_000.4,  // 1950-01-01T00:00:00 (rounds to it): first UTCTime
            -631_152_000.6,  // rounds to 1949-12-31T23:59:59: GeneralizedTime
            2_524_607_999.4,  // 2049-12-31T23:59:59: last UTCTime
            2_524_607_999.5,  // rounds up to 2050: GeneralizedTime
            951_782_400,  // 2000-02-29 (leap day)
            4_107_542_400,  // 2100-03-01
            0, 1_764_000_000.5,
        ]
        for start in boundaries {
            let notBefore = Date(timeIntervalSince1970: start)
            let pair = try #require(try Self.both(
                issuer, names: [.dns("time.test")], key: key, notBefore: notBefore, notAfter: notBefore + 86_400.5))
            #expect(pair.ours.tbsCertificateBytes == pair.library.tbsCertificateBytes, "\(start)")
            #expect(pair.ours.notValidBefore == pair.library.notValidBefore)
        }
        for day in stride(from: -40_000, to: 80_000, by: 997) {
            let seconds = Int64(day) * 86_400 + Int64(day % 86_400 + 86_400) % 86_400
            let ours = LeafEncoder.time(Date(timeIntervalSince1970: TimeInterval(seconds)))
            var serializer = DER.Serializer()
            let components = Date(timeIntervalSince1970: TimeInterval(seconds))
            let calendar = Calendar(identifier: .gregorian)
            let utc = calendar.dateComponents(in: TimeZone(identifier: "UTC")!, from: components)
            if (1950..<2050).contains(utc.year!) {
                try serializer.serialize(UTCTime(year: utc.year!, month: utc.month!, day: utc.day!, hours: utc.hour!, minutes: utc.minute!, seconds: utc.second!))
            } else {
                try serializer.serialize(GeneralizedTime(
                    year: utc.year!, month: utc.month!, day: utc.day!, hours: utc.hour!, minutes: utc.minute!, seconds: utc.second!,
                    fractionalSeconds: 0))
            }
            #expect(ours == serializer.serializedBytes, "day \(day)")
        }
        // Outside what X.509 times can say: the caller falls back to the library (which refuses too).
        #expect(LeafEncoder.time(Date(timeIntervalSince1970: 253_402_300_800)) == nil)  // year 10000
        #expect(LeafEncoder.time(Date(timeIntervalSince1970: -62_135_596_801)) == nil)  // year 0
    }

    @Test func acceptsTheCSRsOwnKeyBytes() throws {
        let issuer = try Self.issuer(.p256, name: "CSR")
        let key = try SigningKey.generate(.p256)
        let names = [try SubjectName(parsing: "web.test"), try SubjectName(parsing: "10.1.2.3"), try SubjectName(parsing: "fd00::1")]
        let csr = try VerifiedCSR(pem: try VerifiedCSR.make(names: names, key: key))
        let spki = try #require(csr.subjectPublicKeyInfo)
        #expect(Array(spki) == (try CertificateProfiles.subjectPublicKeyInfo(of: key.publicKey)))
        let now = Date()
        let pair = try #require(try Self.both(issuer, names: csr.names, key: csr.publicKey, spki: spki, notBefore: now, notAfter: now + 3600))
        #expect(pair.ours.tbsCertificateBytes == pair.library.tbsCertificateBytes)
        #expect(pair.ours.subjectNames == names)
        #expect(pair.ours.commonName == "web.test")
    }

    @Test func leavesNamesOutsideASCIIToTheLibrary() throws {
        let issuer = try Self.issuer(.p256, name: "ASCII")
        let key = try SigningKey.generate(.p256).publicKey
        let encoded = try issuer.encoder.encode(
            names: [.dns("wéb.test")], subjectPublicKeyInfo: try CertificateProfiles.subjectPublicKeyInfo(of: key)[...],
            keyAlgorithm: .p256, subjectKeyIdentifier: CertificateProfiles.keyIdentifier(for: key), serial: [1],
            notBefore: Date(), notAfter: Date() + 60)
        #expect(encoded == nil)
    }

    @Test func refusesAnEmptyNameList() throws {
        let issuer = try Self.issuer(.p256, name: "Empty")
        let key = try SigningKey.generate(.p256).publicKey
        #expect(throws: AutoSSLError.self) {
            _ = try issuer.encoder.encode(
                names: [], subjectPublicKeyInfo: try CertificateProfiles.subjectPublicKeyInfo(of: key)[...], keyAlgorithm: .p256,
                subjectKeyIdentifier: CertificateProfiles.keyIdentifier(for: key), serial: [1], notBefore: Date(), notAfter: Date() + 60)
        }
    }
}
