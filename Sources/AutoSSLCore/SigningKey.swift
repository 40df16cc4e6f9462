import Crypto
import Foundation
import SwiftASN1
import X509
import _CryptoExtras

/// The key algorithms the product creates and accepts.
public enum KeyAlgorithm: String, CaseIterable, Sendable, Codable {
    /// The leaf key a machine makes for itself, from `--key-type ec|rsa`: P-256 or RSA 2048.
    public static func leaf(keyType: String) throws -> KeyAlgorithm {
        switch keyType.lowercased() {
        case "ec": return .p256
        case "rsa": return .rsa2048
        default: throw AutoSSLError.invalidArgument("--key-type must be ec or rsa, not \"\(keyType)\"")
        }
    }

    case p256 = "P-256"
    case p384 = "P-384"
    case rsa2048 = "RSA-2048"
    case rsa3072 = "RSA-3072"
    case rsa4096 = "RSA-4096"

    public var isRSA: Bool {
        switch self {
        case .p256, .p384: return false
        case .rsa2048, .rsa3072, .rsa4096: return true
        }
    }

    /// The signature algorithm a key of this kind signs certificates with (never SHA-1).
    public var signatureAlgorithm: Certificate.SignatureAlgorithm {
        switch self {
        case .p256: return .ecdsaWithSHA256
        case .p384: return .ecdsaWithSHA384
        case .rsa2048, .rsa3072, .rsa4096: return .sha256WithRSAEncryption
        }
    }

    /// Human form, e.g. "ECDSA P-256" or "RSA 4096".
    public var displayName: String {
        switch self {
        case .p256: return "ECDSA P-256"
        case .p384: return "ECDSA P-384"
        case .rsa2048: return "RSA 2048"
        case .rsa3072: return "RSA 3072"
        case .rsa4096: return "RSA 4096"
        }
    }

    /// Identifies the algorithm of a public key; nil for anything we do not accept (RSA below 2048, other curves).
    public init?(publicKey: Certificate.PublicKey) {
        if P256.Signing.PublicKey(publicKey) != nil {
            self = .p256
        } else if P384.Signing.PublicKey(publicKey) != nil {
            self = .p384
        } else if let rsa = _RSA.Signing.PublicKey(publicKey) {
            switch rsa.keySizeInBits {
            case 2048: self = .rsa2048
            case 3072: self = .rsa3072
            case 4096: self = .rsa4096
            default: return nil
            }
        } else {
            return nil
        }
    }
}

/// A private key the CA or a server signs with. Wraps the concrete swift-crypto key so it can be
/// serialised as PKCS#8 whatever its type (swift-certificates writes RSA as PKCS#1).
public struct SigningKey: Sendable {
    public let algorithm: KeyAlgorithm
    private let backing: Backing

    private enum Backing: Sendable {
        case p256(P256.Signing.PrivateKey)
        case p384(P384.Signing.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey)
    }

    /// Generates a fresh key from the system CSPRNG. RSA 4096 takes a few seconds.
    public static func generate(_ algorithm: KeyAlgorithm) throws -> SigningKey {
        switch algorithm {
        case .p256: return SigningKey(algorithm: algorithm, backing: .p256(P256.Signing.PrivateKey()))
        case .p384: return SigningKey(algorithm: algorithm, backing: .p384(P384.Signing.PrivateKey()))
        case .rsa2048: return SigningKey(algorithm: algorithm, backing: .rsa(try .init(keySize: .bits2048)))
        case .rsa3072: return SigningKey(algorithm: algorithm, backing: .rsa(try .init(keySize: .bits3072)))
        case .rsa4096: return SigningKey(algorithm: algorithm, backing: .rsa(try .init(keySize: .bits4096)))
        }
    }

    private init(algorithm: KeyAlgorithm, backing: Backing) {
        self.algorithm = algorithm
        self.backing = backing
    }

    /// Reads an unencrypted PKCS#8 PrivateKeyInfo (DER). Also accepts SEC1 / PKCS#1, which the
    /// underlying parsers understand, so keys written by other tools load too.
    public init(derRepresentation der: some DataProtocol) throws {
        let bytes = Array(der)
        let identified = try? Certificate.PrivateKey(derBytes: bytes)
        if let p256 = try? P256.Signing.PrivateKey(derRepresentation: bytes) {
            self.init(algorithm: .p256, backing: .p256(p256))
        } else if let p384 = try? P384.Signing.PrivateKey(derRepresentation: bytes) {
            self.init(algorithm: .p384, backing: .p384(p384))
        } else if let rsa = try? _RSA.Signing.PrivateKey(derRepresentation: bytes) {
            switch rsa.keySizeInBits {
            case 2048: self.init(algorithm: .rsa2048, backing: .rsa(rsa))
            case 3072: self.init(algorithm: .rsa3072, backing: .rsa(rsa))
            case 4096: self.init(algorithm: .rsa4096, backing: .rsa(rsa))
            default:
                throw AutoSSLError.general("unsupported RSA key size \(rsa.keySizeInBits) bits (use 2048, 3072 or 4096)")
            }
        } else if identified != nil {
            throw AutoSSLError.general("unsupported private key type (use ECDSA P-256, P-384 or RSA 2048-4096)")
        } else {
            throw AutoSSLError.general("the private key could not be parsed")
        }
    }

    /// PKCS#8 PrivateKeyInfo, DER.
    public var pkcs8DERRepresentation: [UInt8] {
        switch backing {
        case .p256(let key): return Array(key.derRepresentation)
        case .p384(let key): return Array(key.derRepresentation)
        case .rsa(let key): return Array(key.pkcs8DERRepresentation)
        }
    }

    /// Unencrypted PKCS#8 PEM ("PRIVATE KEY") with a trailing newline — for server keys that web servers read.
    public var pkcs8PEMRepresentation: String {
        PEMDocument(type: "PRIVATE KEY", derBytes: pkcs8DERRepresentation).pemString + "\n"
    }

    public var certificateKey: Certificate.PrivateKey {
        switch backing {
        case .p256(let key): return Certificate.PrivateKey(key)
        case .p384(let key): return Certificate.PrivateKey(key)
        case .rsa(let key): return Certificate.PrivateKey(key)
        }
    }

    public var publicKey: Certificate.PublicKey { certificateKey.publicKey }

    /// The P-256 key itself, for JOSE (ES256) signing.
    public var p256Key: P256.Signing.PrivateKey? {
        if case .p256(let key) = backing { return key }
        return nil
    }
}

extension SigningKey {
    /// Signs `data` the way X.509 structures carry signatures: DER ECDSA (SHA-256 for P-256,
    /// SHA-384 for P-384) or RSA PKCS#1 v1.5 with SHA-256, matching `algorithm.signatureAlgorithm`.
    public func signForX509(_ data: [UInt8]) throws -> [UInt8] {
        switch backing {
        case .p256(let key): return Array(try key.signature(for: data).derRepresentation)
        case .p384(let key): return Array(try key.signature(for: data).derRepresentation)
        case .rsa(let key): return Array(try key.signature(for: data, padding: .insecurePKCS1v1_5).rawRepresentation)
        }
    }
}

extension SigningKey {
    /// JOSE signatures: raw r‖s for ECDSA (ES256/ES384), PKCS#1 v1.5 for RSA (RS256).
    public func signJOSE(_ data: [UInt8]) throws -> [UInt8] {
        switch backing {
        case .p256(let key): return Array(try key.signature(for: data).rawRepresentation)
        case .p384(let key): return Array(try key.signature(for: data).rawRepresentation)
        case .rsa(let key): return Array(try key.signature(for: data, padding: .insecurePKCS1v1_5).rawRepresentation)
        }
    }
}
