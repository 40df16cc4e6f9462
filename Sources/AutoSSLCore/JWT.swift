import Crypto
import Foundation

/// Compact JWS/JWT with ES256 (RFC 7515/7518): what provisioner one-time tokens are.
/// ES256 signatures are the raw r‖s pair (64 bytes), not DER.
public enum JWT {
    public struct Header: Codable, Sendable, Equatable {
        public var alg: String
        public var kid: String?
        public var typ: String?

        public init(alg: String, kid: String?, typ: String? = "JWT") {
            self.alg = alg
            self.kid = kid
            self.typ = typ
        }
    }

    /// A token split into its parts; the signature is not checked yet.
    public struct Parsed: Sendable {
        public var header: Header
        public var payload: Data
        public var signingInput: Data
        public var signature: Data
    }

    public static func sign(payload: some Encodable, kid: String?, key: P256.Signing.PrivateKey) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let header = Base64URL.encode(try encoder.encode(Header(alg: "ES256", kid: kid)))
        let body = Base64URL.encode(try encoder.encode(payload))
        let signingInput = header + "." + body
        let signature = try key.signature(for: Data(signingInput.utf8))
        return signingInput + "." + Base64URL.encode(signature.rawRepresentation)
    }

    /// Splits and decodes a compact token. Anything malformed is an error; size is capped because
    /// tokens arrive from the network.
    public static func parse(_ token: String) throws -> Parsed {
        guard token.utf8.count <= 64 * 1024 else { throw malformed("the token is too large") }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw malformed("a JWT has three dot-separated parts") }
        guard let headerBytes = Base64URL.decode(parts[0]), let payload = Base64URL.decode(parts[1]),
              let signature = Base64URL.decode(parts[2]) else {
            throw malformed("the token is not base64url")
        }
        guard let header = try? JSONDecoder().decode(Header.self, from: headerBytes) else {
            throw malformed("the token header is not valid JSON")
        }
        return Parsed(
            header: header, payload: payload, signingInput: Data((parts[0] + "." + parts[1]).utf8), signature: signature)
    }

    /// Checks an ES256 signature with a P-256 public key.
    public static func verifyES256(_ parsed: Parsed, key: P256.Signing.PublicKey) -> Bool {
        guard parsed.header.alg == "ES256", parsed.signature.count == 64,
              let signature = try? P256.Signing.ECDSASignature(rawRepresentation: parsed.signature) else {
            return false
        }
        return key.isValidSignature(signature, for: parsed.signingInput)
    }

    static func malformed(_ detail: String) -> AutoSSLError {
        AutoSSLError.invalidArgument("malformed token: \(detail)")
    }
}

/// The claims of a provisioner one-time token (step-ca's shape).
public struct ProvisionerTokenClaims: Codable, Sendable, Equatable {
    public var iss: String
    public var aud: [String]
    public var sub: String
    public var sans: [String]
    public var nbf: Int64
    public var iat: Int64?
    public var exp: Int64
    public var jti: String
    public var sha: String

    public init(
        iss: String, aud: [String], sub: String, sans: [String], nbf: Int64, iat: Int64?, exp: Int64, jti: String,
        sha: String
    ) {
        self.iss = iss
        self.aud = aud
        self.sub = sub
        self.sans = sans
        self.nbf = nbf
        self.iat = iat
        self.exp = exp
        self.jti = jti
        self.sha = sha
    }

    enum CodingKeys: String, CodingKey { case iss, aud, sub, sans, nbf, iat, exp, jti, sha }

    /// `aud` may be one string or a list (RFC 7519 §4.1.3); numeric dates may be fractional.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        iss = try c.decode(String.self, forKey: .iss)
        if let single = try? c.decode(String.self, forKey: .aud) {
            aud = [single]
        } else {
            aud = try c.decode([String].self, forKey: .aud)
        }
        sub = try c.decodeIfPresent(String.self, forKey: .sub) ?? ""
        sans = try c.decodeIfPresent([String].self, forKey: .sans) ?? []
        nbf = Int64(try c.decode(Double.self, forKey: .nbf))
        iat = try c.decodeIfPresent(Double.self, forKey: .iat).map { Int64($0) }
        exp = Int64(try c.decode(Double.self, forKey: .exp))
        jti = try c.decode(String.self, forKey: .jti)
        sha = try c.decodeIfPresent(String.self, forKey: .sha) ?? ""
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(iss, forKey: .iss)
        if aud.count == 1 { try c.encode(aud[0], forKey: .aud) } else { try c.encode(aud, forKey: .aud) }
        try c.encode(sub, forKey: .sub)
        try c.encode(sans, forKey: .sans)
        try c.encode(nbf, forKey: .nbf)
        try c.encodeIfPresent(iat, forKey: .iat)
        try c.encode(exp, forKey: .exp)
        try c.encode(jti, forKey: .jti)
        try c.encode(sha, forKey: .sha)
    }
}
