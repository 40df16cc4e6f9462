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

        /// The header from JSON (the fast reader for the usual shape, else JSONDecoder); nil if invalid.
        static func decode(_ data: Data) -> Header? {
            if let object = FlatJSON.object(data), let alg = object.string("alg"),
               let kid = object.optionalString("kid"), let typ = object.optionalString("typ") {
                return Header(alg: alg, kid: kid, typ: typ)
            }
            return try? JSONDecoder().decode(Header.self, from: data)
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
        var token = token
        return try token.withUTF8 { utf8 in
            let dot = UInt8(ascii: ".")
            guard let first = utf8.firstIndex(of: dot),
                  let second = utf8[(first + 1)...].firstIndex(of: dot),
                  !utf8[(second + 1)...].contains(dot) else {
                throw malformed("a JWT has three dot-separated parts")
            }
            guard let headerBytes = Base64URL.decode(contiguous: UnsafeBufferPointer(rebasing: utf8[..<first])),
                  let payload = Base64URL.decode(contiguous: UnsafeBufferPointer(rebasing: utf8[(first + 1)..<second])),
                  let signature = Base64URL.decode(contiguous: UnsafeBufferPointer(rebasing: utf8[(second + 1)...])) else {
                throw malformed("the token is not base64url")
            }
            guard let header = Header.decode(headerBytes) else {
                throw malformed("the token header is not valid JSON")
            }
            // The signing input is the token up to its second dot, as sent.
            return Parsed(
                header: header, payload: payload, signingInput: Data(UnsafeBufferPointer(rebasing: utf8[..<second])),
                signature: signature)
        }
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

    /// The claims of a fresh one-time token for `/sign`: for `names` (the first is the subject),
    /// valid from `now` for `lifetime` seconds, with a random jti. Our client's tokens (5 minutes)
    /// and `ca token create`'s (up to a day) are both made here.
    public static func oneTime(
        provisioner: String, audience: [String], names: [String], lifetime: Int64, rootFingerprint: String, now: Date
    ) -> ProvisionerTokenClaims {
        let issued = Int64(now.timeIntervalSince1970)
        return ProvisionerTokenClaims(
            iss: provisioner, aud: audience, sub: names.first ?? "", sans: names, nbf: issued, iat: issued, exp: issued + lifetime,
            jti: Hex.encode(SecureRandom.bytes(16)), sha: rootFingerprint)
    }

    /// The claims from JSON: the fast reader for the usual shape, JSONDecoder (and its errors) otherwise.
    public static func decode(_ data: Data) throws -> ProvisionerTokenClaims {
        if let object = FlatJSON.object(data), let claims = ProvisionerTokenClaims(flat: object) { return claims }
        return try JSONDecoder().decode(Self.self, from: data)
    }

    /// Same rules as `init(from:)`; nil where that would throw (the caller then lets it say why).
    init?(flat object: [String: FlatJSON.Value]) {
        guard let iss = object.string("iss") else { return nil }
        switch object["aud"] {
        case .string(let single)?: aud = [single]
        case .strings(let list)?: aud = list
        default: return nil
        }
        guard let sub = object.optionalString("sub"), let sans = object.optionalStrings("sans"),
              let nbf = object.number("nbf").flatMap(Self.seconds), let iat = object.optionalNumber("iat"),
              let exp = object.number("exp").flatMap(Self.seconds), let jti = object.string("jti"),
              let sha = object.optionalString("sha") else { return nil }
        if let iat {
            guard let seconds = Self.seconds(iat) else { return nil }
            self.iat = seconds
        } else {
            self.iat = nil
        }
        self.iss = iss
        self.sub = sub ?? ""
        self.sans = sans ?? []
        self.nbf = nbf
        self.exp = exp
        self.jti = jti
        self.sha = sha ?? ""
    }

    /// A NumericDate (possibly fractional) as whole seconds; nil outside `NumericDate.range`.
    static func seconds(_ value: Double) -> Int64? {
        NumericDate.seconds(value)
    }

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
        func seconds(_ value: Double, _ key: CodingKeys) throws -> Int64 {
            guard let whole = Self.seconds(value) else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\(key.rawValue) is out of range")
            }
            return whole
        }
        nbf = try seconds(try c.decode(Double.self, forKey: .nbf), .nbf)
        iat = try c.decodeIfPresent(Double.self, forKey: .iat).map { try seconds($0, .iat) }
        exp = try seconds(try c.decode(Double.self, forKey: .exp), .exp)
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

/// The times in a token (RFC 7519 NumericDate) as they come from the network: any JSON number.
/// Only values from 1970 to the end of year 9999 are taken, so that no later arithmetic on them
/// (skew, lifetimes, `Date`) can overflow; anything else is refused as malformed.
public enum NumericDate {
    /// 1970-01-01T00:00:00Z ... 9999-12-31T23:59:59Z, in seconds.
    public static let range: ClosedRange<Int64> = 0...253_402_300_799

    /// Whole seconds (a fraction is dropped), or nil when the value is not finite or out of range.
    public static func seconds(_ value: Double) -> Int64? {
        guard value.isFinite, value >= Double(range.lowerBound), value < Double(range.upperBound) + 1 else { return nil }
        return Int64(exactly: value.rounded(.towardZero))
    }

    /// The same for an integer already read (e.g. from a database or an encoder).
    public static func seconds(_ value: Int64) -> Int64? {
        range.contains(value) ? value : nil
    }
}

/// The time rules every one-time token obeys (provisioner tokens and certificate holders' x5c
/// tokens alike): valid now within the clock skew, and short-lived.
public enum TokenWindow {
    public enum Refusal: Error, Equatable, Sendable {
        case notYetValid
        case expired
        case lifetimeTooLong(maximumSeconds: Int64)

        public var message: String {
            switch self {
            case .notYetValid: return "the token is not valid yet (nbf is in the future)"
            case .expired: return "the token has expired"
            case .lifetimeTooLong(let maximum): return "the token's lifetime exceeds \(maximum / 60) minutes (exp must be after nbf, at most \(maximum) s later)"
            }
        }
    }

    /// Checks `nbf`/`exp` (whole seconds since 1970) against `now`. Values outside
    /// `NumericDate.range` are refused before any arithmetic, so no input can overflow it.
    public static func check(nbf: Int64, exp: Int64, now: Date, skew: Int64, maximumLifetime: Int64) -> Refusal? {
        guard NumericDate.seconds(nbf) != nil else { return .notYetValid }
        guard NumericDate.seconds(exp) != nil else { return .expired }
        let nowSeconds = now.timeIntervalSince1970
        guard nowSeconds.isFinite, let current = NumericDate.seconds(nowSeconds),
              (0...86_400).contains(skew), (1...86_400).contains(maximumLifetime) else { return .expired }
        // Every operand is bounded above, so these cannot overflow.
        if nbf > current + skew { return .notYetValid }
        if exp <= current - skew { return .expired }
        if exp <= nbf || exp - nbf > maximumLifetime { return .lifetimeTooLong(maximumSeconds: maximumLifetime) }
        return nil
    }
}
