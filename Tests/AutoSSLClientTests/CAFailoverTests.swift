import AsyncHTTPClient
import AutoSSLCore
import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import TestSupport
import X509

@testable import AutoSSLClient

/// Trying a CA's URLs in turn: which failures move on, which stop, and what is said at the end.
@Suite struct CAFailoverTests {
    static let a = "https://10.0.0.1:9000"
    static let b = "https://10.0.0.2:9000"
    static let c = "https://10.0.0.3:9000"

    /// What a refused connection to `url` becomes in the client.
    static func refused(_ url: String) -> any Error {
        CAClient.map(IOError(errnoCode: ECONNREFUSED, reason: "connect"), url: url)
    }

    /// Records the URLs tried and the policy each was tried with.
    final class Trail: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [(url: String, policy: CAConnectPolicy)] = []

        func add(_ url: String, _ policy: CAConnectPolicy) {
            lock.lock()
            entries.append((url, policy))
            lock.unlock()
        }

        var urls: [String] {
            lock.lock()
            defer { lock.unlock() }
            return entries.map(\.url)
        }

        var policies: [CAConnectPolicy] {
            lock.lock()
            defer { lock.unlock() }
            return entries.map(\.policy)
        }
    }

    @Test func urlsAreNormalisedDeduplicatedAndKeepTheirOrder() throws {
        let endpoints = try CAEndpoints(["https://b.internal:9000/", "https://a.internal:9000", " https://b.internal:9000 "])
        #expect(endpoints.urls == ["https://b.internal:9000", "https://a.internal:9000"])
        #expect(endpoints.first == "https://b.internal:9000")
        #expect(throws: AutoSSLError.self) { try CAEndpoints([]) }
        #expect(throws: AutoSSLError.self) { try CAEndpoints(["https://a.internal:9000", "http://b.internal:9000"]) }
    }

    @Test func urlsAreTriedInOrderAndTheFirstThatAnswersIsUsed() async throws {
        let trail = Trail()
        let answer = try await CAFailover.run(try CAEndpoints([Self.a, Self.b, Self.c])) { url, policy in
            trail.add(url, policy)
            if url == Self.a { throw Self.refused(url) }
            return "answer from \(url)"
        }
        #expect(answer.value == "answer from \(Self.b)")
        #expect(trail.urls == [Self.a, Self.b], "the URL after the one that answered is never tried")
        #expect(answer.contact.url == Self.b && answer.contact.choices == 3)
        #expect(answer.contact.skipped == [.init(url: Self.a, failure: "connection refused by 10.0.0.1:9000 (is the server running there?)")])
        #expect(answer.contact.summary.hasPrefix("\(Self.b) answered (after \(Self.a): connection refused"))
    }

    /// Every URL with another after it waits at most a second to connect; the last (or only) one
    /// at most five. None retries a refused connection.
    @Test func onlyTheLastURLIsTriedPatiently() async throws {
        let trail = Trail()
        _ = try? await CAFailover.run(try CAEndpoints([Self.a, Self.b, Self.c])) { url, policy -> String in
            trail.add(url, policy)
            throw Self.refused(url)
        }
        #expect(trail.urls == [Self.a, Self.b, Self.c])
        #expect(trail.policies == [.failover, .failover, .patient])
        #expect(CAConnectPolicy.failover.connectTimeout == .seconds(1) && !CAConnectPolicy.failover.retriesConnecting)
        #expect(CAConnectPolicy.patient.connectTimeout == .seconds(5) && !CAConnectPolicy.patient.retriesConnecting)

        let single = Trail()
        _ = try? await CAFailover.run(try CAEndpoints([Self.a])) { url, policy -> String in
            single.add(url, policy)
            throw Self.refused(url)
        }
        #expect(single.policies == [.patient])
    }

    @Test func aRefusalFromTheCAIsNotRetriedOnTheNextURL() async throws {
        let client = try CAClient(baseURL: Self.b, root: try CAClientTests.Chain().root)
        defer { Task { await client.shutdown() } }
        let refusals: [any Error] = [
            client.refusal(status: 401, body: Data(#"{"message":"the token was already used"}"#.utf8), action: "sign the certificate"),
            client.refusal(status: 403, body: Data(), action: "renew the certificate"),
            client.refusal(status: 400, body: Data(), action: "sign the certificate"),
            client.refusal(status: 429, body: Data(), action: "sign the certificate"),
            client.refusal(status: 500, body: Data(), action: "sign the certificate"),
            AutoSSLError(.trustFailure, "the CA at \(Self.b) is not the one you expect: its root fingerprint is 00, expected 11"),
            AutoSSLError(.trustFailure, "wrong provisioner password for \"admin\""),
            // A TLS certificate that does not verify is a stop too, not a dead peer.
            CAClient.map(NIOSSLError.handshakeFailed(.sslError([])), url: Self.b),
        ]
        for refusal in refusals {
            let trail = Trail()
            do {
                _ = try await CAFailover.run(try CAEndpoints([Self.a, Self.b, Self.c])) { url, policy -> String in
                    trail.add(url, policy)
                    if url == Self.a { throw Self.refused(url) }
                    throw refusal
                }
                Issue.record("a refusal was not reported")
            } catch let error as AutoSSLError {
                #expect(trail.urls == [Self.a, Self.b], "\(refusal): tried \(trail.urls)")
                let original = try #require(refusal as? AutoSSLError)
                #expect(error.kind == original.kind && error.message == original.message, "the CA's own words, its own exit code")
                #expect(error.hint?.contains("\(Self.b) answered this after another URL did not (\(Self.a): connection refused") == true, "\(error)")
            }
        }
    }

    @Test func unavailableAnswersMoveOnOthersDoNot() throws {
        let client = try CAClient(baseURL: Self.a, root: try CAClientTests.Chain().root)
        defer { Task { await client.shutdown() } }
        for status in [502, 503, 504] {
            let error = client.refusal(status: status, body: Data(#"{"message":"the database is unreachable"}"#.utf8), action: "sign the certificate")
            let failure = try #require(error as? CAConnectionFailure, "HTTP \(status)")
            #expect(failure.stage == .unavailable && failure.mayHaveReachedCA)
            #expect(failure.words == "unavailable (HTTP \(status)): the database is unreachable")
            #expect(failure.error.kind == .network)
        }
        for status in [400, 401, 403, 404, 409, 429, 500] {
            #expect(client.refusal(status: status, body: Data(), action: "x") is AutoSSLError, "HTTP \(status)")
        }
        // What a hostile CA says is cut short and cannot steer the terminal.
        let hostile = CAClient.answerMessage(Data(("{\"message\":\"\u{1B}[2J" + String(repeating: "x", count: 10_000) + "\"}").utf8))
        #expect(hostile.count == 300 && !hostile.contains("\u{1B}"))
    }

    @Test func connectionFailuresAreToldApartByHowFarTheyGot() {
        let notConnected: [any Error] = [
            IOError(errnoCode: ECONNREFUSED, reason: "connect"), IOError(errnoCode: EHOSTUNREACH, reason: "connect"),
            IOError(errnoCode: ENETUNREACH, reason: "connect"), ChannelError.connectTimeout(.seconds(1)),
            HTTPClientError.connectTimeout, HTTPClientError.tlsHandshakeTimeout,
            SocketAddressError.unknown(host: "ca.invalid", port: 9000),
        ]
        for error in notConnected {
            #expect(CAClient.connectionStage(of: error) == .notConnected, "\(error)")
        }
        let interrupted: [any Error] = [
            IOError(errnoCode: ECONNRESET, reason: "read"), HTTPClientError.remoteConnectionClosed, HTTPClientError.readTimeout,
            HTTPClientError.deadlineExceeded, ChannelError.eof, NIOSSLError.uncleanShutdown,
        ]
        for error in interrupted {
            #expect(CAClient.connectionStage(of: error) == .interrupted, "\(error)")
            #expect((CAClient.map(error, url: Self.a) as? CAConnectionFailure)?.mayHaveReachedCA == true, "\(error)")
        }
        struct Odd: Error {}
        let stops: [any Error] = [
            NIOSSLError.handshakeFailed(.sslError([])), HTTPClientError.cancelled, Odd(), IOError(errnoCode: EACCES, reason: "open"),
        ]
        for error in stops {
            #expect(CAClient.connectionStage(of: error) == nil, "\(error)")
            #expect(CAClient.map(error, url: Self.a) is AutoSSLError, "\(error)")
        }
    }

    @Test func whenNoURLAnswersOneErrorNamesEachURL() async throws {
        do {
            _ = try await CAFailover.run(try CAEndpoints([Self.a, Self.b])) { url, _ -> String in
                if url == Self.a { throw Self.refused(url) }
                throw CAClient.map(HTTPClientError.connectTimeout, url: url)
            }
            Issue.record("no error")
        } catch let error as AutoSSLError {
            #expect(error.kind == .network)
            #expect(error.message == """
                none of the CA's 2 URLs answered:
                    \(Self.a): connection refused by 10.0.0.1:9000 (is the server running there?)
                    \(Self.b): no answer from 10.0.0.2:9000 (timeout while connecting)
                """, "\(error)")
            #expect(error.hint?.contains("auto-ssl ca serve") == true)
        }
        // A single URL's failure is said as it always was.
        do {
            _ = try await CAFailover.run(try CAEndpoints([Self.a])) { url, _ -> String in throw Self.refused(url) }
            Issue.record("no error")
        } catch let error as AutoSSLError {
            #expect(error.kind == .network)
            #expect(error.message == "could not reach the CA at \(Self.a): connection refused by 10.0.0.1:9000 (is the server running there?)")
        }
    }

    /// A one-time token is never sent twice: each URL tried makes its own, for that URL (its
    /// audience), even when the previous request may have reached the CA.
    @Test func eachURLTriedGetsAFreshTokenForThatURL() async throws {
        let chain = try CAClientTests.Chain()
        let key = ECJWK(privateKey: P256.Signing.PrivateKey())
        final class Tokens: @unchecked Sendable {
            var claims: [ProvisionerTokenClaims] = []
        }
        let tokens = Tokens()
        let answer = try await CAFailover.run(try CAEndpoints([Self.a, Self.b])) { url, policy in
            let client = try CAClient(baseURL: url, root: chain.root, policy: policy)
            defer { Task { await client.shutdown() } }
            let token = try client.signToken(provisioner: "admin", key: key, names: [.dns("app.internal")])
            tokens.claims.append(try ProvisionerTokenClaims.decode(try JWT.parse(token).payload))
            if url == Self.a {
                // The connection broke after the request was sent: the CA may have used the token.
                let failure = try #require(CAClient.map(HTTPClientError.remoteConnectionClosed, url: url) as? CAConnectionFailure)
                #expect(failure.mayHaveReachedCA)
                throw failure
            }
            return token
        }
        #expect(answer.contact.url == Self.b)
        #expect(tokens.claims.map(\.aud) == [[Self.a + "/1.0/sign"], [Self.b + "/1.0/sign"]])
        #expect(tokens.claims.count == 2 && tokens.claims[0].jti != tokens.claims[1].jti)
    }

    /// Runs jobs on a thread of its own, so timings measured under it are not stretched by other
    /// tests blocking the shared cooperative threads (the end-to-end tests wait for processes).
    final class ThreadExecutor: TaskExecutor, @unchecked Sendable {
        static let shared = ThreadExecutor()
        private let condition = NSCondition()
        private var jobs: [UnownedJob] = []

        private init() {
            let thread = Thread { [self] in
                while true {
                    condition.lock()
                    while jobs.isEmpty { condition.wait() }
                    let job = jobs.removeFirst()
                    condition.unlock()
                    job.runSynchronously(on: asUnownedTaskExecutor())
                }
            }
            thread.start()
        }

        func enqueue(_ job: consuming ExecutorJob) {
            let unowned = UnownedJob(job)
            condition.lock()
            jobs.append(unowned)
            condition.signal()
            condition.unlock()
        }
    }

    /// Real sockets: a refused port, a port that never answers a connection attempt (blackholed)
    /// and a peer that accepts but never speaks TLS each move on to the next URL within a second,
    /// for the fingerprint bootstrap and for a client with a pinned root alike.
    @Test func deadURLsMoveOnWithinASecondEach() async throws {
        try await withTaskExecutorPreference(ThreadExecutor.shared) {
            try await deadURLsMoveOn()
        }
    }

    func deadURLsMoveOn() async throws {
        let refusedURL = "https://127.0.0.1:\(freeLoopbackPort())"
        let blackhole = try UnansweringPort()
        let silent = try SilentPeer()
        defer { silent.stop() }
        let live = "https://127.0.0.1:1"  // never connected to: the test answers for it
        let root = try CAClientTests.Chain().root
        let fingerprint = try Fingerprint.sha256(of: root)
        for pinned in [false, true] {
            final class Times: @unchecked Sendable {
                var seconds: [String: Double] = [:]
            }
            let times = Times()
            let started = Date()
            let answer = try await CAFailover.run(try CAEndpoints([refusedURL, blackhole.url, silent.url, live])) { url, policy in
                if url == live { return "answered" }
                let begin = Date()
                defer { times.seconds[url] = Date().timeIntervalSince(begin) }
                if pinned {
                    let client = try CAClient(baseURL: url, root: root, policy: policy)
                    return try await CAClient.using(client) { _ = try await $0.crl(); return "unexpected" }
                }
                let client = try await CAClient.connect(base: url, fingerprint: fingerprint, policy: policy)
                await client.shutdown()
                return "unexpected"
            }
            let total = Date().timeIntervalSince(started)
            #expect(answer.value == "answered" && answer.contact.url == live, "pinned: \(pinned)")
            #expect(answer.contact.skipped.map(\.url) == [refusedURL, blackhole.url, silent.url])
            let words = answer.contact.skipped.map(\.failure)
            #expect(words.count == 3 && words[0].hasPrefix("connection refused by 127.0.0.1"), "\(words)")
            #expect(words.count == 3 && words[1].contains("timeout while connecting"), "\(words)")
            #expect(words.count == 3 && words[2].contains("timeout"), "\(words)")
            // A refused connection is not retried, an unanswered one not waited for past the second
            // (a single URL would wait 5 s for an unanswered one). The bounds leave room for a
            // loaded 2-core machine running the whole suite (1.8 s was seen there) and still fail
            // a client that waits for the 5 s connect timeout.
            for (url, seconds) in times.seconds {
                #expect(seconds < 3, "\(url) took \(seconds) s (pinned: \(pinned))")
            }
            #expect(times.seconds.count == 3, "\(times.seconds)")
            // The per-URL bound above is what fails a client that waits out a connect timeout;
            // this one only catches time spent outside those three (5.2 s was seen on a loaded
            // machine with the three within bounds).
            #expect(total < 7, "\(total) s in all (pinned: \(pinned))")
        }
        #expect(silent.connections >= 2, "the silent peer was connected to: \(silent.connections)")
    }
}
