import Crypto
import _CryptoExtras
import Foundation
import X509

/// An ACME account key (RFC 8555 §6.2): the public JWK a client signs its requests with.
/// ES256 (P-256), ES384 (P-384), RS256 (RSA ≥ 2048) and EdDSA (Ed25519).
public enum ACMEAccountKey: Sendable {
    case p256(P256.Signing.PublicKey)
    case p384(P384.Signing.PublicKey)
    case rsa(_RSA.Signing.PublicKey)
    case ed25519(Curve25519.Signing.PublicKey)

    /// The JWK members that identify the key, as RFC 7638 lists them.
    public struct Fields: Codable, Equatable, Sendable {
        public var kty: String
        public var crv: String?
        public var x: String?
        public var y: String?
        public var n: String?
        public var e: String?

        public init(kty: String, crv: String? = nil, x: String? = nil, y: String? = nil, n: String? = nil, e: String? = nil) {
            self.kty = kty
            self.crv = crv
            self.x = x
            self.y = y
            self.n = n
            self.e = e
        }
    }

    public init(jwk fields: Fields) throws {
        func bytes(_ value: String?, _ name: String) throws -> Data {
            guard let value, let data = Base64URL.decode(value), !data.isEmpty else {
                throw ACMEProblem(.badPublicKey, "the JWK's \"\(name)\" is missing or not base64url")
            }
            return data
        }
        switch (fields.kty, fields.crv) {
        case ("EC", "P-256"):
            let raw = try bytes(fields.x, "x") + bytes(fields.y, "y")
            guard let key = try? P256.Signing.PublicKey(rawRepresentation: raw) else {
                throw ACMEProblem(.badPublicKey, "the P-256 JWK is not a point on the curve")
            }
            self = .p256(key)
        case ("EC", "P-384"):
            let raw = try bytes(fields.x, "x") + bytes(fields.y, "y")
            guard let key = try? P384.Signing.PublicKey(rawRepresentation: raw) else {
                throw ACMEProblem(.badPublicKey, "the P-384 JWK is not a point on the curve")
            }
            self = .p384(key)
        case ("RSA", _):
            guard let key = try? _RSA.Signing.PublicKey(n: try bytes(fields.n, "n"), e: try bytes(fields.e, "e")) else {
                throw ACMEProblem(.badPublicKey, "the RSA JWK is invalid or shorter than 2048 bits")
            }
            self = .rsa(key)
        case ("OKP", "Ed25519"):
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: try bytes(fields.x, "x")) else {
                throw ACMEProblem(.badPublicKey, "the Ed25519 JWK is invalid")
            }
            self = .ed25519(key)
        default:
            throw ACMEProblem(.badPublicKey, "unsupported key type \(fields.kty) \(fields.crv ?? ""); use P-256, P-384, RSA or Ed25519")
        }
    }

    /// The normalised JWK: exactly the required members, which is also what the thumbprint hashes.
    public var fields: Fields {
        switch self {
        case .p256(let key):
            let raw = key.rawRepresentation
            return Fields(kty: "EC", crv: "P-256", x: Base64URL.encode(raw.prefix(32)), y: Base64URL.encode(raw.suffix(32)))
        case .p384(let key):
            let raw = key.rawRepresentation
            return Fields(kty: "EC", crv: "P-384", x: Base64URL.encode(raw.prefix(48)), y: Base64URL.encode(raw.suffix(48)))
        case .rsa(let key):
            let (n, e) = Self.rsaNumbers(key)
            return Fields(kty: "RSA", n: Base64URL.encode(n), e: Base64URL.encode(e))
        case .ed25519(let key):
            return Fields(kty: "OKP", crv: "Ed25519", x: Base64URL.encode(key.rawRepresentation))
        }
    }

    /// RFC 7638: the required members in lexicographic order, no whitespace.
    public var canonicalJSON: String {
        let f = fields
        switch f.kty {
        case "EC": return #"{"crv":"\#(f.crv!)","kty":"EC","x":"\#(f.x!)","y":"\#(f.y!)"}"#
        case "RSA": return #"{"e":"\#(f.e!)","kty":"RSA","n":"\#(f.n!)"}"#
        default: return #"{"crv":"\#(f.crv!)","kty":"OKP","x":"\#(f.x!)"}"#
        }
    }

    /// RFC 7638 SHA-256 thumbprint, base64url.
    public var thumbprint: String {
        Base64URL.encode(Array(SHA256.hash(data: Data(canonicalJSON.utf8))))
    }

    /// The algorithms each key may sign with.
    public func accepts(algorithm: String) -> Bool {
        switch self {
        case .p256: return algorithm == "ES256"
        case .p384: return algorithm == "ES384"
        case .rsa: return algorithm == "RS256"
        case .ed25519: return algorithm == "EdDSA"
        }
    }

    public func isValidSignature(_ signature: Data, for input: Data) -> Bool {
        switch self {
        case .p256(let key):
            guard let parsed = try? P256.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: input)
        case .p384(let key):
            guard let parsed = try? P384.Signing.ECDSASignature(rawRepresentation: signature) else { return false }
            return key.isValidSignature(parsed, for: input)
        case .rsa(let key):
            return key.isValidSignature(_RSA.Signing.RSASignature(rawRepresentation: signature), for: input, padding: .insecurePKCS1v1_5)
        case .ed25519(let key):
            return key.isValidSignature(signature, for: input)
        }
    }

    /// The key as a certificate would carry it (to compare with certificates' keys).
    public var certificatePublicKey: Certificate.PublicKey {
        switch self {
        case .p256(let key): return Certificate.PublicKey(key)
        case .p384(let key): return Certificate.PublicKey(key)
        case .rsa(let key): return Certificate.PublicKey(key)
        case .ed25519(let key): return Certificate.PublicKey(key)
        }
    }

    /// A certificate's subject public key as an ACME key (revocation signed by the certificate key).
    public init?(certificateKey key: Certificate.PublicKey) {
        if let inner = P256.Signing.PublicKey(key) { self = .p256(inner); return }
        if let inner = P384.Signing.PublicKey(key) { self = .p384(inner); return }
        if let inner = _RSA.Signing.PublicKey(key) { self = .rsa(inner); return }
        if let inner = Curve25519.Signing.PublicKey(key) { self = .ed25519(inner); return }
        return nil
    }

    /// n and e from the PKCS#1 DER (SEQUENCE { INTEGER n, INTEGER e }), without leading zero bytes.
    static func rsaNumbers(_ key: _RSA.Signing.PublicKey) -> (Data, Data) {
        let der = [UInt8](key.pkcs1DERRepresentation)
        var index = 0
        func length() -> Int {
            let first = Int(der[index]); index += 1
            guard first & 0x80 != 0 else { return first }
            var value = 0
            for _ in 0..<(first & 0x7F) { value = value << 8 | Int(der[index]); index += 1 }
            return value
        }
        index += 1; _ = length()  // SEQUENCE
        var integers: [Data] = []
        for _ in 0..<2 {
            index += 1  // INTEGER tag
            let count = length()
            var bytes = Array(der[index..<index + count])
            while bytes.count > 1 && bytes[0] == 0 { bytes.removeFirst() }
            integers.append(Data(bytes))
            index += count
        }
        return (integers[0], integers[1])
    }
}

/// A flattened JWS (RFC 7515 §7.2.2) as ACME requests carry them.
public struct ACMEJWS: Sendable {
    public struct Header: Decodable, Sendable, Equatable {
        public var alg: String
        public var nonce: String?
        public var url: String?
        public var jwk: ACMEAccountKey.Fields?
        public var kid: String?
        /// Present when the header names critical extensions (none is supported: refused).
        var crit: Present? = nil
    }

    /// A JSON member whose presence alone matters (any value but null).
    struct Present: Decodable, Equatable, Sendable {
        init() {}
        init(from decoder: any Decoder) throws {}
    }

    public let protectedB64: String
    public let payloadB64: String
    public let signature: Data
    public let header: Header
    /// Empty for POST-as-GET.
    public let payload: Data

    struct Wire: Decodable, Equatable {
        var protected: String
        var payload: String
        var signature: String
        /// An unprotected header, which RFC 8555 §6.2 forbids.
        var header: Present? = nil
    }

    /// The body's three members through `FlatJSON`; nil (then `JSONDecoder` decides) for anything
    /// it does not read, or a member of another type.
    static func fastWire(_ body: Data) -> Wire? {
        guard let object = FlatJSON.object(body), object["header"] == nil, let protected = object.string("protected"),
              let payload = object.string("payload"), let signature = object.string("signature") else { return nil }
        return Wire(protected: protected, payload: payload, signature: signature)
    }

    /// A protected header with `kid` (every request after new-account) through `FlatJSON`; nil
    /// (then `JSONDecoder` decides) for one with a `jwk` object or a member of another type.
    static func fastHeader(_ data: Data) -> Header? {
        guard let object = FlatJSON.object(data), object["crit"] == nil, let alg = object.string("alg"), let nonce = object.optionalString("nonce"),
              let url = object.optionalString("url"), let kid = object.optionalString("kid") else { return nil }
        switch object["jwk"] {
        case nil, .null?: return Header(alg: alg, nonce: nonce, url: url, jwk: nil, kid: kid)
        default: return nil
        }
    }

    public init(body: Data) throws {
        guard let wire = Self.fastWire(body) ?? (try? JSONDecoder().decode(Wire.self, from: body)) else {
            throw ACMEProblem(.malformed, "the request body must be a flattened JWS: {\"protected\", \"payload\", \"signature\"}")
        }
        guard let protectedData = Base64URL.decode(wire.protected),
              let header = Self.fastHeader(protectedData) ?? (try? JSONDecoder().decode(Header.self, from: protectedData)) else {
            throw ACMEProblem(.malformed, "the JWS protected header is not base64url JSON with \"alg\"")
        }
        guard wire.header == nil else {
            throw ACMEProblem(.malformed, "the JWS has an unprotected \"header\"; ACME requests carry only the protected header")
        }
        guard header.crit == nil else {
            throw ACMEProblem(.malformed, "the JWS protected header lists critical extensions (\"crit\"), and this server supports none")
        }
        guard let signature = Base64URL.decode(wire.signature), !signature.isEmpty else {
            throw ACMEProblem(.malformed, "the JWS signature is not base64url")
        }
        guard let payload = wire.payload.isEmpty ? Data() : Base64URL.decode(wire.payload) else {
            throw ACMEProblem(.malformed, "the JWS payload is not base64url")
        }
        guard ["ES256", "ES384", "RS256", "EdDSA"].contains(header.alg) else {
            throw ACMEProblem(.badSignatureAlgorithm, "unsupported JWS algorithm \(header.alg)", algorithms: ["ES256", "ES384", "RS256", "EdDSA"])
        }
        guard (header.jwk == nil) != (header.kid == nil) else {
            throw ACMEProblem(.malformed, "the JWS header must carry exactly one of \"jwk\" and \"kid\"")
        }
        self.protectedB64 = wire.protected
        self.payloadB64 = wire.payload
        self.signature = signature
        self.header = header
        self.payload = payload
    }

    public var signingInput: Data { Data((protectedB64 + "." + payloadB64).utf8) }

    public func verify(with key: ACMEAccountKey) throws {
        guard key.accepts(algorithm: header.alg) else {
            throw ACMEProblem(.badSignatureAlgorithm, "the key cannot sign with \(header.alg)", algorithms: ["ES256", "ES384", "RS256", "EdDSA"])
        }
        guard key.isValidSignature(signature, for: signingInput) else {
            throw ACMEProblem(.malformed, "the JWS signature does not verify")
        }
    }

    /// The key id an external account binding names, to look its HMAC key up before verifying.
    public static func externalBindingKeyID(_ binding: Data) -> String? {
        struct Wire: Decodable { var protected: String }
        struct Header: Decodable { var kid: String }
        guard let wire = try? JSONDecoder().decode(Wire.self, from: binding), let data = Base64URL.decode(wire.protected) else { return nil }
        return (try? JSONDecoder().decode(Header.self, from: data))?.kid
    }

    /// An External Account Binding (RFC 8555 §7.3.4): a JWS over the account's JWK, MAC'd with the
    /// provisioner's HMAC key. Returns the key id after checking it.
    public static func verifyExternalBinding(
        _ binding: Data, accountKey: ACMEAccountKey, url: String, macKey: (String) -> Data?
    ) throws -> String {
        struct Wire: Decodable { var protected: String; var payload: String; var signature: String; var header: Present? }
        struct Header: Decodable { var alg: String; var kid: String; var url: String; var nonce: String?; var crit: Present?; var jwk: Present? }
        guard let wire = try? JSONDecoder().decode(Wire.self, from: binding),
              let headerData = Base64URL.decode(wire.protected),
              let header = try? JSONDecoder().decode(Header.self, from: headerData),
              let payload = Base64URL.decode(wire.payload),
              let signature = Base64URL.decode(wire.signature) else {
            throw ACMEProblem(.malformed, "externalAccountBinding must be a flattened JWS with alg, kid and url")
        }
        // The same rules as the outer JWS: no unprotected header, no critical extension; and
        // (RFC 8555 §7.3.4) a MAC names its key by kid only.
        guard wire.header == nil else {
            throw ACMEProblem(.malformed, "externalAccountBinding has an unprotected \"header\"; it carries only the protected header")
        }
        guard header.crit == nil else {
            throw ACMEProblem(.malformed, "externalAccountBinding's protected header lists critical extensions (\"crit\"), and this server supports none")
        }
        guard header.jwk == nil else { throw ACMEProblem(.malformed, "externalAccountBinding names its key by kid, not jwk") }
        guard header.nonce == nil else { throw ACMEProblem(.malformed, "externalAccountBinding must not carry a nonce") }
        guard header.url == url else { throw ACMEProblem(.unauthorized, "externalAccountBinding's url must be the newAccount URL") }
        guard let key = macKey(header.kid) else {
            // A key already bound to an account is one-time: not told apart from an unknown one
            // before its MAC is checked (that would tell anyone which key ids exist).
            throw ACMEProblem(
                .unauthorized, "the external account key id \(header.kid) is unknown or already bound to an account; ask the CA operator for a new one")
        }
        let input = Data((wire.protected + "." + wire.payload).utf8)
        let symmetric = SymmetricKey(data: key)
        let valid: Bool
        switch header.alg {
        case "HS256": valid = HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: input, using: symmetric)
        case "HS384": valid = HMAC<SHA384>.isValidAuthenticationCode(signature, authenticating: input, using: symmetric)
        case "HS512": valid = HMAC<SHA512>.isValidAuthenticationCode(signature, authenticating: input, using: symmetric)
        default: throw ACMEProblem(.badSignatureAlgorithm, "externalAccountBinding must use HS256, HS384 or HS512")
        }
        guard valid else { throw ACMEProblem(.unauthorized, "externalAccountBinding's MAC does not verify") }
        guard let bound = try? JSONDecoder().decode(ACMEAccountKey.Fields.self, from: payload),
              let boundKey = try? ACMEAccountKey(jwk: bound), boundKey.thumbprint == accountKey.thumbprint else {
            throw ACMEProblem(.unauthorized, "externalAccountBinding does not bind this account's key")
        }
        return header.kid
    }
}

/// RFC 8555 §6.7 problem documents.
public struct ACMEProblem: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case accountDoesNotExist, alreadyRevoked, badCSR, badNonce, badPublicKey, badRevocationReason
        case badSignatureAlgorithm, caa, connection, dns, externalAccountRequired, incorrectResponse
        case invalidContact, malformed, orderNotReady, rateLimited, rejectedIdentifier, serverInternal
        case tls, unauthorized, unsupportedContact, unsupportedIdentifier, userActionRequired
    }

    public var kind: Kind
    public var detail: String
    public var algorithms: [String]?
    /// An HTTP status chosen by the caller instead of the usual one for the kind (which the ACME
    /// server decides: `ACMEProblem.httpStatus` in AutoSSLACME).
    public var status: Int?

    public init(_ kind: Kind, _ detail: String, algorithms: [String]? = nil, status: Int? = nil) {
        self.kind = kind
        self.detail = detail
        self.algorithms = algorithms
        self.status = status
    }

    public var type: String { "urn:ietf:params:acme:error:" + kind.rawValue }
    public var description: String { "\(type): \(detail)" }
}

/// Key authorization (RFC 8555 §8.1) and the values the challenges publish.
public enum ACMEChallengeValues {
    public static func keyAuthorization(token: String, thumbprint: String) -> String { token + "." + thumbprint }

    /// dns-01: base64url(SHA-256(key authorization)).
    public static func dnsTXT(_ keyAuthorization: String) -> String {
        Base64URL.encode(Array(SHA256.hash(data: Data(keyAuthorization.utf8))))
    }

    /// tls-alpn-01: SHA-256(key authorization), carried in the acmeIdentifier extension.
    public static func tlsALPNDigest(_ keyAuthorization: String) -> [UInt8] {
        Array(SHA256.hash(data: Data(keyAuthorization.utf8)))
    }
}
