import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLMetrics
import Foundation

/// The metrics file of `server renew` (and `server enroll`): `auto_ssl_server_*` gauges for node
/// exporter's textfile collector, rewritten atomically (0644) after every run.
extension ServerAgent {
    /// Node exporter's textfile collector reads only `*.prom` files.
    public static let metricsFileSuffix = ".prom"

    /// Checks a `--metrics-file` path before anything else happens and makes it absolute: a `.prom`
    /// file in a directory that exists (the collector's directory is the operator's, never created here).
    public static func checkMetricsFile(_ path: String) throws -> String {
        let absolute = Directories.absolute(path)
        let name = (absolute as NSString).lastPathComponent
        guard name.hasSuffix(metricsFileSuffix), name.count > metricsFileSuffix.count, !name.hasPrefix(".") else {
            throw AutoSSLError.invalidArgument(
                "--metrics-file \(path) does not end in \(metricsFileSuffix)",
                hint: "node exporter's textfile collector reads only *.prom files, e.g. /var/lib/prometheus/node-exporter/auto-ssl.prom")
        }
        let directory = (absolute as NSString).deletingLastPathComponent
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw AutoSSLError.invalidArgument(
                "the directory of --metrics-file, \(directory), does not exist",
                hint: "point it at node exporter's --collector.textfile.directory")
        }
        return absolute
    }

    /// What the metrics file says now: the enrollment, the installed certificate (when readable) and
    /// the recorded attempts. Reads local files only, as `server status` does.
    public func metrics(_ enrollment: ServerEnrollment, now: Date = Date()) -> ServerMetrics {
        let state = ServerState.load(from: stateFile)
        let holder = try? self.holder(enrollment)
        let revoked = holder.map { state.isRevoked(serial: Self.serialText($0.leaf)) } ?? false
        let expired = holder.map { now >= $0.leaf.notValidAfter } ?? true
        return ServerMetrics(
            certificate: enrollment.names.first ?? holder?.leaf.subjectNames.first?.description ?? "unknown",
            run: now.timeIntervalSince1970,
            expiry: holder?.leaf.notValidAfter.timeIntervalSince1970,
            renewalDue: holder.map { renewalPoint(of: $0.leaf, enrollment: enrollment).timeIntervalSince1970 },
            lastAttempt: state.lastAttempt?.time.timeIntervalSince1970,
            lastSuccess: state.lastSuccess?.timeIntervalSince1970,
            failuresInARow: state.consecutiveFailures,
            suspended: enrollment.suspension != nil,
            revoked: revoked,
            healthy: holder != nil && !expired && !revoked)
    }

    /// Writes the metrics file: `override` (`server renew --metrics-file`) or the enrollment's; none
    /// = nothing to do. Returns why it could not be written, for a warning: a metrics file never
    /// fails the renewal it reports on.
    public func writeMetrics(override: String? = nil, now: Date = Date()) -> String? {
        guard let enrollment = try? serverSection(), let path = override ?? enrollment.metricsFile else { return nil }
        do {
            try FileOperations.writeAtomically(metrics(enrollment, now: now).exposition(), to: path, mode: 0o644)
            return nil
        } catch {
            let text = (error as? AutoSSLError)?.message ?? "\(error)"
            return "the metrics file \(path) could not be written: \(text)"
        }
    }
}
