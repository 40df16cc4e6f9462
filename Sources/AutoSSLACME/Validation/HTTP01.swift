import AutoSSLCore
import AutoSSLWire
import Foundation

/// http-01 (RFC 8555 §8.3): the key authorization, served over plain HTTP at
/// `/.well-known/acme-challenge/TOKEN` on the identifier's host, port 80 unless the provisioner
/// says otherwise. Redirects are followed (at most 10, as Let's Encrypt does) to http on the
/// http-01 port or https on the tls-alpn-01 port, https without certificate checks (§8.3 allows
/// it); every address a redirect leads to passes the address policy first.
extension ChallengeValidator {
    static let maximumRedirects = 10
    static let maximumLocationBytes = 2_048

    func http01(_ identifier: ACMEIdentifierValue, token: String, keyAuthorization: String, deadline: ValidationDeadline) async throws {
        let host = identifier.hostHeader
        let start = FetchTarget(https: false, host: host, port: http01Port, path: "/.well-known/acme-challenge/" + token)
        var last: ACMEProblem?
        for address in try await addresses(identifier, deadline: deadline) {
            do {
                let (answer, url) = try await fetchFollowingRedirects(start, firstAddress: address, deadline: deadline)
                guard answer.status == 200 else {
                    throw ACMEProblem(.unauthorized, "\(url) answered HTTP \(answer.status) (from \(address))")
                }
                // The key authorization (base64url and a dot) has no whitespace: a body that is
                // exactly it needs no trimming (Foundation's trim was 0.4 % of the server's CPU).
                if answer.body.elementsEqual(keyAuthorization.utf8) { return }
                let text = String(decoding: answer.body, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                guard text == keyAuthorization else {
                    throw ACMEProblem(.incorrectResponse, "wrong content: the key authorization served at \(url) is not the expected one (from \(address))")
                }
                return
            } catch let problem as ACMEProblem {
                last = Self.moreTelling(last, problem)
            } catch {
                last = Self.moreTelling(
                    last, ACMEProblem(.connection, "could not fetch \(start.url): \(ValidationWords.plain(error, target: address.description))"))
            }
        }
        throw last ?? ACMEProblem(.connection, "no address to connect to for \(host)")
    }

    struct FetchTarget: Sendable, Equatable {
        var https: Bool
        var host: String
        var port: Int
        var path: String

        var url: String {
            let defaultPort = https ? 443 : 80
            return (https ? "https://" : "http://") + host + (port == defaultPort ? "" : ":\(port)") + path
        }
    }

    /// One GET after another while the answer is a redirect; the first to `firstAddress`, later ones
    /// to the first address of the redirect's host that answers (and that the policy allows).
    func fetchFollowingRedirects(_ start: FetchTarget, firstAddress: IPAddress, deadline: ValidationDeadline) async throws -> (HTTPAnswer, String) {
        var target = start
        var address: IPAddress? = firstAddress
        for hop in 0...Self.maximumRedirects {
            var candidates: [IPAddress]
            if let address {
                candidates = [address]
            } else if let ip = IPAddress(target.host) {
                candidates = try await addresses(.ip(ip), deadline: deadline)
            } else {
                guard case .dns(let name)? = try? SubjectName(parsing: target.host) else {
                    throw ACMEProblem(.unauthorized, "the redirect to \(target.url) names no valid host")
                }
                candidates = try await addresses(.dns(name), deadline: deadline)
            }
            var answer: HTTPAnswer?
            var failure: (any Error)?
            for candidate in candidates {
                do {
                    answer = try await fetch(target, address: candidate, deadline: deadline)
                    break
                } catch {
                    failure = error
                }
            }
            guard let answer else {
                throw ACMEProblem(.connection, "could not fetch \(target.url): \(failure.map { ValidationWords.plain($0) } ?? "no address")")
            }
            guard [301, 302, 303, 307, 308].contains(answer.status), let location = answer.headers["location"] else {
                return (answer, target.url)
            }
            guard hop < Self.maximumRedirects else {
                throw ACMEProblem(.unauthorized, "more than \(Self.maximumRedirects) redirects from \(start.url)")
            }
            target = try redirectTarget(location, from: target)
            address = nil
        }
        throw ACMEProblem(.unauthorized, "more than \(Self.maximumRedirects) redirects from \(start.url)")
    }

    /// Where a `Location` leads: absolute http(s) URLs on the validation ports, or a path on the same server.
    func redirectTarget(_ location: String, from current: FetchTarget) throws -> FetchTarget {
        guard location.utf8.count <= Self.maximumLocationBytes else {
            throw ACMEProblem(.unauthorized, "the redirect's Location is longer than \(Self.maximumLocationBytes) bytes")
        }
        if location.hasPrefix("/") {
            var next = current
            next.path = location
            return next
        }
        guard let url = URLComponents(string: location), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            throw ACMEProblem(.unauthorized, "the redirect to \(location) is not an absolute http(s) URL")
        }
        var target: FetchTarget
        switch scheme {
        case "http": target = FetchTarget(https: false, host: host, port: url.port ?? 80, path: "")
        case "https": target = FetchTarget(https: true, host: host, port: url.port ?? 443, path: "")
        default: throw ACMEProblem(.unauthorized, "the redirect to \(location) is neither http nor https")
        }
        guard target.port == (target.https ? tlsALPN01Port : http01Port) else {
            throw ACMEProblem(
                .unauthorized,
                "the redirect to \(location) uses port \(target.port); validation follows redirects only to port \(http01Port) (http) and \(tlsALPN01Port) (https)")
        }
        target.host = host.hasPrefix("[") && host.hasSuffix("]") && host.count >= 2 ? String(host.dropFirst().dropLast()) : host
        target.path = (url.percentEncodedPath.isEmpty ? "/" : url.percentEncodedPath) + (url.percentEncodedQuery.map { "?" + $0 } ?? "")
        return target
    }

    /// The GET for one hop: the Host header carries the port unless it is the scheme's default (or,
    /// for http, the configured http-01 port, as clients serving a non-default port expect).
    func fetch(_ target: FetchTarget, address: IPAddress, deadline: ValidationDeadline) async throws -> HTTPAnswer {
        let hostHeader = IPAddress(target.host).map { $0.isIPv4 ? $0.description : "[\($0.description)]" } ?? target.host
        let hostWithPort = hostHeader + (target.port == (target.https ? 443 : 80) ? "" : ":\(target.port)")
        guard (1...65_535).contains(target.port) else { throw ACMEProblem(.connection, "port \(target.port) is not a valid port") }
        if target.https {
            return try await network.get(
                HTTPGet(
                    address: address, port: target.port, tls: true, serverName: IPAddress(target.host) == nil ? target.host : nil,
                    host: hostWithPort, path: target.path),
                deadline: deadline)
        }
        let host = target.port == 80 || target.port == http01Port ? hostHeader : hostWithPort
        return try await network.get(
            HTTPGet(address: address, port: target.port, tls: false, serverName: nil, host: host, path: target.path), deadline: deadline)
    }
}
