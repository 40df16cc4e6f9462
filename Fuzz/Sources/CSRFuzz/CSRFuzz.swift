@testable import AutoSSLCore
import Crypto
import Foundation
import FuzzSupport
import X509

/// FastCSR, the one-pass reader of `/sign` and ACME finalize CSRs, against swift-certificates'
/// CertificateSigningRequest. Two properties:
/// - parsing: whatever FastCSR reads (with a key that is a point on its curve and a signature
///   that is a DER ECDSA-Sig-Value, which FastCSR leaves to the signature check and the library
///   checks while parsing), the library parses too, to the same key, signature algorithm, common
///   name and subjectAltName entries;
/// - verification: `VerifiedCSR` with and without the fast reader accepts the same CSRs and reads
///   the same key, names, key identifier and SPKI bytes.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let der = Fuzz.bytes(start, count)
    if let fast = FastCSR.read(der), let key = publicKey(fast), signatureParses(fast) {
        let parsed = try? CertificateSigningRequest(derEncoded: der)
        Fuzz.require(parsed != nil, "the library refuses a CSR FastCSR read")
        if let csr = parsed {
            Fuzz.require(csr.publicKey == key, "public key differs")
            let algorithm: Certificate.SignatureAlgorithm = fast.hash == .sha256 ? .ecdsaWithSHA256 : .ecdsaWithSHA384
            Fuzz.require(csr.signatureAlgorithm == algorithm, "signature algorithm \(csr.signatureAlgorithm) vs \(algorithm)")
            let attributes = csr.subject.flatMap { $0 }
            let commonName = attributes.first { $0.type == .RDNAttributeType.commonName }.map { String(describing: $0.value) }
            Fuzz.require(attributes.count == (fast.commonName == nil ? 0 : 1) && commonName == fast.commonName,
                         "subject \(csr.subject) vs common name \(String(describing: fast.commonName))")
            let alternative = try? csr.attributes.extensionRequest?.extensions.subjectAlternativeNames.map { Array($0) } ?? []
            Fuzz.require(alternative == fast.alternativeNames,
                         "subjectAltName \(String(describing: alternative)) vs \(fast.alternativeNames)")
        }
    }
    let fast = Result { try VerifiedCSR(der: der, fastReader: true) }
    let library = Result { try VerifiedCSR(der: der, fastReader: false) }
    switch (fast, library) {
    case (.success(let a), .success(let b)):
        Fuzz.require(a.publicKey == b.publicKey && a.keyAlgorithm == b.keyAlgorithm, "key differs")
        Fuzz.require(a.names == b.names, "names \(a.names) vs \(b.names)")
        Fuzz.require(a.subjectKeyIdentifier == b.subjectKeyIdentifier, "subject key identifier differs")
        Fuzz.require(a.subjectPublicKeyInfo == b.subjectPublicKeyInfo, "SPKI bytes differ")
    case (.failure, .failure):
        break
    default:
        Fuzz.require(false, "VerifiedCSR fast: \(fast), library: \(library)")
    }
    return 0
}

/// The key FastCSR read, when its point is on the curve (else the library refuses, rightly).
func publicKey(_ fast: FastCSR) -> Certificate.PublicKey? {
    switch fast.algorithm {
    case .p256: return (try? P256.Signing.PublicKey(x963Representation: fast.point)).map(Certificate.PublicKey.init)
    case .p384: return (try? P384.Signing.PublicKey(x963Representation: fast.point)).map(Certificate.PublicKey.init)
    default: return nil
    }
}

func signatureParses(_ fast: FastCSR) -> Bool {
    switch fast.algorithm {
    case .p256: return (try? P256.Signing.ECDSASignature(derRepresentation: fast.signature)) != nil
    case .p384: return (try? P384.Signing.ECDSASignature(derRepresentation: fast.signature)) != nil
    default: return false
    }
}
