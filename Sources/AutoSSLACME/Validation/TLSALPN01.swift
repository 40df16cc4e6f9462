import AutoSSLCore
import Foundation
import SwiftASN1
import X509

/// tls-alpn-01 (RFC 8737, RFC 8738 §6): on a TLS handshake with ALPN `acme-tls/1` and SNI the
/// identifier (an IP's reverse-mapping name), the server presents a certificate naming exactly the
/// identifier, with a critical acmeIdentifier extension holding SHA-256(key authorization). Port 443
/// unless the provisioner says otherwise.
extension ChallengeValidator {
    static let acmeIdentifierOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 1, 31]

    func tlsALPN01(_ identifier: ACMEIdentifierValue, keyAuthorization: String, deadline: ValidationDeadline) async throws {
        let port = tlsALPN01Port
        guard (1...65_535).contains(port) else { throw ACMEProblem(.connection, "port \(port) is not a valid port") }
        let expected = ACMEChallengeValues.tlsALPNDigest(keyAuthorization)
        var last: ACMEProblem?
        for address in try await addresses(identifier, deadline: deadline) {
            do {
                let certificate = try await network.alpnCertificate(
                    address: address, port: port, serverName: identifier.tlsServerName, deadline: deadline)
                try Self.checkALPNCertificate(certificate, identifier: identifier, digest: expected)
                return
            } catch let problem as ACMEProblem {
                last = Self.moreTelling(last, problem)
            } catch {
                last = Self.moreTelling(
                    last, ACMEProblem(.tls, "TLS with \(address):\(port) (ALPN acme-tls/1) failed: \(ValidationWords.plain(error))"))
            }
        }
        throw last ?? ACMEProblem(.connection, "no address to connect to")
    }

    static func checkALPNCertificate(_ certificate: Certificate, identifier: ACMEIdentifierValue, digest: [UInt8]) throws {
        let names = certificate.subjectNames
        // Compared as text: some clients put an IP address into a dNSName (lego 4.9).
        guard names.count == 1, let only = names.first, only.description == identifier.value else {
            throw ACMEProblem(
                .unauthorized,
                "the tls-alpn-01 certificate must name exactly \(identifier.value), it names \(names.map(\.description).joined(separator: ", "))")
        }
        guard let extensionValue = certificate.extensions.first(where: { $0.oid == acmeIdentifierOID }) else {
            throw ACMEProblem(.unauthorized, "the tls-alpn-01 certificate has no acmeIdentifier extension")
        }
        guard extensionValue.critical else {
            throw ACMEProblem(.unauthorized, "the acmeIdentifier extension must be critical")
        }
        guard let octets = try? ASN1OctetString(derEncoded: extensionValue.value), Array(octets.bytes) == digest else {
            throw ACMEProblem(.incorrectResponse, "the acmeIdentifier extension does not hold the key authorization's digest")
        }
    }
}
