import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import X509

/// A read-only view of the CA on this machine, for `ca status` and `info`.
public struct CAStatusReport: Codable, Sendable {
    public struct CertificateSummary: Codable, Sendable {
        public var subject: String
        public var keyType: String
        public var serial: String
        public var notBefore: Date
        public var notAfter: Date
        public var daysLeft: Int
        public var fingerprint: String
        public var path: String

        enum CodingKeys: String, CodingKey {
            case subject
            case keyType = "key_type"
            case serial
            case notBefore = "not_before"
            case notAfter = "not_after"
            case daysLeft = "days_left"
            case fingerprint
            case path
        }
    }

    /// One provisioner, of any type (password/JWK or ACME).
    public struct ProvisionerSummary: Codable, Sendable, Equatable {
        public var name: String
        /// "JWK" or "ACME".
        public var type: String
        /// The provisioner's own policy (unset fields come from the CA's).
        public var policy: PolicySettings?
        /// ACME: the challenges offered, whether accounts need a binding key, the directory URL.
        public var challenges: [String]?
        public var requireEAB: Bool?
        public var directory: String?

        enum CodingKeys: String, CodingKey {
            case name, type, policy, challenges, directory
            case requireEAB = "require_eab"
        }

        /// "admin (JWK)", "acme (ACME, https://.../acme/acme/directory)".
        public var text: String {
            "\(name) (\(type)" + (directory.map { ", \($0)" } ?? "") + ")"
        }

        public static func all(_ settings: CASettings) -> [ProvisionerSummary] {
            let base = settings.addresses.first?.urlString
            return settings.provisioners.map { ProvisionerSummary(name: $0.name, type: $0.type, policy: $0.policy) }
                + (settings.acmeProvisioners ?? []).map { acme in
                    ProvisionerSummary(
                        name: acme.name, type: "ACME", policy: acme.policy, challenges: acme.challenges, requireEAB: acme.requireEAB,
                        directory: base.map { "\($0)/acme/\(acme.name)/directory" })
                }
        }
    }

    /// Scheduled backups and the last one's result (filled in by the backup module).
    public struct BackupReport: Codable, Sendable {
        public struct LastBackup: Codable, Sendable {
            public var time: Date
            public var succeeded: Bool
            public var detail: String

            public init(time: Date, succeeded: Bool, detail: String) {
                self.time = time
                self.succeeded = succeeded
                self.detail = detail
            }
        }

        /// nil (JSON null) when no backups are scheduled.
        public var schedule: BackupSchedule?
        /// nil (JSON null) when no backup was made yet.
        public var lastBackup: LastBackup?

        public init(schedule: BackupSchedule? = nil, lastBackup: LastBackup? = nil) {
            self.schedule = schedule
            self.lastBackup = lastBackup
        }

        enum CodingKeys: String, CodingKey {
            case schedule
            case lastBackup = "last_backup"
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(schedule, forKey: .schedule)
            try container.encode(lastBackup, forKey: .lastBackup)
        }
    }

    public var name: String
    public var fingerprint: String
    public var root: CertificateSummary
    public var intermediate: CertificateSummary
    public var addresses: [String]
    public var dnsNames: [String]
    public var defaultDuration: String
    public var minimumDuration: String
    public var maximumDuration: String
    public var provisioners: [ProvisionerSummary]
    public var server: String
    public var backups: BackupReport
    /// Filled in by the caller (`DatabaseReport.load`), which may reach the network.
    public var database: DatabaseReport?
    public var warnings: [String]

    enum CodingKeys: String, CodingKey {
        case name, fingerprint, root, intermediate, addresses
        case dnsNames = "dns_names"
        case defaultDuration = "default_duration"
        case minimumDuration = "min_duration"
        case maximumDuration = "max_duration"
        case provisioners, server, backups, warnings, database
    }

    /// An intermediate with less than this left gets a warning: leaves cannot outlive it.
    public static let intermediateWarningDays = 90

    public static func load(directories: Directories, now: Date = Date()) throws -> CAStatusReport {
        let configuration = try AutoSSLConfiguration.load(from: directories.configFile)
        guard let settings = configuration.ca else {
            if FileOperations.exists(directories.caDir) {
                throw AutoSSLError.general(
                    "\(directories.caDir) exists but \(directories.configFile) has no CA section",
                    hint: "restore config.yaml from a backup, or remove the CA with `auto-ssl ca reset`")
            }
            throw AutoSSLError.general(
                "no CA on this machine (looked in \(directories.configFile))",
                hint: "create one with `auto-ssl ca init`")
        }
        let root = try loadCertificate(settings.paths.rootCertificate, what: "root certificate")
        let intermediate = try loadCertificate(settings.paths.intermediateCertificate, what: "intermediate certificate")
        let rootSummary = try summary(root, path: settings.paths.rootCertificate, now: now)
        let intermediateSummary = try summary(intermediate, path: settings.paths.intermediateCertificate, now: now)

        var warnings: [String] = []
        if intermediateSummary.daysLeft < intermediateWarningDays {
            warnings.append(
                intermediateSummary.daysLeft < 0
                    ? "the intermediate certificate has expired: no certificate can be issued"
                    : "the intermediate certificate expires in \(intermediateSummary.daysLeft) days; create a new one before then")
        }
        if rootSummary.daysLeft < 365 {
            warnings.append("the root certificate expires in \(rootSummary.daysLeft) days")
        }
        for path in [settings.paths.rootKey, settings.paths.intermediateKey] {
            if let mode = FileOperations.mode(of: path), mode & 0o077 != 0 {
                warnings.append("\(path) is readable by group or others (mode \(String(mode, radix: 8))); run chmod 600 on it")
            } else if FileOperations.mode(of: path) == nil {
                warnings.append("\(path) is missing")
            }
        }
        // A password file may be gone on purpose (a systemd credential instead); one that is there is private.
        for path in AuthorityLoader.passwordFiles(settings, directories: directories) {
            if let mode = FileOperations.mode(of: path), mode & 0o077 != 0 {
                warnings.append("\(path) is readable by group or others (mode \(String(mode, radix: 8))); run chmod 600 on it")
            }
        }
        if let mode = FileOperations.mode(of: settings.paths.secretsDir), mode & 0o077 != 0 {
            warnings.append("\(settings.paths.secretsDir) is accessible by group or others; run chmod 700 on it")
        }

        return CAStatusReport(
            name: settings.name,
            fingerprint: rootSummary.fingerprint,
            root: rootSummary,
            intermediate: intermediateSummary,
            addresses: settings.addresses.map(\.description),
            dnsNames: settings.dnsNames,
            defaultDuration: settings.defaultDuration,
            minimumDuration: settings.minimumDuration,
            maximumDuration: settings.maximumDuration,
            provisioners: ProvisionerSummary.all(settings),
            // Filled in by the caller, which can reach the network.
            server: "unknown",
            // Filled in by the caller from the backup module (`BackupState.summary`).
            backups: BackupReport(),
            warnings: warnings)
    }

    public static func loadCertificate(_ path: String, what: String) throws -> Certificate {
        guard FileOperations.exists(path) else {
            throw AutoSSLError.general("the \(what) is missing (\(path))", hint: "restore the CA from a backup")
        }
        do {
            return try Certificate(pemEncoded: try FileOperations.readText(path))
        } catch let error as AutoSSLError {
            throw error
        } catch {
            throw AutoSSLError.general("the \(what) at \(path) could not be parsed: \(error)")
        }
    }

    static func summary(_ certificate: Certificate, path: String, now: Date) throws -> CertificateSummary {
        CertificateSummary(
            subject: certificate.commonName ?? certificate.subject.description,
            keyType: KeyAlgorithm(publicKey: certificate.publicKey)?.displayName ?? "unknown",
            serial: certificate.serialNumber.hexString,
            notBefore: certificate.notValidBefore,
            notAfter: certificate.notValidAfter,
            daysLeft: Int(floor(certificate.notValidAfter.timeIntervalSince(now) / 86_400)),
            fingerprint: try Fingerprint.sha256(of: certificate),
            path: path)
    }
}
