import AsyncHTTPClient
import AutoSSLCore
import Foundation
import NIOCore

/// An S3-compatible service: endpoint, region and credentials. Requests use path-style URLs and
/// Signature V4; the secret key only ever enters the signature.
public struct S3Connection: Sendable {
    public let endpoint: URL
    public let region: String
    public let credentials: SigV4Signer.Credentials
    let scheme: String
    /// host[:port], as signed and as requested.
    let host: String

    public init(endpoint: String?, region: String, credentials: SigV4Signer.Credentials) throws {
        let text = endpoint ?? "https://s3.\(region).amazonaws.com"
        // The endpoint is printed in progress lines and restore hints, so it may not carry
        // credentials; an unreadable one is repeated only if it cannot hold any (no "@").
        guard let url = URL(string: text), let scheme = url.scheme, ["https", "http"].contains(scheme), let host = url.host, !host.isEmpty else {
            let shown = text.contains("@") ? "" : " \"\(text)\""
            throw AutoSSLError.invalidArgument("--s3-endpoint\(shown) is not an http(s) URL", hint: "for example --s3-endpoint https://s3.example.internal:9000")
        }
        guard url.user == nil, url.password == nil else {
            throw AutoSSLError.invalidArgument(
                "--s3-endpoint carries a user name or password",
                hint: "leave them out of the URL: the credentials come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or ~/.aws/credentials")
        }
        self.endpoint = url
        self.region = region
        self.credentials = credentials
        self.scheme = scheme
        self.host = host + (url.port.map { ":\($0)" } ?? "")
    }

    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else ~/.aws/credentials
    /// (profile AWS_PROFILE or "default").
    public static func credentials(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> SigV4Signer.Credentials {
        if let id = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"], !id.isEmpty, !secret.isEmpty {
            return .init(accessKeyID: id, secretAccessKey: secret, sessionToken: environment["AWS_SESSION_TOKEN"])
        }
        let home = environment["HOME"] ?? NSHomeDirectory()
        let file = environment["AWS_SHARED_CREDENTIALS_FILE"] ?? home + "/.aws/credentials"
        let profile = environment["AWS_PROFILE"] ?? "default"
        if let size = (try? FileManager.default.attributesOfItem(atPath: file))?[.size] as? Int, size <= 1 << 20,
           let text = try? String(contentsOfFile: file, encoding: .utf8) {
            var section = ""
            var values: [String: String] = [:]
            for line in text.split(whereSeparator: \.isNewline).map({ $0.trimmingCharacters(in: .whitespaces) }) {
                if line.hasPrefix("[") && line.hasSuffix("]") {
                    section = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                } else if section == profile, let eq = line.firstIndex(of: "=") {
                    values[line[..<eq].trimmingCharacters(in: .whitespaces)] = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                }
            }
            if let id = values["aws_access_key_id"], let secret = values["aws_secret_access_key"] {
                return .init(accessKeyID: id, secretAccessKey: secret, sessionToken: values["aws_session_token"])
            }
        }
        throw AutoSSLError.invalidArgument(
            "no S3 credentials found",
            hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or add a [\(profile)] profile to \(file)")
    }

    /// How long an answer's body may take: 120 s, plus a second for every 256 KiB announced by
    /// its Content-Length (at most `limit`; the whole `limit` when none or a bad one is announced).
    static func bodySeconds(announced: Int?, limit: Int) -> Int64 {
        let bytes = announced.map { min(max($0, 0), limit) } ?? limit
        return 120 + Int64(bytes / (256 << 10))
    }

    /// One signed request; the answer's body is read up to `limit` bytes.
    func request(method: String, path: String, query: [(String, String)] = [], body: [UInt8], limit: Int) async throws -> (Int, [UInt8]) {
        let headers = SigV4Signer(credentials: credentials, region: region)
            .sign(method: method, host: host, path: path, query: query, payload: body, date: Date())
        let queryText = query.isEmpty
            ? "" : "?" + query.map { SigV4Signer.encode($0.0, slash: true) + "=" + SigV4Signer.encode($0.1, slash: true) }.joined(separator: "&")
        var request = HTTPClientRequest(url: "\(scheme)://\(host)\(SigV4Signer.encode(path, slash: false))\(queryText)")
        request.method = .init(rawValue: method)
        for (name, value) in headers where name != "host" { request.headers.add(name: name, value: value) }
        if !body.isEmpty { request.body = .bytes(ByteBuffer(bytes: body)) }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            // The request's time covers sending its body: as long as for an answer of that size.
            let response = try await client.execute(request, timeout: .seconds(Self.bodySeconds(announced: body.count, limit: body.count)))
            // The body too must come within a time (the client's timeout ends with the head): one
            // that grows with the size announced, so a large backup on a slow link still arrives.
            let announced = response.headers.first(name: "content-length").flatMap { Int($0) }
            let seconds = Self.bodySeconds(announced: announced, limit: limit)
            guard let data = try await TimeLimit.run(within: .seconds(seconds), { try await response.body.collect(upTo: limit) }) else {
                try? await client.shutdown()
                throw AutoSSLError(.network, "S3 at \(endpoint.absoluteString) did not finish sending its answer within \(seconds) s")
            }
            try? await client.shutdown()
            return (Int(response.status.code), Array(data.readableBytesView))
        } catch let error as AutoSSLError {
            throw error
        } catch {
            try? await client.shutdown()
            throw AutoSSLError(.network, "could not reach S3 at \(endpoint.absoluteString): \(error)")
        }
    }

    static func failure(_ status: Int, _ body: [UInt8], _ action: String) -> AutoSSLError {
        let code = S3XML.firstValue(of: "Code", in: String(decoding: body.prefix(500), as: UTF8.self))
        return AutoSSLError.general("could not \(action): HTTP \(status)\(code.map { " (\($0))" } ?? "")")
    }
}

/// Backups as objects `<prefix><name>` in one bucket of an S3-compatible service.
public struct S3Destination: BackupDestination {
    public let connection: S3Connection
    public let bucket: String
    /// Put before every name as is: `ca/` makes a folder-like prefix, `ca-` a name prefix.
    public let prefix: String

    public init(connection: S3Connection, bucket: String, prefix: String) throws {
        guard !bucket.isEmpty, !bucket.contains("/") else {
            throw AutoSSLError.invalidArgument("\"\(bucket)\" is not an S3 bucket name")
        }
        self.connection = connection
        self.bucket = bucket
        self.prefix = prefix
    }

    public var description: String { "s3://\(bucket)/\(prefix)" }

    public func location(of name: String) -> String { "s3://\(bucket)/\(prefix)\(name)" }

    /// A single PUT: S3 stores an object whole or not at all.
    @discardableResult
    public func put(_ bytes: [UInt8], name: String) async throws -> String {
        try BackupRotation.checkName(name)
        let (status, body) = try await connection.request(method: "PUT", path: path(of: name), body: bytes, limit: 1 << 20)
        guard status == 200 else { throw S3Connection.failure(status, body, "upload \(location(of: name))") }
        return location(of: name)
    }

    public func get(_ name: String) async throws -> [UInt8] {
        let (status, body) = try await connection.request(method: "GET", path: path(of: name), body: [], limit: BackupLimits.maximumBytes)
        guard status == 200 else { throw S3Connection.failure(status, body, "download \(location(of: name))") }
        return body
    }

    public var listingUnavailableReason: String? { nil }

    /// At most this many backups under one prefix: far more than any rotation keeps, and a bound
    /// on what a listing (a server's word) can make this process hold.
    static let maximumListedBackups = 100_000

    /// ListObjectsV2 under the prefix, page by page (at most 1,000 pages, of at most 16 MiB each,
    /// and at most `maximumListedBackups` backup names in all).
    public func list() async throws -> [String] {
        var names: [String] = []
        var continuation: String?
        for _ in 0..<1_000 {
            var query = [("list-type", "2"), ("prefix", prefix), ("delimiter", "/")]
            if let continuation { query.append(("continuation-token", continuation)) }
            let (status, body) = try await connection.request(method: "GET", path: "/" + bucket, query: query, body: [], limit: 16 << 20)
            guard status == 200 else { throw S3Connection.failure(status, body, "list \(description)") }
            let text = String(decoding: body, as: UTF8.self)
            for key in S3XML.values(of: "Key", in: text) where key.hasPrefix(prefix) {
                let name = String(key.dropFirst(prefix.count))
                if BackupRotation.isBackupName(name) { names.append(name) }
                guard names.count <= Self.maximumListedBackups else {
                    throw AutoSSLError.general(
                        "could not list \(description): more than \(Self.maximumListedBackups) backups under the prefix; nothing was deleted",
                        hint: "move old backups to another prefix, or rotate them with the bucket's lifecycle rules")
                }
            }
            guard S3XML.firstValue(of: "IsTruncated", in: text) == "true" else { return names }
            guard let next = S3XML.firstValue(of: "NextContinuationToken", in: text), !next.isEmpty else {
                throw AutoSSLError.general("could not list \(description): a truncated listing without a continuation token")
            }
            continuation = next
        }
        throw AutoSSLError.general("could not list \(description): more than 1,000 pages of objects")
    }

    public func delete(_ name: String) async throws {
        try BackupRotation.checkName(name)
        let (status, body) = try await connection.request(method: "DELETE", path: path(of: name), body: [], limit: 1 << 20)
        guard status == 204 || status == 200 else { throw S3Connection.failure(status, body, "delete \(location(of: name))") }
    }

    func path(of name: String) -> String { "/" + bucket + "/" + prefix + name }
}

/// The few elements read from S3's XML answers (error codes, listed keys), by plain search: no
/// entity expansion beyond the five predefined ones, no DTDs.
enum S3XML {
    /// The text of every `<element>...</element>`, in order. One pass over the bytes: a listing
    /// page may be 16 MiB of keys, and Foundation's `range(of:)` on the rest of the text each time
    /// (which copies it) made such a page cost minutes of CPU.
    static func values(of element: String, in text: String) -> [String] {
        let bytes = Array(text.utf8)
        let open = Array("<\(element)>".utf8)
        let close = Array("</\(element)>".utf8)
        var found: [String] = []
        var position = 0
        // The closing tag is searched after the opening one: a body with them in the other order
        // must not make a backwards range.
        while let start = find(open, in: bytes, from: position), let end = find(close, in: bytes, from: start + open.count) {
            found.append(unescape(String(decoding: bytes[(start + open.count)..<end], as: UTF8.self)))
            position = end + close.count
        }
        return found
    }

    static func firstValue(of element: String, in text: String) -> String? {
        let bytes = Array(text.utf8)
        let open = Array("<\(element)>".utf8)
        let close = Array("</\(element)>".utf8)
        guard let start = find(open, in: bytes, from: 0), let end = find(close, in: bytes, from: start + open.count) else { return nil }
        return unescape(String(decoding: bytes[(start + open.count)..<end], as: UTF8.self))
    }

    /// The first index at or after `from` where `needle` (a short tag) starts in `haystack`.
    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard !needle.isEmpty, from >= 0, from <= haystack.count else { return nil }
        return haystack[from...].firstRange(of: needle)?.lowerBound
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
