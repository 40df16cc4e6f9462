import AutoSSLCore
import Foundation

/// What the ACME authority answers, for the HTTP layer to send as it is: status, body, and the
/// headers RFC 8555 gives meaning to. The HTTP layer adds Replay-Nonce, the index Link and
/// Cache-Control to every reply.
public struct ACMEReply: Sendable {
    public var status: Int
    public var contentType: String?
    public var body: [UInt8]
    public var location: String?
    /// Seconds, for a resource still being worked on.
    public var retryAfter: Int?
    /// Link header values besides the directory index (`<url>;rel="up"`).
    public var links: [String] = []

    public init(status: Int, contentType: String?, body: [UInt8], location: String? = nil) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.location = location
    }

    static let encoder: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    public static func json(_ object: some Encodable, status: Int = 200, location: String? = nil) throws -> ACMEReply {
        ACMEReply(status: status, contentType: "application/json", body: Array(try encoder.encode(object)), location: location)
    }

    /// The same, for an object that writes its JSON itself (the same text, without `JSONEncoder`).
    public static func json(_ object: some ACMEWritableObject, status: Int = 200, location: String? = nil) throws -> ACMEReply {
        ACMEReply(status: status, contentType: "application/json", body: written(object), location: location)
    }

    /// The JSON an `ACMEWritableObject` writes.
    static func written(_ object: some ACMEWritableObject) -> [UInt8] {
        var writer = JSONWriter(capacity: 512)
        object.write(to: &writer)
        return writer.bytes
    }

    public static func problem(_ problem: ACMEProblem) -> ACMEReply {
        ACMEReply(
            status: problem.httpStatus, contentType: "application/problem+json",
            body: written(ProblemDocument(problem)))
    }

    public static func empty(_ status: Int) -> ACMEReply {
        ACMEReply(status: status, contentType: nil, body: [])
    }

    public static func pemChain(_ pem: String) -> ACMEReply {
        ACMEReply(status: 200, contentType: "application/pem-certificate-chain", body: Array(pem.utf8))
    }

    /// With `Retry-After: 1` when `pending`.
    func retrying(when pending: Bool) -> ACMEReply {
        var copy = self
        if pending { copy.retryAfter = 1 }
        return copy
    }
}
