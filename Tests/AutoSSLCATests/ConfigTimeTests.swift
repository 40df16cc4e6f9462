@testable import AutoSSLConfig
import AutoSSLCore
import Foundation
import Testing
import TestSupport

@Suite struct ConfigTimeTests {
    /// The fast reader gives exactly the `Date` Yams' own reader gives for every RFC 3339 form
    /// auto-ssl writes or a person would type, so a config.yaml reads back equal.
    @Test func rfc3339TimesReadToExactlyWhatYamsReads() throws {
        let texts = [
            "2026-11-30T17:11:48Z", "2026-11-30T17:11:48.068501592Z", "2026-11-30T17:11:48.5Z", "2026-11-30T17:11:48.000000001Z",
            "1970-01-01T00:00:00Z", "2099-12-31T23:59:59.999999999Z", "2026-11-30T17:11:48.25+01:00", "2026-11-30T17:11:48-05:30",
        ]
        for text in texts {
            let fast = ConfigTime.parse(text)
            let library = ConfigTime.libraryParse(text)
            #expect(fast != nil && fast == library, "\(text): \(String(describing: fast)) vs Yams \(String(describing: library))")
        }
        // Forms the fast reader leaves to Yams.
        for text in ["2026-11-30 17:11:48", "2026-11-30", "2026-11-30T17:11:48.0123456789Z"] {
            #expect(ConfigTime.parse(text) == nil, "\(text)")
        }
        #expect(ConfigTime.libraryParse("2026-11-30") != nil)
    }

    /// Every date field of config.yaml round-trips, a date typed the YAML way still reads, and a
    /// file that uses YAML's merge key (`<<`) is still merged.
    @Test func configurationTimesAndMergeKeysRead() throws {
        var enrollment = ServerEnrollment(
            caURL: "https://ca.internal:9443", fingerprint: String(repeating: "a", count: 64), names: ["web.internal"],
            certPath: "/etc/ssl/web.crt", keyPath: "/etc/ssl/web.key", rootPath: "/etc/ssl/root.crt", combinedPath: nil, keyType: "ec",
            provisioner: "admin", duration: nil, reload: nil, reloadCommand: nil, renewalTimer: true,
            enrolledAt: Date(timeIntervalSince1970: 1_796_058_708.068_501_592))
        enrollment.suspension = .init(reason: "maintenance", since: Date(timeIntervalSince1970: 1_796_058_800.5))
        enrollment.adoption = .init(originalSerial: "01", adoptedAt: Date(timeIntervalSince1970: 1_796_000_000), keptIn: "/var/lib/x")
        let written = AutoSSLConfiguration(server: enrollment)
        let text = try written.yamlString()
        #expect(text.contains("enrolled_at: 2026-11-30T"), "\(text)")
        #expect(try AutoSSLConfiguration.decode(text) == written)

        let typed = try AutoSSLConfiguration.decode(text.replacingOccurrences(
            of: #"enrolled_at: [^\n]*"#, with: "enrolled_at: 2026-11-30 17:11:48", options: .regularExpression))
        #expect(typed.server?.enrolledAt == ConfigTime.libraryParse("2026-11-30 17:11:48"))

        let merged = try AutoSSLConfiguration.decode(text.replacingOccurrences(of: "server:\n", with: "defaults: &d\n  key_type: ec\nserver:\n  <<: *d\n")
            .replacingOccurrences(of: "  key_type: ec\n  provisioner", with: "  provisioner"))
        #expect(merged.server?.keyType == "ec")

        #expect(throws: (any Error).self) { try AutoSSLConfiguration.decode(text.replacingOccurrences(of: "enrolled_at: 2026", with: "enrolled_at: x2026")) }
    }

    /// Yams reads an integer with colons as base 60 with unchecked arithmetic, which stopped the
    /// process on a long one (every CA command reads config.yaml; `ca restore` reads the backup's):
    /// the integers of config.yaml are read as decimal text, and anything else is a damaged file.
    @Test func integersOfTheConfigurationAreDecimalAndNeverStopTheProcess() throws {
        let settings = CASettings(
            name: "Example", addresses: [], dnsNames: [], keyType: .ec, defaultDuration: "168h", minimumDuration: "5m",
            maximumDuration: "720h", provisioners: [], paths: CAPaths(caDir: "/var/lib/auto-ssl/ca"),
            createdAt: Date(timeIntervalSince1970: 1_796_058_708),
            backupSchedule: BackupSchedule(schedule: "daily", outputDirectory: "/srv/backups", retention: 14, passphraseFile: "/etc/pp"),
            acmeProvisioners: [ACMEProvisionerSettings(name: "acme", http01Port: 8080, tlsALPN01Port: 8443)])
        let text = try AutoSSLConfiguration(ca: settings).yamlString()
        #expect(text.contains("retention: 14") && text.contains("http01_port: 8080") && text.contains("tlsalpn01_port: 8443"), "\(text)")
        #expect(try AutoSSLConfiguration.decode(text).ca == settings)
        #expect(try AutoSSLConfiguration.decode(text.replacingOccurrences(of: "retention: 14", with: "retention: '+14'")).ca == settings)
        for (field, value) in [
            ("retention: 14", "1:0:0:0:0:0:0:0:0:0:0"), ("http01_port: 8080", "9223372036854775807:1"),
            ("tlsalpn01_port: 8443", "-9223372036854775807:59:59"), ("retention: 14", "1:30"), ("retention: 14", "0x10"),
            ("http01_port: 8080", "99999999999999999999"), ("retention: 14", "[1]"), ("retention: 14", "!!int 1:0:0:0:0:0:0:0:0:0:0"),
            ("http01_port: 8080", "{a: 1}"),
        ] {
            let damaged = text.replacingOccurrences(of: field, with: field.split(separator: ":")[0] + ": " + value)
            #expect(damaged != text)
            #expect(throws: (any Error).self, "\(field) → \(value)") { try AutoSSLConfiguration.decode(damaged) }
        }
    }

    /// Aliases of aliases expand exponentially, and Yams spends that time and memory merging them
    /// (`<<`), hashing them as mapping keys while it composes the document, and decoding them:
    /// about a kilobyte ("billion laughs") kept it busy for minutes and gigabytes. A text past
    /// 50,000 values once expanded is refused before Yams reads it; aliases and merge keys within
    /// that still read.
    @Test func aDocumentThatExpandsWithoutEndIsRefusedBeforeItIsRead() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("config.yaml")
        func refused(_ text: String) -> Bool {
            do {
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                _ = try AutoSSLConfiguration.load(from: path)
                return false
            } catch {
                return "\(error)".contains("once its aliases are expanded")
            }
        }
        var merges = "a0: &a0 {k0: v}\n"
        for level in 1...40 { merges += "a\(level): &a\(level) {<<: [*a\(level - 1), *a\(level - 1)], k\(level): v}\n" }
        for section in ["server:\n  <<: *a40\n", "ca:\n  <<: *a40\n", "<<: *a40\n"] {
            #expect(refused(merges + section), "\(section)")
            #expect(throws: AutoSSLError.self) { try AutoSSLConfiguration.loadServerSection(from: path) }
        }
        var lists = "a0: &a0 [x, x]\n"
        for level in 1...40 { lists += "a\(level): &a\(level) [*a\(level - 1), *a\(level - 1)]\n" }
        // An alias as a mapping key: Yams hashes the whole expansion to look for duplicate keys.
        #expect(refused(lists + "? *a40\n: v\n"))
        #expect(refused(lists + "b: {*a40 : v}\n"))
        #expect(refused(lists + "ca:\n  dns_names: *a40\n"))

        // A text cut off inside 200 levels of lists is measured as it goes, not when it closes.
        var ladder = "a0: &a0 [x, x]\n"
        for level in 1...12 { ladder += "a\(level): &a\(level) [*a\(level - 1), *a\(level - 1)]\n" }
        #expect(refused(ladder + "b: [" + String(repeating: "[{*a12 : v}, {*a12 : v}, ", count: 200)))
        // Nesting deeper than 64 once expanded: each block aliases the one before.
        var deep = "b0: &b0 {x: 1}\n"
        for level in 1...70 { deep += "b\(level): &b\(level) {x: *b\(level - 1)}\n" }
        #expect(refused(deep))

        let sample = "a: &a [1, 2]\nb: *a\nc: {<<: {d: *a}}\n"
        #expect(YAMLExpansion.values(sample, limits: .init(values: 100, depth: 64)) == 17)
        #expect(YAMLExpansion.values(sample, limits: .init(values: 16, depth: 64)) == nil)
        #expect(YAMLExpansion.values(sample, limits: .init(values: 100, depth: 4)) == 17)
        #expect(YAMLExpansion.values(sample, limits: .init(values: 100, depth: 3)) == nil)
        #expect(YAMLExpansion.values("a: [unclosed", limits: .init(values: 100, depth: 64)) == 4)
        #expect(YAMLExpansion.values("", limits: .init(values: 100, depth: 64)) == 0)
        // Within the limits, aliases and merge keys still read.
        try "defaults: &d\n  name: Merged\nca:\n  <<: *d\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: (any Error).self) { try AutoSSLConfiguration.load(from: path) }  // a CA needs more than a name
        #expect(!refused("defaults: &d\n  name: Merged\nca:\n  <<: *d\n"))
    }

    /// The server role reads its own section alone: a CA section on the same machine is not
    /// decoded, an absent or null section is no enrollment, and a damaged server section is an error.
    @Test func theServerSectionReadsAloneAndItsDamageIsReported() throws {
        let dir = TemporaryDirectory()
        let path = dir.file("config.yaml")
        let enrollment = ServerEnrollment(
            caURL: "https://ca.internal:9443", fingerprint: String(repeating: "b", count: 64), names: ["api.internal"],
            certPath: "/etc/ssl/api.crt", keyPath: "/etc/ssl/api.key", rootPath: "/etc/ssl/root.crt", combinedPath: nil, keyType: "ec",
            provisioner: "admin", duration: "24h", reload: nil, reloadCommand: nil, renewalTimer: false,
            enrolledAt: Date(timeIntervalSince1970: 1_796_058_708.25))
        let server = try AutoSSLConfiguration(server: enrollment).yamlString()
        try (server + "ca:\n  name: [not, a, name]\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try AutoSSLConfiguration.loadServerSection(from: path) == enrollment)
        #expect(throws: AutoSSLError.self) { try AutoSSLConfiguration.load(from: path) }

        try "ca:\n  name: x\nserver: ~\n".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try AutoSSLConfiguration.loadServerSection(from: path) == nil)
        // An empty file is damaged, as for `load`, not "not enrolled".
        try "".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: AutoSSLError.self) { try AutoSSLConfiguration.loadServerSection(from: path) }
        #expect(try AutoSSLConfiguration.loadServerSection(from: dir.file("missing.yaml")) == nil)
        try server.replacingOccurrences(of: "renewal_timer: false", with: "renewal_timer: [x]").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: AutoSSLError.self) { try AutoSSLConfiguration.loadServerSection(from: path) }
    }
}
