@testable import AutoSSLStore
import Logging
import Synchronization
import Testing

/// PostgresNIO's background log reaches ours without its harmless lease-before-run warning.
@Suite struct PostgresBackgroundLogTests {
    final class Recorder: LogHandler, @unchecked Sendable {
        let lines = Mutex<[String]>([])
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { lines.withLock { $0.append("\(event.level) \(event.message)") } }
    }

    @Test func onlyTheLeaseBeforeRunWarningIsDropped() {
        let recorder = Recorder()
        let logger = Logger(label: "test") { _ in WithoutLeaseBeforeRunWarning(wrapped: recorder) }
        logger.warning("Trying to lease connection from `PostgresClient`, but `PostgresClient.run()` hasn't been called yet.")
        logger.warning("Connection failed: the server closed the connection")
        logger.error("Trying to lease connection failed for another reason")
        #expect(recorder.lines.withLock { $0 } == [
            "warning Connection failed: the server closed the connection", "error Trying to lease connection failed for another reason",
        ])
    }
}
