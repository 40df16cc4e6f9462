import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation

/// `ca provisioner add|update|remove --type acme` and `ca provisioner eab add|list`.
extension ProvisionerAdmin {
    public struct ACMEChanges: Sendable {
        public var challenges: [String]?
        public var requireEAB: Bool?
        /// "" clears the setting.
        public var resolver: String?
        public var http01Port: Int?
        public var tlsALPN01Port: Int?
        public var policy: PolicySettings?
        /// Replaces the list; [] clears it.
        public var validationAllow: [String]?

        public init(
            challenges: [String]? = nil, requireEAB: Bool? = nil, resolver: String? = nil, http01Port: Int? = nil,
            tlsALPN01Port: Int? = nil, policy: PolicySettings? = nil, validationAllow: [String]? = nil
        ) {
            self.validationAllow = validationAllow
            self.challenges = challenges
            self.requireEAB = requireEAB
            self.resolver = resolver
            self.http01Port = http01Port
            self.tlsALPN01Port = tlsALPN01Port
            self.policy = policy
        }
    }

    public func acmeProvisioners() throws -> [ACMEProvisionerSettings] {
        try load().1.acmeProvisioners ?? []
    }

    static func apply(_ changes: ACMEChanges, to provisioner: inout ACMEProvisionerSettings, base: PolicySettings) throws {
        if let challenges = changes.challenges {
            let unknown = challenges.filter { !ACMEProvisionerSettings.allChallenges.contains($0) }
            guard unknown.isEmpty, !challenges.isEmpty else {
                throw AutoSSLError.invalidArgument(
                    "--challenges takes a comma-separated list of http-01, dns-01, tls-alpn-01", hint: unknown.isEmpty ? nil : "unknown: \(unknown.joined(separator: ", "))")
            }
            provisioner.challenges = ACMEProvisionerSettings.allChallenges.filter(challenges.contains)
        }
        if let requireEAB = changes.requireEAB { provisioner.requireEAB = requireEAB }
        if let resolver = changes.resolver {
            if resolver.isEmpty {
                provisioner.resolver = nil
            } else {
                let address = try ListenAddress(parsing: resolver)
                guard IPAddress(address.host) != nil else {
                    throw AutoSSLError.invalidArgument("--resolver must be an IP address and port, e.g. 10.0.0.53:53")
                }
                provisioner.resolver = address.description
            }
        }
        for (port, option) in [(changes.http01Port, "--http01-port"), (changes.tlsALPN01Port, "--tlsalpn01-port")] {
            if let port, !(1...65_535).contains(port) {
                throw AutoSSLError.invalidArgument("\(option) must be between 1 and 65535")
            }
        }
        if let port = changes.http01Port { provisioner.http01Port = port == 80 ? nil : port }
        if let port = changes.tlsALPN01Port { provisioner.tlsALPN01Port = port == 443 ? nil : port }
        if let allow = changes.validationAllow {
            let ranges = try allow.map { text in
                do {
                    return try IPRange(parsing: text).description
                } catch {
                    throw AutoSSLError.invalidArgument(
                        "--validation-allow \"\(text)\" is not an address range", hint: "use CIDR form, e.g. 127.0.0.0/8 or fd00::/8")
                }
            }
            provisioner.validationAllow = ranges.isEmpty ? nil : ranges
        }
        if let policy = changes.policy {
            // Field by field, as for password provisioners: what is not given stays.
            var merged = (provisioner.policy ?? PolicySettings()).overlaid(by: policy)
            // A lower maximum lowers the default with it, unless a default is given too.
            if policy.defaultDuration == nil, let maximum = policy.maximumDuration,
               let current = merged.defaultDuration ?? base.defaultDuration,
               try CertificateDuration(parsing: maximum) < CertificateDuration(parsing: current) {
                merged.defaultDuration = maximum
            }
            _ = try IssuancePolicy(base.overlaid(by: merged))
            provisioner.policy = merged
        }
    }

    public func addACME(name: String, changes: ACMEChanges) throws -> ACMEProvisionerSettings {
        try ProvisionerName.validateNew(name)
        var (configuration, settings) = try load()
        let taken = settings.provisioners.map(\.name) + (settings.acmeProvisioners ?? []).map(\.name)
        guard !taken.contains(name) else { throw AutoSSLError.invalidArgument("a provisioner named \"\(name)\" already exists") }
        var provisioner = ACMEProvisionerSettings(name: name)
        try Self.apply(changes, to: &provisioner, base: settings.basePolicySettings)
        settings.acmeProvisioners = (settings.acmeProvisioners ?? []) + [provisioner]
        configuration.ca = settings
        try configuration.save(to: directories.configFile)
        return provisioner
    }

    public func updateACME(name: String, changes: ACMEChanges) throws -> ACMEProvisionerSettings {
        var (configuration, settings) = try load()
        var list = settings.acmeProvisioners ?? []
        guard let index = list.firstIndex(where: { $0.name == name }) else {
            throw AutoSSLError.general("there is no provisioner named \"\(name)\"", hint: "list them with `auto-ssl ca provisioner list`")
        }
        try Self.apply(changes, to: &list[index], base: settings.basePolicySettings)
        settings.acmeProvisioners = list
        configuration.ca = settings
        try configuration.save(to: directories.configFile)
        return list[index]
    }

    /// Removes an ACME provisioner; returns false when `name` is not one.
    public func removeACME(name: String) throws -> Bool {
        var (configuration, settings) = try load()
        guard settings.acmeProvisioners?.contains(where: { $0.name == name }) == true else { return false }
        settings.acmeProvisioners?.removeAll { $0.name == name }
        if settings.acmeProvisioners?.isEmpty == true { settings.acmeProvisioners = nil }
        configuration.ca = settings
        try configuration.save(to: directories.configFile)
        return true
    }

    /// A new external account binding key: (key id, base64url HMAC key). Stored in the CA's
    /// database, so it works whether or not the server runs; each key binds one account.
    public func addEABKey(provisioner name: String) async throws -> (kid: String, hmacKey: String) {
        let (_, settings) = try load()
        guard settings.acmeProvisioners?.contains(where: { $0.name == name }) == true else {
            throw AutoSSLError.general("there is no ACME provisioner named \"\(name)\"")
        }
        // Never starting with "-": the key id is given on command lines (`eab remove KID`), where it
        // would be read as an option (one in 64 base64url ids would, "-h" even as --help).
        var kid = Base64URL.encode(SecureRandom.bytes(12))
        while kid.hasPrefix("-") { kid = Base64URL.encode(SecureRandom.bytes(12)) }
        let key = Data(SecureRandom.bytes(32))
        let database = try await AuthorityLoader(directories: directories).openDatabase(settings)
        try await database.acme.addEABKey(kid: kid, provisioner: name, key: key, now: Date())
        await AdminEventLog.record(database, event: "eab.added", detail: "key \(kid) for ACME provisioner \(name)")
        AdminEventLog.recordLocally(directories: directories, .init("eab.added", provisioner: name, detail: "key \(kid)"))
        try await database.close()
        return (kid, Base64URL.encode(key))
    }

    /// Removes a binding key no account has used; refuses (and removes nothing) for one already
    /// bound: the account stays valid either way, so removing its key would change nothing.
    /// Returns the key's provisioner.
    public func removeEABKey(kid: String) async throws -> String {
        let (_, settings) = try load()
        let database = try await AuthorityLoader(directories: directories).openDatabase(settings)
        let outcome: ACMEEABKeyRemoval
        do {
            outcome = try await database.acme.removeEABKey(kid: kid)
            if case .removed(let provisioner) = outcome {
                await AdminEventLog.record(database, event: "eab.removed", detail: "key \(kid) of ACME provisioner \(provisioner)")
                AdminEventLog.recordLocally(directories: directories, .init("eab.removed", provisioner: provisioner, detail: "key \(kid)"))
            }
        } catch {
            try? await database.close()
            throw error
        }
        try await database.close()
        switch outcome {
        case .removed(let provisioner):
            return provisioner
        case .notFound:
            throw AutoSSLError.general(
                "there is no binding key with key id \(kid)", hint: "list them with `auto-ssl ca provisioner eab list NAME`")
        case .bound(let provisioner, let account):
            throw AutoSSLError.general(
                "binding key \(kid) of provisioner \(provisioner) already bound ACME account \(account); nothing was removed",
                hint: "a key binds an account only when the account is created: removing it now would not affect the account, which stays valid")
        }
    }

    public func eabKeys(provisioner name: String) async throws -> [ACMEEABKeyInfo] {
        let (_, settings) = try load()
        let database = try await AuthorityLoader(directories: directories).openDatabase(settings)
        let keys = try await database.acme.eabKeys(provisioner: name)
        try await database.close()
        return keys
    }
}
