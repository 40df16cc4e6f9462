import AutoSSLCore
import AutoSSLStore
import Foundation

/// Where a name set stands, by the rule of `CAOverview.state(of:now:)`.
public enum FleetState: String, Sendable, Codable, CaseIterable {
    /// Its newest certificate is past its notAfter (kept for `CAOverview.expiredRetention`).
    case expired
    /// Past the renewal point and within `CAOverview.soon` (24 h) of expiry.
    case expiring
    /// Past the renewal point (3/4 of the lifetime) with no newer certificate.
    case renewalOverdue = "renewal_overdue"
    /// Its newest certificate was revoked (ended on purpose: not overdue).
    case revoked
    case healthy

    /// Most urgent first: an outage, an outage within a day, a timer that stopped, ended on purpose, fine.
    public var urgency: Int {
        switch self {
        case .expired: return 0
        case .expiring: return 1
        case .renewalOverdue: return 2
        case .revoked: return 3
        case .healthy: return 4
        }
    }

    /// Words for people.
    public var label: String {
        switch self {
        case .expired: return "expired"
        case .expiring: return "expiring"
        case .renewalOverdue: return "renewal overdue"
        case .revoked: return "revoked"
        case .healthy: return "healthy"
        }
    }

    /// The JSON word, or the label with a space or dash instead of the underscore.
    public init?(parsing text: String) {
        let word = text.lowercased().replacingOccurrences(of: " ", with: "_").replacingOccurrences(of: "-", with: "_")
        if let state = FleetState(rawValue: word) {
            self = state
        } else if word == "overdue" {
            self = .renewalOverdue
        } else {
            return nil
        }
    }
}

/// One name set (the names of one certificate) and its newest certificate.
public struct FleetEntry: Sendable, Equatable, Encodable {
    public var names: [String]
    public var state: FleetState
    /// The newest certificate (by notBefore) carrying exactly these names.
    public var serial: String
    public var notBefore: Date
    public var notAfter: Date
    /// notAfter - now, in whole seconds; negative once expired.
    public var secondsLeft: Int
    /// The renewal point after which the name set is overdue (3/4 of the lifetime).
    public var overdueAfter: Date
    /// When the newest certificate was issued.
    public var issuedAt: Date
    /// The newest issuance of these names that was a renewal (within what the CA still looks at:
    /// certificates expired for less than `CAOverview.expiredRetention`).
    public var lastRenewal: Date?
    public var provisioner: String
    /// The address the newest certificate's request came from.
    public var requester: String?
    public var revokedAt: Date?

    enum CodingKeys: String, CodingKey {
        case names, state, serial
        case notBefore = "not_before"
        case notAfter = "not_after"
        case secondsLeft = "seconds_left"
        case overdueAfter = "overdue_after"
        case issuedAt = "issued_at"
        case lastRenewal = "last_renewal"
        case provisioner, requester
        case revokedAt = "revoked_at"
    }
}

/// What `ca fleet` and the dashboard show only some of: a state, a substring of a name.
public struct FleetFilter: Sendable, Equatable {
    /// Longest name substring accepted (a DNS name is at most 253 characters).
    public static let maximumNameLength = 253

    public var state: FleetState?
    public var name: String?

    public init() {}

    /// Checks both: an unknown state, a name substring that is too long or holds anything but
    /// letters, digits and `. - _ : * [ ]` is refused with a message naming what is allowed.
    public init(state: String?, name: String?) throws {
        if let state, !state.isEmpty {
            guard state.count <= 32, let parsed = FleetState(parsing: state) else {
                throw AutoSSLError.invalidArgument(
                    "unknown state \"\(state.prefix(32))\"", hint: "use one of \(FleetState.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self.state = parsed
        }
        if let name, !name.isEmpty {
            guard name.count <= Self.maximumNameLength else {
                throw AutoSSLError.invalidArgument("the name filter is longer than \(Self.maximumNameLength) characters")
            }
            guard name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || ".-_:*[]".unicodeScalars.contains($0)) })
            else {
                throw AutoSSLError.invalidArgument(
                    "the name filter may hold letters, digits and . - _ : * [ ] only")
            }
            self.name = name.lowercased()
        }
    }

    public func matches(_ entry: FleetEntry) -> Bool {
        if let state, entry.state != state { return false }
        if let name, !entry.names.contains(where: { $0.lowercased().contains(name) }) { return false }
        return true
    }
}

/// The CA's view of its fleet: every name set it issued for, with the newest certificate and the
/// state `CAOverview` gives it (the same rule as the renewal gauges).
public enum Fleet {
    /// One entry per name set (order of the names aside), most urgent first. A name set whose every
    /// name is carried by a newer certificate of another name set was re-issued under other names
    /// and is left out (the gauges, which go by name, do not count it either).
    public static func entries(_ certificates: [FleetCertificate], now: Date) -> [FleetEntry] {
        var groups: [[String]: [FleetCertificate]] = [:]
        for certificate in certificates where !certificate.lifetime.names.isEmpty {
            groups[certificate.lifetime.names.sorted(), default: []].append(certificate)
        }
        let newestPerName = CAOverview.newestPerName(certificates.map(\.lifetime))
        var entries: [FleetEntry] = []
        for (_, group) in groups {
            guard let newest = CAOverview.newest(group, lifetime: \.lifetime) else { continue }
            let lifetime = newest.lifetime
            let superseded = lifetime.names.allSatisfy { name in
                newestPerName[name].map { $0.notBefore > lifetime.notBefore } ?? false
            }
            if superseded { continue }
            let lastRenewal = group.filter { $0.renewedFrom != nil }.map(\.createdAt).max()
            let left = lifetime.notAfter.timeIntervalSince(now)
            entries.append(FleetEntry(
                names: lifetime.names, state: CAOverview.state(of: lifetime, now: now), serial: newest.serial,
                notBefore: lifetime.notBefore, notAfter: lifetime.notAfter,
                secondsLeft: left.isFinite ? Int(max(-1e12, min(1e12, left)).rounded(.down)) : 0,
                overdueAfter: CAOverview.renewalPoint(of: lifetime), issuedAt: newest.createdAt, lastRenewal: lastRenewal,
                provisioner: newest.provisioner, requester: newest.requester, revokedAt: newest.revokedAt))
        }
        entries.sort {
            if $0.state.urgency != $1.state.urgency { return $0.state.urgency < $1.state.urgency }
            if $0.notAfter != $1.notAfter { return $0.notAfter < $1.notAfter }
            return $0.names.lexicographicallyPrecedes($1.names)
        }
        return entries
    }

    /// Reads the records the rule needs (certificates expired for less than
    /// `CAOverview.expiredRetention`) and computes the entries.
    public static func load(from store: any CertificateDatabase, now: Date = Date()) async throws -> [FleetEntry] {
        entries(try await store.fleetCertificates(notExpiredBefore: now.addingTimeInterval(-CAOverview.expiredRetention)), now: now)
    }

    /// "3d 4h", "5h 12m", "42m", "40s"; "expired 2h ago" when negative.
    public static func timeLeft(seconds: Int) -> String {
        let magnitude = seconds.magnitude
        let days = magnitude / 86_400, hours = magnitude % 86_400 / 3_600, minutes = magnitude % 3_600 / 60
        let text: String
        if days > 0 {
            text = "\(days)d \(hours)h"
        } else if hours > 0 {
            text = "\(hours)h \(minutes)m"
        } else if minutes > 0 {
            text = "\(minutes)m"
        } else {
            text = "\(magnitude)s"
        }
        return seconds < 0 ? "expired \(text) ago" : text
    }
}

extension Authority {
    /// The fleet from the CA's records (for the dashboard).
    public func fleet(now: Date = Date()) async throws -> [FleetEntry] {
        try await Fleet.load(from: store, now: now)
    }
}
