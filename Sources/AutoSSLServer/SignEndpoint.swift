import AutoSSLCA
import AutoSSLCore
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore

/// `/sign` and the gate in front of every authenticated endpoint, as one value: the router
/// (`CAServer`) and the pipeline handler (`FastPath`) both hold it, so the rules (rate limit,
/// body limit, failure counting and auditing, the response body) exist once whichever path a
/// request takes.
final class SignEndpoint: Sendable {
    /// Request bodies are capped at 1 MiB (HTTP 413 beyond).
    static let maximumBodySize = 1 << 20

    let authority: Authority
    let limiter: FailureLimiter
    let logger: Logger
    /// The intermediate as a JSON string, once: it is in every issuance's response.
    let quotedIntermediatePEMBytes: [UInt8]

    init(authority: Authority, limiter: FailureLimiter = FailureLimiter(), logger: Logger) throws {
        self.authority = authority
        self.limiter = limiter
        self.logger = logger
        self.quotedIntermediatePEMBytes = Array(JSONText.quote(try authority.intermediate.pemString()).utf8)
    }

    /// A client that failed authentication too often waits before anything else is looked at.
    func refuseIfRateLimited(_ remote: String) throws {
        if let wait = limiter.retryAfter(remote) {
            authority.record(.rateLimited(remote: remote))
            throw APIError(
                status: .tooManyRequests,
                message: "too many failed authentication attempts from \(remote); retry in \(wait) s",
                headers: [.retryAfter: "\(wait)"])
        }
    }

    func bodyTooLarge(remote: String, path: String) -> HTTPError {
        authority.record(.bodyTooLarge(remote: remote, path: path, limit: Self.maximumBodySize))
        return HTTPError(.contentTooLarge)
    }

    /// Runs an authenticated request's work, remembering authentication failures for the rate
    /// limiter and auditing malformed bodies (which never reach the authority).
    func countingFailures<T>(remote: String, path: String, _ work: () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch let error as AuthorityError where error.kind == .unauthorized {
            limiter.recordFailure(remote)
            throw error
        } catch let error as APIError where error.status == .badRequest {
            authority.record(.refused(remote: remote, path: path, reason: error.message))
            throw error
        }
    }

    /// `/sign` once its body is read: the response body.
    func signedChain(body buffer: ByteBuffer, remote: String) async throws -> ByteBuffer {
        let body = try SignBody.decode(buffer)
        return chainBody(try await authority.sign(
            .init(csrPEM: body.csr, token: body.ott, notBefore: body.notBefore, notAfter: body.notAfter, remote: remote)))
    }

    /// `{"ca", "certChain", "crt"}`, written straight into the response buffer: it is on every
    /// issuance's path. The authority always signs with its current intermediate.
    func chainBody(_ issued: IssuedCertificate) -> ByteBuffer {
        let leaf = PEM.jsonQuoted(issued.leafDER, label: "CERTIFICATE")
        let ca = quotedIntermediatePEMBytes
        var body = ByteBuffer()
        body.reserveCapacity(2 * (leaf.count + ca.count) + 40)
        body.writeStaticString(#"{"ca":"#)
        body.writeBytes(ca)
        body.writeStaticString(#","certChain":["#)
        body.writeBytes(leaf)
        body.writeStaticString(",")
        body.writeBytes(ca)
        body.writeStaticString(#"],"crt":"#)
        body.writeBytes(leaf)
        body.writeStaticString("}")
        return body
    }

    static func decode<Body: Decodable>(_ type: Body.Type, _ buffer: ByteBuffer, expected: String) throws -> Body {
        do {
            return try JSONDecoder().decode(type, from: Data(buffer: buffer))
        } catch {
            throw APIError(status: .badRequest, message: "the body must be " + expected)
        }
    }

    struct SignBody: Decodable {
        var csr: String
        var ott: String
        var notBefore: String?
        var notAfter: String?

        /// The usual shape through the fast reader; anything else through JSONDecoder (and its errors).
        static func decode(_ buffer: ByteBuffer) throws -> SignBody {
            let fast: SignBody? = buffer.withUnsafeReadableBytes { raw in
                guard let object = FlatJSON.object(raw.bindMemory(to: UInt8.self)),
                      let csr = object.string("csr"), let ott = object.string("ott"),
                      let notBefore = object.optionalString("notBefore"), let notAfter = object.optionalString("notAfter") else {
                    return nil
                }
                return SignBody(csr: csr, ott: ott, notBefore: notBefore, notAfter: notAfter)
            }
            if let fast { return fast }
            return try SignEndpoint.decode(
                SignBody.self, buffer,
                expected: "JSON with string fields \"csr\" and \"ott\" (and optional \"notBefore\", \"notAfter\")")
        }
    }
}
