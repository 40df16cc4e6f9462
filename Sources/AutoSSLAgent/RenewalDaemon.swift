import AutoSSLCore
import Foundation

/// `server renew --daemon`: the timer's job for hosts without systemd (containers). Wakes at the
/// renewal point (or every check interval, to notice files replaced by hand), jittered so a fleet
/// started together does not renew together, and backs off exponentially while the CA refuses or
/// cannot be reached.
public struct RenewalDaemon: Sendable {
    public let agent: ServerAgent
    public var checkInterval: TimeInterval
    public var firstBackoff: TimeInterval
    public var maximumBackoff: TimeInterval

    public init(agent: ServerAgent, checkInterval: TimeInterval = 900, firstBackoff: TimeInterval = 30, maximumBackoff: TimeInterval = 3_600) {
        self.agent = agent
        self.checkInterval = checkInterval
        self.firstBackoff = firstBackoff
        self.maximumBackoff = maximumBackoff
    }

    /// Up to ±10 % (at most 60 s) of random spread.
    static func jittered(_ interval: TimeInterval) -> TimeInterval {
        let spread = min(interval * 0.1, 60)
        return max(1, interval + Double.random(in: -spread...spread))
    }

    /// The wait after `failures` consecutive failures: first, 2×first, 4×first, ... capped.
    public func backoff(afterFailures failures: Int) -> TimeInterval {
        min(maximumBackoff, firstBackoff * pow(2, Double(max(failures - 1, 0))))
    }

    /// Runs until `shouldStop` returns true (checked at least every second); `log` gets one line per event.
    /// Every check rewrites the metrics file (`metricsFile`, else the enrollment's); a problem
    /// writing it is logged as a warning.
    public func run(
        execOverride: String?, metricsFile: String? = nil, shouldStop: @Sendable () -> Bool, log: @Sendable (String) -> Void
    ) async {
        var failures = 0
        log("renewal daemon started (checks at least every \(CertificateDuration(seconds: Int64(checkInterval)).humanReadable))")
        while !shouldStop() {
            var wait = checkInterval
            do {
                switch try await agent.renew(
                    force: false, execOverride: execOverride, metricsFile: metricsFile, metricsWarning: { log("warning: " + $0) }) {
                case .suspended(let reason):
                    log("renewal skipped: suspended (\(reason))")
                case .notDue(let point, _):
                    wait = min(checkInterval, max(point.timeIntervalSinceNow, 1))
                case .renewed(let leaf, let previous, let reload, let contact):
                    log("renewed: \(ServerAgent.serialText(leaf)) replaces \(previous), valid until \(Timestamp.rfc3339(leaf.notValidAfter)); \(contact.summary)")
                    if let reload, !reload.succeeded {
                        log("warning: reload command `\(reload.command)` failed (exit \(reload.outcome.status)): \(reload.outcome.output)")
                    }
                    // Look at the new certificate straight away (its renewal point is far off).
                    wait = 1
                }
                failures = 0
            } catch {
                failures += 1
                wait = backoff(afterFailures: failures)
                let text = (error as? AutoSSLError)?.description ?? "\(error)"
                log("renewal failed (attempt \(failures)); retrying in \(Int(wait)) s: \(text)")
            }
            let deadline = Date().addingTimeInterval(Self.jittered(wait))
            while !shouldStop(), Date() < deadline {
                try? await Task.sleep(nanoseconds: UInt64(min(1, max(deadline.timeIntervalSinceNow, 0.01)) * 1_000_000_000))
            }
        }
        log("renewal daemon stopped")
    }
}
