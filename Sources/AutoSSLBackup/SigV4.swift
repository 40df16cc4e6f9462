import AutoSSLCore
import Crypto
import Foundation

/// AWS Signature Version 4 for S3 requests (path-style URLs, single-chunk payloads), so backups can
/// go to any S3-compatible store without an SDK. Checked against botocore's signer in the tests.
public struct SigV4Signer: Sendable {
    public struct Credentials: Sendable, Equatable {
        public var accessKeyID: String
        public var secretAccessKey: String
        public var sessionToken: String?

        public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
        }
    }

    public let credentials: Credentials
    public let region: String
    public let service: String

    public init(credentials: Credentials, region: String, service: String = "s3") {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    /// Headers to add to the request: host, x-amz-date, x-amz-content-sha256, (x-amz-security-token), Authorization.
    public func sign(method: String, host: String, path: String, query: [(String, String)] = [], headers: [String: String] = [:],
                     payload: [UInt8], date: Date) -> [String: String] {
        let amzDate = Self.amzDate(date)
        let day = String(amzDate.prefix(8))
        let payloadHash = Hex.encode(SHA256.hash(data: payload))
        var signed = headers.reduce(into: [String: String]()) { $0[$1.key.lowercased()] = $1.value.trimmingCharacters(in: .whitespaces) }
        signed["host"] = host
        signed["x-amz-date"] = amzDate
        signed["x-amz-content-sha256"] = payloadHash
        if let token = credentials.sessionToken { signed["x-amz-security-token"] = token }
        let names = signed.keys.sorted()
        var encodedQuery: [(String, String)] = query.map { (Self.encode($0.0, slash: true), Self.encode($0.1, slash: true)) }
        encodedQuery.sort { (a: (String, String), b: (String, String)) -> Bool in a.0 == b.0 ? a.1 < b.1 : a.0 < b.0 }
        let canonicalQuery = encodedQuery.map { (pair: (String, String)) -> String in pair.0 + "=" + pair.1 }.joined(separator: "&")
        let canonicalRequest = [
            method, Self.encode(path, slash: false), canonicalQuery,
            names.map { "\($0):\(signed[$0] ?? "")\n" }.joined(), names.joined(separator: ";"), payloadHash,
        ].joined(separator: "\n")
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope, Hex.encode(SHA256.hash(data: Data(canonicalRequest.utf8)))]
            .joined(separator: "\n")
        var key = SymmetricKey(data: Data(("AWS4" + credentials.secretAccessKey).utf8))
        for part in [day, region, service, "aws4_request"] {
            key = SymmetricKey(data: Data(HMAC<SHA256>.authenticationCode(for: Data(part.utf8), using: key)))
        }
        let signature = Hex.encode(HMAC<SHA256>.authenticationCode(for: Data(stringToSign.utf8), using: key))
        signed["authorization"] = "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope), SignedHeaders=\(names.joined(separator: ";")), Signature=\(signature)"
        return signed
    }

    static func amzDate(_ date: Date) -> String {
        // 20130524T000000Z
        Timestamp.rfc3339(date).replacingOccurrences(of: "-", with: "").replacingOccurrences(of: ":", with: "")
    }

    /// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters stay, `/` stays in paths.
    public static func encode(_ text: String, slash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            let c = Character(UnicodeScalar(byte))
            if c.isASCII && (c.isLetter || c.isNumber || "-._~".contains(c)) || (!slash && c == "/") {
                out.append(c)
            } else {
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }
}
