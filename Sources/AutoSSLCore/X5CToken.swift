import Crypto
import Foundation
import X509
import _CryptoExtras

/// JWTs signed by a certificate's own key with the chain in the `x5c` header (RFC 7515 §4.1.6):
/// how a certificate holder proves possession through proxies that terminate TLS.
public enum X5CToken {
    public struct Header: Codable, Sendable {
        public var alg: String
        public var typ: String?
        /// Standard (not URL-safe) base64 DER, leaf first.
        public var x5c: [String]
    }

    /// The algorithm a certificate key signs tokens with.
    public static func algorithm(for key: KeyAlgorithm) -> String {
        switch key {
        case .p256: return "ES256"
        case .p384: return "ES384"
        case .rsa2048, .rsa3072, .rsa4096: return "RS256"
        }
    }

    public static func sign(payload: some Encodable, chain: [Certificate], key: SigningKey) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let header = Header(
            alg: algorithm(for: key.algorithm), typ: "JWT",
            x5c: try chain.map { Data(try $0.derBytes()).base64EncodedString() })
        let signingInput = Base64URL.encode(try encoder.encode(header)) + "." + Base64URL.encode(try encoder.encode(payload))
        return signingInput + "." + Base64URL.encode(try key.signJOSE(Array(signingInput.utf8)))
    }

    public struct Verified: Sendable {
        public var chain: [Certificate]
        public var payload: Data
    }

    /// Parses the token, decodes the x5c chain and checks the signature with the leaf's key.
    /// The chain itself is NOT validated here: the caller decides which CA it must lead to.
    public static func verifySignature(_ token: String) throws -> Verified {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard token.utf8.count <= 64 * 1024, parts.count == 3, let headerData = Base64URL.decode(parts[0]),
              let payload = Base64URL.decode(parts[1]), let signature = Base64URL.decode(parts[2]),
              let header = try? JSONDecoder().decode(Header.self, from: headerData) else {
            throw AutoSSLError.invalidArgument("malformed token: expected a JWT with an x5c header")
        }
        guard !header.x5c.isEmpty, header.x5c.count <= 4 else {
            throw AutoSSLError.invalidArgument("the token's x5c must hold the certificate (and at most 3 more)")
        }
        let chain: [Certificate] = try header.x5c.map { entry in
            guard let der = Data(base64Encoded: entry), let certificate = try? Certificate(derEncoded: Array(der)) else {
                throw AutoSSLError.invalidArgument("the token's x5c holds something that is not a certificate")
            }
            return certificate
        }
        let signingInput = Array((parts[0] + "." + parts[1]).utf8)
        guard verify(signature: Array(signature), input: signingInput, alg: header.alg, key: chain[0].publicKey) else {
            throw AutoSSLError.invalidArgument("the token's signature does not verify with the certificate's key")
        }
        return Verified(chain: chain, payload: payload)
    }

    static func verify(signature: [UInt8], input: [UInt8], alg: String, key: Certificate.PublicKey) -> Bool {
        switch alg {
        case "ES256":
            guard let key = P256.Signing.PublicKey(key),
                  let sig = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(sig, for: input)
        case "ES384":
            guard let key = P384.Signing.PublicKey(key),
                  let sig = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(sig, for: input)
        case "RS256":
            guard let key = _RSA.Signing.PublicKey(key) else { return false }
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: input, padding: .insecurePKCS1v1_5)
        default:
            return false
        }
    }
}

/// Claims of a renewal or revocation token signed by a certificate's key.
public struct CertificateTokenClaims: Codable, Sendable {
    public var aud: [String]
    public var sub: String
    public var nbf: Int64
    public var iat: Int64?
    public var exp: Int64
    public var jti: String

    public init(aud: [String], sub: String, nbf: Int64, iat: Int64?, exp: Int64, jti: String) {
        self.aud = aud
        self.sub = sub
        self.nbf = nbf
        self.iat = iat
        self.exp = exp
        self.jti = jti
    }

    enum CodingKeys: String, CodingKey { case aud, sub, nbf, iat, exp, jti }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let single = try? c.decode(String.self, forKey: .aud) { aud = [single] } else { aud = try c.decode([String].self, forKey: .aud) }
        sub = try c.decodeIfPresent(String.self, forKey: .sub) ?? ""
        // Numbers from the network: refused (not trapped on) when out of range.
        func seconds(_ value: Double, _ key: CodingKeys) throws -> Int64 {
            guard let whole = NumericDate.seconds(value) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\(key.rawValue) is out of range")
            }
            return whole
        }
        if let nbf = try c.decodeIfPresent(Double.self, forKey: .nbf) {
            self.nbf = try seconds(nbf, .nbf)
        } else {
            nbf = try seconds(try c.decode(Double.self, forKey: .iat), .iat)
        }
        iat = try c.decodeIfPresent(Double.self, forKey: .iat).map { try seconds($0, .iat) }
        exp = try seconds(try c.decode(Double.self, forKey: .exp), .exp)
        jti = try c.decode(String.self, forKey: .jti)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if aud.count == 1 { try c.encode(aud[0], forKey: .aud) } else { try c.encode(aud, forKey: .aud) }
        try c.encode(sub, forKey: .sub)
        try c.encode(nbf, forKey: .nbf)
        try c.encodeIfPresent(iat, forKey: .iat)
        try c.encode(exp, forKey: .exp)
        try c.encode(jti, forKey: .jti)
    }
}
