import AutoSSLConfig
import AutoSSLCore
import Foundation

/// Why a request was refused by policy: which rule, in words an operator can act on.
public struct PolicyViolation: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The checked, parsed form of a policy.
public struct IssuancePolicy: Sendable, Equatable {
    public var allowedDNS: [String]?
    public var allowedIPs: [IPRange]?
    public var keyTypes: Set<KeyAlgorithm>
    public var defaultDuration: CertificateDuration
    public var minimumDuration: CertificateDuration
    public var maximumDuration: CertificateDuration

    public static let allKeyTypes: Set<KeyAlgorithm> = Set(KeyAlgorithm.allCases)

    /// Parses settings over the product's defaults (7d / 5m / 30d, every supported key type, any name).
    public init(_ settings: PolicySettings) throws {
        allowedDNS = try settings.allowedDNS.map { rules in
            try rules.map { rule in
                let lower = rule.lowercased()
                let bare = lower.hasPrefix("*.") ? String(lower.dropFirst(2)) : (lower.hasPrefix(".") ? String(lower.dropFirst()) : lower)
                _ = try SubjectName(parsing: bare)
                return lower.hasPrefix("*.") ? "." + bare : lower
            }
        }
        allowedIPs = try settings.allowedIPs.map { try $0.map(IPRange.init(parsing:)) }
        if let names = settings.keyTypes {
            keyTypes = Set(try names.map { name in
                guard let algorithm = KeyAlgorithm(rawValue: name.uppercased()) else {
                    throw AutoSSLError.invalidArgument(
                        "unknown key type \"\(name)\"",
                        hint: "use \(KeyAlgorithm.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return algorithm
            })
        } else {
            keyTypes = Self.allKeyTypes
        }
        defaultDuration = try settings.defaultDuration.map(CertificateDuration.init(parsing:)) ?? .days(7)
        minimumDuration = try settings.minimumDuration.map(CertificateDuration.init(parsing:)) ?? .minutes(5)
        maximumDuration = try settings.maximumDuration.map(CertificateDuration.init(parsing:)) ?? .days(30)
        guard minimumDuration >= CAInitOptions.minimumDuration, maximumDuration <= CAInitOptions.durationCeiling,
              minimumDuration <= defaultDuration, defaultDuration <= maximumDuration else {
            throw AutoSSLError.invalidArgument(
                "inconsistent policy durations (min \(minimumDuration), default \(defaultDuration), max \(maximumDuration))",
                hint: "durations must satisfy 5m <= min <= default <= max <= 720h")
        }
    }

    public func check(names: [SubjectName]) throws(PolicyViolation) {
        for name in names {
            switch name {
            case .dns(let dns):
                guard let rules = allowedDNS else { continue }
                let allowed = rules.contains { rule in
                    rule.hasPrefix(".") ? dns.hasSuffix(rule) && dns.count > rule.count : dns == rule
                }
                if !allowed {
                    throw PolicyViolation(
                        message: "the name \(dns) is not allowed by policy (allowed DNS: \(rules.joined(separator: ", ")))")
                }
            case .ip(let ip):
                guard let ranges = allowedIPs else { continue }
                if !ranges.contains(where: { $0.contains(ip) }) {
                    throw PolicyViolation(
                        message: "the IP address \(ip) is not allowed by policy (allowed ranges: \(ranges.map(\.description).joined(separator: ", ")))")
                }
            }
        }
    }

    public func check(keyType: KeyAlgorithm) throws(PolicyViolation) {
        guard keyTypes.contains(keyType) else {
            throw PolicyViolation(
                message: "key type \(keyType.rawValue) is not allowed by policy (allowed: \(keyTypes.map(\.rawValue).sorted().joined(separator: ", ")))")
        }
    }

    public func check(lifetime: CertificateDuration) throws(PolicyViolation) {
        // "720h (30 days)"; a duration with no rounder form is shown once.
        func shown(_ duration: CertificateDuration) -> String {
            let words = duration.humanReadable
            return words == duration.description ? words : "\(duration) (\(words))"
        }
        guard lifetime >= minimumDuration else {
            throw PolicyViolation(
                message: "the requested lifetime \(shown(lifetime)) is shorter than the minimum \(shown(minimumDuration))")
        }
        guard lifetime <= maximumDuration else {
            throw PolicyViolation(
                message: "the requested lifetime \(shown(lifetime)) exceeds the maximum \(shown(maximumDuration))")
        }
    }
}
