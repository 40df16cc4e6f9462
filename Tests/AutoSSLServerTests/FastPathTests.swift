import AutoSSLACME
import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import HTTPTypes
import HummingbirdCore
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTPTypes
import Testing
import TestSupport
import X509

@testable import AutoSSLServer

/// `FastPath` in a channel of its own (no sockets, no TLS): what it answers, what it passes to
/// the router, and in which order.
@Suite struct FastPathTests {
    /// A throw-away CA and a way to make the tokens its provisioner signs.
    final class Fixture: @unchecked Sendable {
        let dir = TemporaryDirectory()
        let authority: Authority
        let endpoint: SignEndpoint
        let key: ECJWK
        /// The ACME routes (the CA's `acme` provisioner), when asked for.
        let acme: ACMEService?

        init(acme withACME: Bool = false) async throws {
            let directories = Directories(
                configDir: dir.file("etc"), dataDir: dir.file("data"), certDir: dir.file("certs"), systemdDir: dir.file("sd"))
            var options = CAInitOptions()
            options.name = "Fast Path Test"
            options.addresses = [ListenAddress(host: "127.0.0.1", port: 9443)]
            options.caPassword = .given("ca-password-for-tests-123")
            options.provisionerPassword = .given("provisioner-password-for-tests")
            options.acme = withACME
            _ = try CAInitializer(directories: directories).initialise(options)
            let opened = try await AuthorityLoader(directories: directories).open(passwordFile: try dir.write("pw", "ca-password-for-tests-123\n"))
            authority = opened.authority
            acme = withACME ? try await ACMEService(authority: authority, store: opened.database.acme, logger: .init(label: "test")) : nil
            endpoint = try SignEndpoint(authority: authority, logger: .init(label: "test"))
            let jwe = try FileOperations.readText(authority.settings.provisioners[0].encryptedKeyFile)
            key = try JSONDecoder().decode(ECJWK.self, from: try PasswordJWE.decrypt(jwe, password: "provisioner-password-for-tests"))
        }

        func signBody(_ name: String) throws -> String {
            let now = Int64(Date().timeIntervalSince1970)
            let claims = ProvisionerTokenClaims(
                iss: "admin", aud: ["https://127.0.0.1:9443/1.0/sign"], sub: name, sans: [name], nbf: now, iat: now, exp: now + 300,
                jti: UUID().uuidString, sha: authority.rootFingerprint)
            let token = try JWT.sign(payload: claims, kid: key.kid, key: try key.privateKey())
            let csr = try VerifiedCSR.make(names: [try SubjectName(parsing: name)], key: SigningKey.generate(.p256))
            let object = ["csr": csr, "ott": token]
            return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }

        /// FastPath as `ca serve` places it: after Hummingbird's connection-state handler.
        /// `first` and `last` go in front of both and behind FastPath (where the router would be).
        func channel(
            first: (any ChannelHandler & Sendable)? = nil, last: (any ChannelHandler & Sendable)? = nil, idleTimeout: Duration? = nil
        ) async throws -> NIOAsyncTestingChannel {
            let channel = NIOAsyncTestingChannel()
            let (endpoint, acme) = (self.endpoint, self.acme)
            try await channel.testingEventLoop.executeInContext {
                let pipeline = channel.pipeline.syncOperations
                if let first { try pipeline.addHandler(first) }
                try pipeline.addHandler(HTTPConnectionStateHandler(idleTimeout: idleTimeout, logger: .init(label: "test")))
                try FastPath.install(FastPath(endpoint: endpoint, acme: acme), in: pipeline)
                if let last { try pipeline.addHandler(last) }
            }
            return channel
        }
    }

    /// A request without a body that reaches the router as it was sent.
    static func expectPassedOn(_ head: HTTPRequest, on channel: NIOAsyncTestingChannel) async throws {
        try await channel.writeInbound(HTTPRequestPart.head(head))
        #expect(try await channel.readInbound(as: HTTPRequestPart.self) == .head(head))
        try await channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(try await channel.readInbound(as: HTTPRequestPart.self) == .end(nil))
    }

    static func post(_ path: String, body: String, on channel: NIOAsyncTestingChannel, contentLength: Int? = nil) async throws {
        let head = HTTPRequest(
            method: .post, scheme: nil, authority: "ca", path: path,
            headerFields: [.contentLength: String(contentLength ?? body.utf8.count), .contentType: "application/json"])
        try await channel.writeInbound(HTTPRequestPart.head(head))
        if !body.isEmpty { try await channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: body))) }
        try await channel.writeInbound(HTTPRequestPart.end(nil))
    }

    /// The response the handler wrote: its head and its whole body.
    static func response(from channel: NIOAsyncTestingChannel) async throws -> (HTTPResponse, String) {
        guard case .head(let head) = try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) else {
            throw AutoSSLError.general("the first part written was not a head")
        }
        var body = ""
        while true {
            switch try await channel.waitForOutboundWrite(as: HTTPResponsePart.self) {
            case .body(let buffer): body += String(buffer: buffer)
            case .end: return (head, body)
            case .head: throw AutoSSLError.general("a second head before the end")
            }
        }
    }

    @Test func aSignRequestIsAnsweredInThePipelineWithTheChain() async throws {
        let f = try await Fixture()
        let channel = try await f.channel()
        try await Self.post("/1.0/sign", body: try f.signBody("fast.internal"), on: channel)
        let (head, body) = try await Self.response(from: channel)
        #expect(head.status == .created, "\(body)")
        #expect(head.headerFields[.contentType] == "application/json")
        #expect(head.headerFields[.contentLength] == String(body.utf8.count))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        let leafPEM = try #require(object["crt"] as? String)
        let leaf = try Certificate(pemEncoded: leafPEM)
        #expect(leaf.subjectNames == [.dns("fast.internal")])
        #expect((object["certChain"] as? [String])?.count == 2)
        // Nothing of it reached the router.
        #expect(try await channel.readInbound(as: HTTPRequestPart.self) == nil)
        #expect(try await f.authority.certificateRecord(serial: leaf.serialNumber.hexString) != nil)
    }

    @Test func acmePostsAreRecognisedOnlyInTheirPlainForm() {
        let cases: [(String, String?, String?)] = [
            ("/acme/acme/new-order", "new-order", nil), ("/acme/acme/order/abc", "order/:id", "abc"),
            ("/acme/acme/order/abc/finalize", "order/:id/finalize", "abc"), ("/acme/x/authz/z1", "authz/:id", "z1"),
            ("/acme/acme/chall/c-1", "chall/:id", "c-1"), ("/acme/acme/cert/01AB", "cert/:id", "01AB"),
            ("/acme/acme/account/a/orders", "account/:id/orders", "a"),
            // Left to the router: a query, percent-encoding, empty segments, unknown or partial routes.
            ("/acme/acme/new-order?x=1", nil, nil), ("/acme/acme/order/a%2Fb", nil, nil), ("/acme/acme/order/abc/", nil, nil),
            ("/acme//new-order", nil, nil), ("/acme/acme/order", nil, nil), ("/acme/acme/directory", nil, nil), ("/acme/acme", nil, nil),
            ("/acme/acme/order/a/b/c", nil, nil), ("/sign", nil, nil), ("/acme/acme/new-order#x", nil, nil),
        ]
        for (path, route, id) in cases {
            let target = ACMEService.postTarget(path: path)
            #expect(target?.route == route && target?.id == id, "\(path)")
            if let target { #expect(target.path == path && target.provisioner == path.split(separator: "/")[1]) }
        }
    }

    /// A request whose Connection field has the `close` option goes to the router, which closes
    /// after its answer; any other option list stays on the fast path.
    @Test func theCloseOptionIsFoundAmongTheConnectionOptionsInAnyCase() {
        for value in ["close", "Close", "CLOSE", "keep-alive, close", " close ", "close,upgrade", "te,\tclose\t", ",,close"] {
            #expect(FastPath.asksToClose(value), "\(value)")
        }
        for value in ["", "keep-alive", "Keep-Alive", "closed", "clos", "close-ish", "c lose", "x-close", "keep-alive, upgrade", "closé"] {
            #expect(!FastPath.asksToClose(value), "\(value)")
        }
    }

    /// An ACME POST the pipeline answers carries what the router's answer carries: the problem
    /// document, a fresh nonce, the directory link, no caching; nothing reaches the router.
    @Test func anACMEPostIsAnsweredInThePipelineWithTheRoutersHeaders() async throws {
        let f = try await Fixture(acme: true)
        let channel = try await f.channel()
        let body = #"{"protected":"e30","payload":"","signature":"AA"}"#
        let head = HTTPRequest(
            method: .post, scheme: nil, authority: "127.0.0.1:9443", path: "/acme/acme/new-order",
            headerFields: [.contentLength: String(body.utf8.count), .contentType: "application/jose+json"])
        try await channel.writeInbound(HTTPRequestPart.head(head))
        try await channel.writeInbound(HTTPRequestPart.body(ByteBuffer(string: body)))
        try await channel.writeInbound(HTTPRequestPart.end(nil))
        let (response, text) = try await Self.response(from: channel)
        #expect(response.status.code == 400, "\(text)")
        #expect(response.headerFields[.contentType] == "application/problem+json")
        #expect(response.headerFields[HTTPField.Name("Replay-Nonce")!]?.count == 43)
        #expect(response.headerFields[.cacheControl] == "no-store")
        #expect(response.headerFields[HTTPField.Name("Link")!] == #"<https://127.0.0.1:9443/acme/acme/directory>;rel="index""#)
        #expect(response.headerFields[.contentLength] == String(text.utf8.count))
        #expect(text.contains("urn:ietf:params:acme:error:"))
        #expect(try await channel.readInbound(as: HTTPRequestPart.self) == nil)

        // Without a declared length it goes to the router.
        let chunked = HTTPRequest(method: .post, scheme: nil, authority: "ca", path: "/acme/acme/new-order", headerFields: [:])
        try await Self.expectPassedOn(chunked, on: channel)
        // Nor with two declared lengths, even equal ones.
        var twoLengths = HTTPRequest(method: .post, scheme: nil, authority: "ca", path: "/acme/acme/new-order", headerFields: [:])
        twoLengths.headerFields.append(HTTPField(name: .contentLength, value: "2"))
        twoLengths.headerFields.append(HTTPField(name: .contentLength, value: "2"))
        try await channel.writeInbound(HTTPRequestPart.head(twoLengths))
        #expect(try await channel.readInbound(as: HTTPRequestPart.self) == .head(twoLengths))
    }

    @Test func otherRequestsPassToTheRouterUnchanged() async throws {
        let f = try await Fixture()
        let channel = try await f.channel()
        let head = HTTPRequest(method: .get, scheme: nil, authority: "ca", path: "/health", headerFields: [:])
        try await channel.writeInbound(HTTPRequestPart.head(head))
        try await channel.writeInbound(HTTPRequestPart.end(nil))
        #expect(try await channel.readInbound(as: HTTPRequestPart.self) == .head(head))
        #expect(try await channel.readInbound(as: HTTPRequestPart.self) == .end(nil))
        // A /sign the fast path does not take (Expect: 100-continue) goes to the router as well.
        var expecting = HTTPRequest(method: .post, scheme: nil, authority: "ca", path: "/sign", headerFields: [:])
        expecting.headerFields[.expect] = "100-continue"
        try await Self.expectPassedOn(expecting, on: channel)
        // So does one whose Connection field (its second) asks to close.
        var closing = HTTPRequest(method: .post, scheme: nil, authority: "ca", path: "/sign", headerFields: [:])
        closing.headerFields.append(HTTPField(name: .connection, value: "keep-alive"))
        closing.headerFields.append(HTTPField(name: .connection, value: "Close"))
        try await channel.writeInbound(HTTPRequestPart.head(closing))
        #expect(try await channel.readInbound(as: HTTPRequestPart.self) == .head(closing))
    }

    @Test func aMalformedBodyGetsA400AndIsAudited() async throws {
        let f = try await Fixture()
        let channel = try await f.channel()
        try await Self.post("/sign", body: #"{"csr": 1}"#, on: channel)
        let (head, body) = try await Self.response(from: channel)
        #expect(head.status == .badRequest)
        #expect(body.contains(#""status":400"#) && body.contains("csr"), "\(body)")
        let audit = try String(contentsOfFile: f.dir.file("data/audit.log"), encoding: .utf8)
        #expect(audit.contains("request.refused"), "\(audit)")
    }

    @Test func aBodyOverTheLimitIsDroppedAndRefusedWith413() async throws {
        let f = try await Fixture()
        let channel = try await f.channel()
        try await Self.post("/sign", body: String(repeating: "x", count: 1024), on: channel, contentLength: SignEndpoint.maximumBodySize + 1)
        let (head, _) = try await Self.response(from: channel)
        #expect(head.status == .contentTooLarge)
        #expect(head.headerFields[.connection] == nil)  // the connection stays usable
    }

    @Test func aBodyFarOverTheLimitIsAnsweredAndTheConnectionClosed() async throws {
        let f = try await Fixture()
        let channel = try await f.channel()
        let head = HTTPRequest(
            method: .post, scheme: nil, authority: "ca", path: "/sign", headerFields: [.contentLength: String(FastPath.discardLimit + 1)])
        try await channel.writeInbound(HTTPRequestPart.head(head))
        let (response, _) = try await Self.response(from: channel)
        #expect(response.status == .contentTooLarge)
        #expect(response.headerFields[.connection] == "close")
        try await channel.closeFuture.get()
    }

    @Test func pipelinedRequestsKeepTheirOrder() async throws {
        let f = try await Fixture()
        let channel = try await f.channel()
        try await Self.post("/sign", body: try f.signBody("first.internal"), on: channel)
        // Arrives while the issuance is under way: held, not passed on before the answer is out.
        let next = HTTPRequest(method: .get, scheme: nil, authority: "ca", path: "/health", headerFields: [:])
        try await channel.writeInbound(HTTPRequestPart.head(next))
        try await channel.writeInbound(HTTPRequestPart.end(nil))
        let (head, _) = try await Self.response(from: channel)
        #expect(head.status == .created)
        #expect(try await channel.readInbound(as: HTTPRequestPart.self) == .head(next))
    }

    /// Records into one list: as the first handler, the responses written past it; as the last
    /// (where the router would be), the errors and the end of input that reach it (and keeps them).
    final class OrderLog: ChannelDuplexHandler, @unchecked Sendable {
        typealias InboundIn = HTTPRequestPart
        typealias OutboundIn = HTTPResponsePart
        let entries: NIOLockedValueBox<[String]>
        let asRouter: Bool

        init(_ entries: NIOLockedValueBox<[String]>, asRouter: Bool) {
            self.entries = entries
            self.asRouter = asRouter
        }

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            if !asRouter, case .end = unwrapOutboundIn(data) { entries.withLockedValue { $0.append("response") } }
            context.write(data, promise: promise)
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if asRouter, let event = event as? ChannelEvent, event == .inputClosed {
                entries.withLockedValue { $0.append("input closed") }
                return
            }
            context.fireUserInboundEventTriggered(event)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            guard asRouter else { return context.fireErrorCaught(error) }
            entries.withLockedValue { $0.append("error") }
        }
    }

    struct PipelinedParserError: Error {}

    @Test(.timeLimit(.minutes(1))) func theEndOfInputAndErrorsReachTheRouterOnlyAfterTheAnswer() async throws {
        let f = try await Fixture()
        let entries = NIOLockedValueBox<[String]>([])
        let channel = try await f.channel(first: OrderLog(entries, asRouter: false), last: OrderLog(entries, asRouter: true))
        try await Self.post("/sign", body: try f.signBody("half-closed.internal"), on: channel)
        // The client half-closes (or a pipelined request fails to parse) while the issuance runs.
        channel.pipeline.fireErrorCaught(PipelinedParserError())
        channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
        let (head, _) = try await Self.response(from: channel)
        #expect(head.status == .created)
        try await channel.testingEventLoop.executeInContext {}
        // Both logs see the answer go out before the router learns of the error and the end.
        #expect(entries.withLockedValue { $0 } == ["response", "error", "input closed"])
    }

    @Test(.timeLimit(.minutes(1))) func aGracefulShutdownWaitsForTheAnswerInFlight() async throws {
        let f = try await Fixture()
        let channel = try await f.channel()
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 9443))
        try await Self.post("/sign", body: try f.signBody("shutdown.internal"), on: channel)
        // The connection-state handler saw the request: it closes after its answer, not before.
        channel.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        let (head, _) = try await Self.response(from: channel)
        #expect(head.status == .created)
        try await channel.closeFuture.get()
    }

    @Test(.timeLimit(.minutes(1))) func aConnectionBusyWithRequestsAnsweredHereIsNotClosedAsIdle() async throws {
        let f = try await Fixture()
        let channel = try await f.channel(idleTimeout: .seconds(1))
        try await channel.connect(to: try SocketAddress(ipAddress: "127.0.0.1", port: 9443))
        for round in 0..<3 {
            try await Task.sleep(for: .milliseconds(400))
            try await Self.post("/sign", body: try f.signBody("busy-\(round).internal"), on: channel)
            let (head, _) = try await Self.response(from: channel)
            #expect(head.status == .created)
        }
        // The idle check runs: more than the timeout since the connection opened, a moment since
        // its last answer.
        await channel.testingEventLoop.advanceTime(by: .seconds(2))
        #expect(channel.isActive)
    }

    @Test(.timeLimit(.minutes(1))) func aRateLimitedClientDeclaringAHugeBodyIsAnsweredAndClosedWithoutReadingIt() async throws {
        let f = try await Fixture()
        for _ in 0..<f.endpoint.limiter.limit { f.endpoint.limiter.recordFailure("unknown") }
        let channel = try await f.channel()
        let head = HTTPRequest(
            method: .post, scheme: nil, authority: "ca", path: "/sign",
            headerFields: [.contentLength: String(FastPath.discardLimit + 1), .contentType: "application/json"])
        try await channel.writeInbound(HTTPRequestPart.head(head))
        // Answered from the head alone, at once: no body was sent.
        guard case .head(let response) = try await channel.readOutbound(as: HTTPResponsePart.self) else {
            Issue.record("the head alone got no answer")
            return
        }
        #expect(response.status == .tooManyRequests)
        #expect(response.headerFields[.connection] == "close")
        try await channel.closeFuture.get()
    }

    @Test(.timeLimit(.minutes(1))) func manyHeldRequestsAreAnsweredInOrderInOneLoop() async throws {
        let f = try await Fixture()
        let channel = try await f.channel()
        let body = try f.signBody("first-of-many.internal")
        let count = 3_000
        // One read's worth: a /sign, then refusals answered at once (declared bodies over the
        // limit), all held behind the issuance and handled one after another when it is out.
        try await channel.testingEventLoop.executeInContext {
            let pipeline = channel.pipeline.syncOperations
            let sign = HTTPRequest(
                method: .post, scheme: nil, authority: "ca", path: "/sign",
                headerFields: [.contentLength: String(body.utf8.count), .contentType: "application/json"])
            pipeline.fireChannelRead(NIOAny(HTTPRequestPart.head(sign)))
            pipeline.fireChannelRead(NIOAny(HTTPRequestPart.body(ByteBuffer(string: body))))
            pipeline.fireChannelRead(NIOAny(HTTPRequestPart.end(nil)))
            let tooLarge = HTTPRequest(
                method: .post, scheme: nil, authority: "ca", path: "/sign",
                headerFields: [.contentLength: String(SignEndpoint.maximumBodySize + 1), .contentType: "application/json"])
            for _ in 0..<count {
                pipeline.fireChannelRead(NIOAny(HTTPRequestPart.head(tooLarge)))
                pipeline.fireChannelRead(NIOAny(HTTPRequestPart.end(nil)))
            }
        }
        let (first, _) = try await Self.response(from: channel)
        #expect(first.status == .created)
        var refused = 0
        for _ in 0..<count {
            let (head, _) = try await Self.response(from: channel)
            if head.status == .contentTooLarge { refused += 1 }
        }
        #expect(refused == count)
    }
}
