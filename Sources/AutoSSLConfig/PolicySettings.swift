import Foundation

/// Issuance policy as written in config.yaml, for the CA as a whole or for one provisioner.
/// A provisioner's settings replace the CA's field by field; unset fields inherit.
public struct PolicySettings: Codable, Equatable, Sendable {
    /// Exact names ("web01.internal") or suffixes (".internal" or "*.internal": any name below).
    public var allowedDNS: [String]?
    /// CIDR ranges ("10.0.0.0/8", "fd00::/8").
    public var allowedIPs: [String]?
    /// Key types from KeyAlgorithm ("P-256", "RSA-2048", ...).
    public var keyTypes: [String]?
    public var defaultDuration: String?
    public var minimumDuration: String?
    public var maximumDuration: String?

    enum CodingKeys: String, CodingKey {
        case allowedDNS = "allowed_dns"
        case allowedIPs = "allowed_ips"
        case keyTypes = "key_types"
        case defaultDuration = "default_duration"
        case minimumDuration = "min_duration"
        case maximumDuration = "max_duration"
    }

    public init(
        allowedDNS: [String]? = nil, allowedIPs: [String]? = nil, keyTypes: [String]? = nil,
        defaultDuration: String? = nil, minimumDuration: String? = nil, maximumDuration: String? = nil
    ) {
        self.allowedDNS = allowedDNS
        self.allowedIPs = allowedIPs
        self.keyTypes = keyTypes
        self.defaultDuration = defaultDuration
        self.minimumDuration = minimumDuration
        self.maximumDuration = maximumDuration
    }

    public func overlaid(by other: PolicySettings?) -> PolicySettings {
        guard let other else { return self }
        return PolicySettings(
            allowedDNS: other.allowedDNS ?? allowedDNS, allowedIPs: other.allowedIPs ?? allowedIPs,
            keyTypes: other.keyTypes ?? keyTypes, defaultDuration: other.defaultDuration ?? defaultDuration,
            minimumDuration: other.minimumDuration ?? minimumDuration,
            maximumDuration: other.maximumDuration ?? maximumDuration)
    }
}
