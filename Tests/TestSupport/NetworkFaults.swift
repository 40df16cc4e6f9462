import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket on 127.0.0.1 (port chosen by the kernel).
private func loopbackListener(backlog: Int32) throws -> (fd: Int32, port: Int) {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestFailure("socket() failed: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    guard bound == 0, listen(fd, backlog) == 0 else {
        close(fd)
        throw TestFailure("bind/listen on 127.0.0.1 failed: errno \(errno)")
    }
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else {
        close(fd)
        throw TestFailure("getsockname failed: errno \(errno)")
    }
    return (fd, Int(UInt16(bigEndian: address.sin_port)))
}

/// A port on 127.0.0.1 where a connection attempt is never answered, like a blackholed address:
/// a listener that never accepts, its accept queue filled, so the kernel drops every new SYN and
/// the client waits until its own connect timeout. (A TEST-NET address is not reliable for this:
/// depending on the network it is refused, unreachable or even intercepted.)
public final class UnansweringPort: @unchecked Sendable {
    public let port: Int
    private var descriptors: [Int32] = []

    public init() throws {
        let listener = try loopbackListener(backlog: 0)
        port = listener.port
        descriptors.append(listener.fd)
        var target = sockaddr_in()
        target.sin_family = sa_family_t(AF_INET)
        target.sin_port = in_port_t(UInt16(port).bigEndian)
        target.sin_addr.s_addr = inet_addr("127.0.0.1")
        // These take the queue's places (their own connects complete or hang; nobody reads them).
        for _ in 0..<4 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { continue }
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = withUnsafePointer(to: &target) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            descriptors.append(fd)
        }
        usleep(200_000)
    }

    public var url: String { "https://127.0.0.1:\(port)" }

    deinit {
        for fd in descriptors { close(fd) }
    }
}

/// A port on 127.0.0.1 that accepts connections and never sends a byte (a hung peer): a TLS
/// handshake with it never finishes. Counts the connections it accepted.
public final class SilentPeer: @unchecked Sendable {
    public let port: Int
    private let state: State

    public init() throws {
        let created = try loopbackListener(backlog: 64)
        port = created.port
        let state = State(listener: created.fd)
        self.state = state
        Thread { state.acceptLoop() }.start()
    }

    public var url: String { "https://127.0.0.1:\(port)" }

    /// Connections accepted so far.
    public var connections: Int { state.count }

    public func stop() { state.stop() }

    deinit { state.stop() }

    private final class State: @unchecked Sendable {
        let listener: Int32
        private let lock = NSLock()
        private var open: [Int32] = []
        private var accepted = 0
        private var stopped = false
        private var loopDone = false

        init(listener: Int32) {
            self.listener = listener
        }

        var count: Int {
            lock.lock()
            defer { lock.unlock() }
            return accepted
        }

        private var isStopped: Bool {
            lock.lock()
            defer { lock.unlock() }
            return stopped
        }

        func acceptLoop() {
            while !isStopped {
                var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                guard poll(&poller, 1, 100) > 0 else { continue }
                let fd = accept(listener, nil, nil)
                guard fd >= 0 else { continue }
                lock.lock()
                open.append(fd)
                accepted += 1
                lock.unlock()
            }
            lock.lock()
            loopDone = true
            lock.unlock()
        }

        func stop() {
            lock.lock()
            let first = !stopped
            stopped = true
            lock.unlock()
            guard first else { return }
            // The loop notices within 100 ms; only then is the listener closed under it.
            for _ in 0..<50 {
                lock.lock()
                let done = loopDone
                lock.unlock()
                if done { break }
                usleep(20_000)
            }
            close(listener)
            lock.lock()
            let descriptors = open
            open = []
            lock.unlock()
            for fd in descriptors { close(fd) }
        }
    }
}
