import Foundation

/// The Linux family, from /etc/os-release, which decides how trust stores and packages work.
public enum OSFamily: String, Codable, Sendable, CaseIterable {
    case debian, rhel, suse, arch, alpine, macos, unknown

    /// Classifies os-release contents by ID, then ID_LIKE.
    public static func detect(osRelease contents: String) -> (family: OSFamily, prettyName: String?) {
        let fields = parseOSRelease(contents)
        let candidates = [fields["ID"]] + (fields["ID_LIKE"]?.split(separator: " ").map(String.init) ?? []).map { $0 }
        for candidate in candidates.compactMap({ $0?.lowercased() }) {
            if let family = family(forID: candidate) { return (family, fields["PRETTY_NAME"]) }
        }
        return (.unknown, fields["PRETTY_NAME"])
    }

    static func family(forID id: String) -> OSFamily? {
        switch id {
        case "debian", "ubuntu", "raspbian", "linuxmint", "pop": return .debian
        case "rhel", "fedora", "centos", "rocky", "almalinux", "amzn", "ol": return .rhel
        case "suse", "opensuse", "opensuse-leap", "opensuse-tumbleweed", "sles", "sled": return .suse
        case "arch", "manjaro", "endeavouros": return .arch
        case "alpine": return .alpine
        default: return nil
        }
    }

    /// KEY=value lines, values optionally quoted; comments and blank lines ignored.
    public static func parseOSRelease(_ contents: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in contents.split(whereSeparator: \.isNewline) {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard !trimmed.hasPrefix("#"), let eq = trimmed.firstIndex(of: "=") else { continue }
            let key = String(trimmed[..<eq])
            var value = String(trimmed[trimmed.index(after: eq)...])
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            }
            result[key] = value
        }
        return result
    }

    /// This machine's family.
    public static func current(osReleasePath: String = "/etc/os-release") -> (family: OSFamily, prettyName: String?) {
        #if os(macOS)
        return (.macos, "macOS")
        #else
        guard let contents = try? String(contentsOfFile: osReleasePath, encoding: .utf8) else {
            return (.unknown, nil)
        }
        return detect(osRelease: contents)
        #endif
    }
}
