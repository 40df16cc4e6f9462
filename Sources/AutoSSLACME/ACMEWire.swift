import AutoSSLCore
import AutoSSLStore
import Foundation

/// The JSON objects of RFC 8555 §7.1 as the server sends them, and the payloads clients send.
/// Encoded with sorted keys and unescaped slashes (`ACMEReply.json`); times are RFC 3339 strings.

/// A problem document (RFC 7807, RFC 8555 §6.7).
public struct ProblemDocument: Codable, Sendable, Equatable {
    public var type: String
    public var detail: String?
    public var status: Int?
    public var algorithms: [String]?

    public init(type: String, detail: String?, status: Int?, algorithms: [String]? = nil) {
        self.type = type
        self.detail = detail
        self.status = status
        self.algorithms = algorithms
    }

    public init(_ problem: ACMEProblem) {
        self.init(type: problem.type, detail: problem.detail, status: problem.httpStatus, algorithms: problem.algorithms)
    }

    /// The stored form (the JSON kept in the database's `error` columns).
    public var stored: String {
        String(decoding: (try? ACMEReply.encoder.encode(self)) ?? Data(), as: UTF8.self)
    }

    /// A stored problem document, or nil when the text is not one.
    public init?(stored text: String?) {
        guard let text, let document = try? JSONDecoder().decode(Self.self, from: Data(text.utf8)) else { return nil }
        self = document
    }
}

public struct ACMEDirectoryObject: Codable, Sendable, Equatable {
    public struct Meta: Codable, Sendable, Equatable {
        public var externalAccountRequired: Bool
        public var website: String
    }

    public var newNonce: String
    public var newAccount: String
    public var newOrder: String
    public var revokeCert: String
    public var keyChange: String
    public var meta: Meta
}

public struct ACMEAccountObject: Codable, Sendable, Equatable {
    public struct Binding: Codable, Sendable, Equatable {
        public var kid: String
    }

    public var status: ACMEAccountStatus
    public var contact: [String]
    public var orders: String
    public var externalAccountBinding: Binding?
}

public struct ACMEOrderObject: Codable, Sendable, Equatable {
    public var status: ACMEOrderStatus
    public var expires: String
    public var identifiers: [ACMEIdentifier]
    public var authorizations: [String]
    public var finalize: String
    public var notBefore: String?
    public var notAfter: String?
    public var certificate: String?
    public var error: ProblemDocument?
}

public struct ACMEOrderListObject: Codable, Sendable, Equatable {
    public var orders: [String]
}

public struct ACMEChallengeObject: Codable, Sendable, Equatable {
    public var type: String
    public var url: String
    public var status: ACMEChallengeStatus
    public var token: String
    public var validated: String?
    public var error: ProblemDocument?
}

public struct ACMEAuthorizationObject: Codable, Sendable, Equatable {
    public var identifier: ACMEIdentifier
    public var status: ACMEAuthorizationStatus
    public var expires: String
    public var challenges: [ACMEChallengeObject]
    public var wildcard: Bool?
}

// MARK: - Payloads

/// newAccount (RFC 8555 §7.3). Lenient where clients differ: a `contact` that is not a list of
/// strings counts as none, an `onlyReturnExisting` that is not `true` as false. The binding is kept
/// as JSON text, to be verified as the JWS it is (`isBindingMalformed` when it is not an object).
public struct NewAccountPayload: Decodable, Sendable {
    public var contact: [String]
    public var onlyReturnExisting: Bool
    public var externalAccountBinding: Data?
    public var isBindingMalformed = false

    enum CodingKeys: String, CodingKey {
        case contact, onlyReturnExisting, externalAccountBinding
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        contact = (try? container.decode([String].self, forKey: .contact)) ?? []
        onlyReturnExisting = (try? container.decode(Bool.self, forKey: .onlyReturnExisting)) ?? false
        externalAccountBinding = nil
        if container.contains(.externalAccountBinding) {
            if let binding = try? container.decode([String: JSONValue].self, forKey: .externalAccountBinding),
               let data = try? JSONEncoder().encode(binding) {
                externalAccountBinding = data
            } else {
                isBindingMalformed = true
            }
        }
    }
}

/// Any JSON value, for parts of a payload that are passed on rather than read.
public enum JSONValue: Codable, Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value.isFinite ? value : 0)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

public struct AccountUpdatePayload: Decodable, Sendable {
    public var contact: [String]?
    public var status: String?
}

public struct NewOrderPayload: Decodable, Sendable {
    public var identifiers: [ACMEIdentifier]
    public var notBefore: String?
    public var notAfter: String?
}

public struct FinalizePayload: Decodable, Sendable, FlatPayload {
    public var csr: String

    init?(flat object: [String: FlatJSON.Value]) {
        guard let csr = object.string("csr") else { return nil }
        self.csr = csr
    }
}

public struct StatusPayload: Decodable, Sendable, FlatPayload {
    public var status: String

    init?(flat object: [String: FlatJSON.Value]) {
        guard let status = object.string("status") else { return nil }
        self.status = status
    }
}

/// A payload that is a flat JSON object, read by `FlatJSON` when it can (ahead of JSONDecoder,
/// which cost 0.4 % of the server's CPU under ACME load for the finalize payload alone). `nil`
/// when a member it needs is missing or of another type: JSONDecoder then decides, and reports,
/// as it always has. Members it does not know are ignored, as JSONDecoder ignores them.
protocol FlatPayload {
    init?(flat object: [String: FlatJSON.Value])
}

public struct RevocationPayload: Decodable, Sendable {
    public var certificate: String
    public var reason: Int?
}

public struct KeyChangePayload: Decodable, Sendable {
    public var account: String
    public var oldKey: ACMEAccountKey.Fields
}

extension ACMEProblem {
    /// The HTTP status of the problem's response (and the document's `status` member): the one the
    /// caller chose, else the usual one for its kind.
    public var httpStatus: Int {
        if let status { return status }
        switch kind {
        case .accountDoesNotExist, .alreadyRevoked, .unauthorized, .externalAccountRequired, .userActionRequired: return 403
        case .orderNotReady: return 403
        case .rateLimited: return 429
        case .serverInternal: return 500
        default: return 400
        }
    }
}

// MARK: - Writing the hot objects

/// A wire object that writes its JSON itself: the order, authorization and challenge objects are
/// in nearly every ACME answer, and `JSONEncoder` cost more than the rest of building them. The
/// text is what `ACMEReply.encoder` writes (sorted keys, slashes unescaped, absent optionals left
/// out), checked against it by `ACMEWireWritingTests`.
public protocol ACMEWritableObject: Encodable {
    func write(to json: inout JSONWriter)
}

extension JSONWriter {
    /// `,"key":` (or without the comma for a first member); `key` needs no escaping.
    mutating func key(_ key: StaticString, first: inout Bool) {
        raw(first ? "\"" : ",\"")
        first = false
        raw(key)
        raw("\":")
    }
}

extension ProblemDocument: ACMEWritableObject {
    public func write(to json: inout JSONWriter) {
        var first = true
        json.raw("{")
        if let algorithms {
            json.key("algorithms", first: &first)
            json.array(algorithms)
        }
        if let detail {
            json.key("detail", first: &first)
            json.string(detail)
        }
        if let status {
            json.key("status", first: &first)
            json.raw(String(status))
        }
        json.key("type", first: &first)
        json.string(type)
        json.raw("}")
    }
}

extension ACMEChallengeObject: ACMEWritableObject {
    public func write(to json: inout JSONWriter) {
        var first = true
        json.raw("{")
        if let error {
            json.key("error", first: &first)
            error.write(to: &json)
        }
        json.key("status", first: &first)
        json.string(status.rawValue)
        json.key("token", first: &first)
        json.string(token)
        json.key("type", first: &first)
        json.string(type)
        json.key("url", first: &first)
        json.string(url)
        if let validated {
            json.key("validated", first: &first)
            json.string(validated)
        }
        json.raw("}")
    }
}

extension ACMEAuthorizationObject: ACMEWritableObject {
    public func write(to json: inout JSONWriter) {
        var first = true
        json.raw("{")
        json.key("challenges", first: &first)
        json.raw("[")
        for (index, challenge) in challenges.enumerated() {
            if index > 0 { json.raw(",") }
            challenge.write(to: &json)
        }
        json.raw("]")
        json.key("expires", first: &first)
        json.string(expires)
        json.key("identifier", first: &first)
        Self.write(identifier, to: &json)
        json.key("status", first: &first)
        json.string(status.rawValue)
        if let wildcard {
            json.key("wildcard", first: &first)
            json.raw(wildcard ? "true" : "false")
        }
        json.raw("}")
    }

    static func write(_ identifier: ACMEIdentifier, to json: inout JSONWriter) {
        json.raw("{\"type\":")
        json.string(identifier.type)
        json.raw(",\"value\":")
        json.string(identifier.value)
        json.raw("}")
    }
}

extension ACMEOrderObject: ACMEWritableObject {
    public func write(to json: inout JSONWriter) {
        var first = true
        json.raw("{")
        json.key("authorizations", first: &first)
        json.array(authorizations)
        if let certificate {
            json.key("certificate", first: &first)
            json.string(certificate)
        }
        if let error {
            json.key("error", first: &first)
            error.write(to: &json)
        }
        json.key("expires", first: &first)
        json.string(expires)
        json.key("finalize", first: &first)
        json.string(finalize)
        json.key("identifiers", first: &first)
        json.raw("[")
        for (index, identifier) in identifiers.enumerated() {
            if index > 0 { json.raw(",") }
            ACMEAuthorizationObject.write(identifier, to: &json)
        }
        json.raw("]")
        if let notAfter {
            json.key("notAfter", first: &first)
            json.string(notAfter)
        }
        if let notBefore {
            json.key("notBefore", first: &first)
            json.string(notBefore)
        }
        json.key("status", first: &first)
        json.string(status.rawValue)
        json.raw("}")
    }
}
