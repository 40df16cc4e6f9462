import AsyncHTTPClient
import AutoSSLCore
import Foundation
import NIOCore
import NIOFoundationCompat

/// Puts and gets backup objects in S3-compatible storage (path-style URLs, Signature V4).
public struct S3ObjectStore: Sendable {
    public let endpoint: URL
    public let region: String
    public let credentials: SigV4Signer.Credentials

    public init(endpoint: String?, region: String, credentials: SigV4Signer.Credentials) throws {
        let text = endpoint ?? "https://s3.\(region).amazonaws.com"
        guard let url = URL(string: text), let scheme = url.scheme, ["https", "http"].contains(scheme), url.host != nil else {
            throw AutoSSLError.invalidArgument("--s3-endpoint \"\(text)\" is not an http(s) URL")
        }
        self.endpoint = url
        self.region = region
        self.credentials = credentials
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
        if let text = try? String(contentsOfFile: file, encoding: .utf8) {
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

    func request(method: String, bucket: String, key: String, body: [UInt8]) async throws -> (Int, [UInt8]) {
        let path = "/" + bucket + "/" + key
        let port = endpoint.port.map { ":\($0)" } ?? ""
        let host = (endpoint.host ?? "") + port
        let headers = SigV4Signer(credentials: credentials, region: region)
            .sign(method: method, host: host, path: path, payload: body, date: Date())
        var request = HTTPClientRequest(url: "\(endpoint.scheme!)://\(host)\(SigV4Signer.encode(path, slash: false))")
        request.method = .init(rawValue: method)
        for (name, value) in headers where name != "host" { request.headers.add(name: name, value: value) }
        if !body.isEmpty { request.body = .bytes(ByteBuffer(bytes: body)) }
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            let response = try await client.execute(request, timeout: .seconds(120))
            let data = try await response.body.collect(upTo: 512 << 20)
            try? await client.shutdown()
            return (Int(response.status.code), Array(data.readableBytesView))
        } catch {
            try? await client.shutdown()
            throw AutoSSLError(.network, "could not reach S3 at \(endpoint.absoluteString): \(error)")
        }
    }

    public func put(_ bytes: [UInt8], bucket: String, key: String) async throws {
        let (status, body) = try await request(method: "PUT", bucket: bucket, key: key, body: bytes)
        guard status == 200 else { throw Self.failure(status, body, "upload s3://\(bucket)/\(key)") }
    }

    public func get(bucket: String, key: String) async throws -> [UInt8] {
        let (status, body) = try await request(method: "GET", bucket: bucket, key: key, body: [])
        guard status == 200 else { throw Self.failure(status, body, "download s3://\(bucket)/\(key)") }
        return body
    }

    static func failure(_ status: Int, _ body: [UInt8], _ action: String) -> AutoSSLError {
        let text = String(decoding: body.prefix(500), as: UTF8.self)
        // The closing tag is searched after the opening one: a body with them in the other order
        // must not make a backwards range.
        let code = text.range(of: "<Code>").flatMap { start in
            text[start.upperBound...].range(of: "</Code>").map { String(text[start.upperBound..<$0.lowerBound]) }
        }
        return AutoSSLError.general("could not \(action): HTTP \(status)\(code.map { " (\($0))" } ?? "")")
    }
}
