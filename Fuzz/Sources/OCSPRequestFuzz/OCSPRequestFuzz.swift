import AutoSSLCore
import Foundation
import FuzzSupport

/// The OCSP request reader (`POST /ocsp` bodies and `GET /ocsp/{base64}` paths, from anyone).
/// Properties: it never traps; what it accepts is within its bounds (1 to `maximumCertIDs`
/// CertIDs, hashes of their algorithm's length, positive serials of at most 21 octets, a nonce
/// of bounded size); the GET form of the same bytes reads the same request; and writing a
/// response for an accepted request (every CertID echoed, the nonce echoed) works.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let bytes = Fuzz.bytes(start, count)
    if let request = try? OCSP.parseRequest(bytes) {
        Fuzz.require((1...OCSP.maximumCertIDs).contains(request.certIDs.count), "\(request.certIDs.count) CertIDs")
        for id in request.certIDs {
            let length = id.hashAlgorithm == .sha1 ? 20 : 32
            Fuzz.require(id.issuerNameHash.count == length && id.issuerKeyHash.count == length, "hash lengths")
            Fuzz.require((1...21).contains(id.serial.count) && (id.serial.first ?? 0x80) & 0x80 == 0, "serial \(id.serial)")
        }
        if let nonce = request.nonce {
            Fuzz.require(!nonce.isEmpty && nonce.count <= OCSP.maximumNonceBytes + 2, "nonce of \(nonce.count) octets")
        }
        let viaGet = try? OCSP.parseRequest(getPath: Data(bytes).base64EncodedString()[...])
        Fuzz.require(viaGet == request, "the GET form reads differently")
        let singles = request.certIDs.map {
            OCSP.SingleResponse(certID: $0, status: .good, thisUpdate: Date(timeIntervalSince1970: 1.8e9), nextUpdate: Date(timeIntervalSince1970: 1.8e9 + 3600))
        }
        let response = try? OCSP.successfulResponse(
            responderKeyHash: Array(repeating: 1, count: 20), signer: Signer.key, producedAt: Date(timeIntervalSince1970: 1.8e9),
            responses: singles, nonce: request.nonce)
        Fuzz.require(response != nil, "no response for an accepted request")
    }
    // The same bytes as a GET path (text, percent-encoding and all).
    _ = try? OCSP.parseRequest(getPath: Fuzz.text(bytes)[...])
    return 0
}

enum Signer {
    static let key: SigningKey = {
        guard let key = try? SigningKey.generate(.p256) else { fatalError("no P-256 key") }
        return key
    }()
}
