@testable import AutoSSLServer
import Testing

/// The server's connection caps.
@Suite struct ConnectionCounterTests {
    @Test func connectionCounterCapsEachSourceAndTheTotal() {
        var limits = ConnectionLimits()
        limits.maximumConnections = 5
        limits.maximumPerSource = 2
        let counter = ConnectionCounter(limits: limits)
        #expect(counter.admit("a") == nil && counter.admit("a") == nil)
        #expect(counter.admit("a") != nil)
        #expect(counter.admit("b") == nil && counter.admit("b") == nil && counter.admit("c") == nil)
        #expect(counter.admit("d") != nil)
        counter.release("a")
        #expect(counter.admit("a") == nil)
        #expect(counter.open == 5)
    }
}
