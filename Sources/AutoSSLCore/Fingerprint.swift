import Crypto
import Foundation
import SwiftASN1
import X509

/// SHA-256 fingerprints of certificates, in the form users compare by eye and by script:
/// lower-case hex without separators (what `openssl x509 -fingerprint -sha256` prints, minus colons).
public enum Fingerprint {
    public static func sha256(der: some DataProtocol) -> String {
        Hex.encode(SHA256.hash(data: der))
    }

    public static func sha256(of certificate: Certificate) throws -> String {
        sha256(der: try certificate.derBytes())
    }

    /// SHA-256 of a certificate's public key (the subjectPublicKey bits), lower-case hex: the
    /// key's identity across renewals, which keep the key.
    public static func publicKeyHash(of certificate: Certificate) -> String {
        publicKeyHash(of: certificate.publicKey)
    }

    /// The same for a key (a CSR's, say), whatever encoding of it the CSR carried.
    public static func publicKeyHash(of key: Certificate.PublicKey) -> String {
        sha256(der: key.subjectPublicKeyInfoBytes)
    }

    /// The same from a certificate's DER; nil when it does not parse.
    public static func publicKeyHash(certificateDER der: [UInt8]) -> String? {
        publicKey(certificateDER: der)?.hash
    }

    /// A certificate's public key as it is hashed above (swift-certificates' `subjectPublicKeyInfoBytes`:
    /// the subjectPublicKey BIT STRING's contents, e.g. the uncompressed EC point), with that hash;
    /// nil when the DER does not parse.
    public static func publicKey(certificateDER der: [UInt8]) -> (bytes: [UInt8], hash: String)? {
        guard let certificate = try? Certificate(derEncoded: der) else { return nil }
        let bytes = Array(certificate.publicKey.subjectPublicKeyInfoBytes)
        return (bytes, sha256(der: bytes))
    }

    /// Normalises what a user typed: case-insensitive, colons and spaces allowed.
    /// Anything other than 64 hex digits is an invalid argument.
    public static func normalise(_ text: String) throws -> String {
        let cleaned = text.lowercased().filter { $0 != ":" && $0 != " " }
        guard cleaned.count == 64, cleaned.allSatisfy({ $0.isHexDigit }) else {
            throw AutoSSLError.invalidArgument(
                "\"\(text)\" is not a SHA-256 fingerprint",
                hint: "expected 64 hexadecimal characters (colons allowed), as printed by `auto-ssl ca status`")
        }
        return cleaned
    }
}

public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Colon-separated upper-case hex, the way openssl shows serial numbers and key identifiers.
    public static func colonSeparated(_ bytes: some Sequence<UInt8>) -> String {
        bytes.map { byte in
            let s = String(byte, radix: 16, uppercase: true)
            return s.count == 1 ? "0" + s : s
        }.joined(separator: ":")
    }
}

extension Certificate {
    /// DER bytes of the certificate.
    public func derBytes() throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        return serializer.serializedBytes
    }

    /// PEM with a trailing newline, so that files built by concatenation stay valid for openssl.
    /// Encoded with Foundation's line-wrapping base64: on every issuance's path, and several times
    /// faster than going through `PEMDocument`.
    public func pemString() throws -> String {
        PEM.encode(try derBytes(), label: "CERTIFICATE")
    }
}

extension Certificate.SerialNumber {
    /// Lower-case hex without separators, as stored in our database and shown by `ca certs`.
    public var hexString: String { Hex.encode(bytes) }
}

public enum PEM {
    /// RFC 7468 text: 64-character lines, LF line ends, a trailing newline.
    public static func encode(_ der: [UInt8], label: String) -> String {
        let body = Data(der).base64EncodedString(options: [.lineLength64Characters, .endLineWithLineFeed])
        return "-----BEGIN \(label)-----\n" + (body.isEmpty ? "" : body + "\n") + "-----END \(label)-----\n"
    }

    /// `JSONText.quote(encode(der, label:))` as UTF-8, written directly (issuance responses carry
    /// the leaf this way): the line ends become the two characters `\n`.
    public static func jsonQuoted(_ der: [UInt8], label: String) -> [UInt8] {
        let base64 = Data(der).base64EncodedData()
        let lineEnd: [UInt8] = [0x5C, 0x6E]
        var out: [UInt8] = []
        out.reserveCapacity(base64.count + base64.count / 32 + 2 * label.utf8.count + 40)
        out.append(0x22)
        out.append(contentsOf: "-----BEGIN \(label)-----".utf8)
        out.append(contentsOf: lineEnd)
        base64.withUnsafeBytes { raw in
            var start = 0
            while start < raw.count {
                let end = min(start + 64, raw.count)
                out.append(contentsOf: raw[start..<end])
                out.append(contentsOf: lineEnd)
                start = end
            }
        }
        out.append(contentsOf: "-----END \(label)-----".utf8)
        out.append(contentsOf: lineEnd)
        out.append(0x22)
        return out
    }
}
