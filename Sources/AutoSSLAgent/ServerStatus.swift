import AutoSSLConfig
import AutoSSLCore
import Foundation
import X509

/// `server status`: what is installed, how long it lasts, when it renews, and how the last try went.
public struct ServerStatusReport: Codable, Sendable {
    public var enrolled: Bool
    /// The URL tried first.
    public var caURL: String?
    /// Every recorded URL of the CA, in the order renewal tries them.
    public var caURLs: [String]?
    public var fingerprint: String?
    public var certPath: String?
    public var keyPath: String?
    public var names: [String]
    public var serial: String?
    public var issuer: String?
    public var notBefore: Date?
    public var notAfter: Date?
    public var secondsLeft: Int64?
    public var renewalPoint: Date?
    public var renewalDue: Bool
    public var expired: Bool
    /// The installed certificate is known to be revoked (see `ServerState.revokedSerial`).
    public var revoked = false
    public var revocation: Revocation?
    /// For a certificate that can no longer be renewed (revoked, expired): the `server enroll`
    /// command with every recorded option.
    public var enrollCommand: String?
    public var certificateProblem: String?
    public var timer: String
    public var reloadCommand: String?
    public var suspended: Bool
    public var suspensionReason: String?
    public var suspendedSince: Date?
    public var lastAttempt: ServerState.Attempt?
    public var lastSuccess: Date?
    public var consecutiveFailures: Int
    /// Set when `server enroll --adopt` took this server over from the original auto-ssl.
    public var adopted: ServerEnrollment.Adoption?

    public struct Revocation: Codable, Sendable {
        public var serial: String
        /// When this machine learned of it (`server revoke`, or the CA's refusal to renew).
        public var since: Date?
        public var detail: String?
    }

    enum CodingKeys: String, CodingKey {
        case enrolled
        case caURL = "ca_url"
        case caURLs = "ca_urls"
        case fingerprint
        case certPath = "cert_path"
        case keyPath = "key_path"
        case names, serial, issuer
        case notBefore = "not_before"
        case notAfter = "not_after"
        case secondsLeft = "seconds_left"
        case renewalPoint = "renewal_point"
        case renewalDue = "renewal_due"
        case expired, revoked, revocation
        case enrollCommand = "enroll_command"
        case certificateProblem = "certificate_problem"
        case timer
        case reloadCommand = "reload_command"
        case suspended
        case suspensionReason = "suspension_reason"
        case suspendedSince = "suspended_since"
        case lastAttempt = "last_attempt"
        case lastSuccess = "last_success"
        case consecutiveFailures = "consecutive_failures"
        case adopted
    }

    /// Healthy means: a certificate is installed, still valid and not revoked.
    public var healthy: Bool { enrolled && serial != nil && !expired && !revoked && certificateProblem == nil }
}

extension ServerAgent {
    public func status(now: Date = Date()) throws -> ServerStatusReport {
        let state = ServerState.load(from: stateFile)
        guard let enrollment = try serverSection() else {
            return ServerStatusReport(
                enrolled: false, names: [], renewalDue: false, expired: false, certificateProblem: "not enrolled",
                timer: timerState, suspended: false, lastAttempt: state.lastAttempt, lastSuccess: state.lastSuccess,
                consecutiveFailures: state.consecutiveFailures)
        }
        var report = ServerStatusReport(
            enrolled: true, caURL: enrollment.caURL, caURLs: enrollment.urls, fingerprint: enrollment.fingerprint, certPath: enrollment.certPath,
            keyPath: enrollment.keyPath, names: enrollment.names, renewalDue: false, expired: false, timer: timerState,
            reloadCommand: enrollment.reloadCommand, suspended: enrollment.suspension != nil,
            suspensionReason: enrollment.suspension?.reason, suspendedSince: enrollment.suspension?.since,
            lastAttempt: state.lastAttempt, lastSuccess: state.lastSuccess, consecutiveFailures: state.consecutiveFailures)
        report.adopted = enrollment.adoption
        do {
            let holder = try holder(enrollment)
            let leaf = holder.leaf
            report.names = leaf.subjectNames.map(\.description)
            report.serial = Self.serialText(leaf)
            report.issuer = leaf.issuer.description
            report.notBefore = leaf.notValidBefore
            report.notAfter = leaf.notValidAfter
            report.secondsLeft = Int64(leaf.notValidAfter.timeIntervalSince(now))
            let point = renewalPoint(of: leaf, enrollment: enrollment)
            report.renewalPoint = point
            report.renewalDue = now >= point
            report.expired = now >= leaf.notValidAfter
            if state.isRevoked(serial: Self.serialText(leaf)) {
                report.revoked = true
                report.revocation = .init(serial: Self.serialText(leaf), since: state.revokedAt, detail: state.revocationNote)
            }
            if report.revoked || report.expired { report.enrollCommand = enrollCommand(enrollment) }
        } catch let error as AutoSSLError {
            report.certificateProblem = error.message
        } catch {
            report.certificateProblem = "\(error)"
        }
        return report
    }
}
