import Foundation
import Testing
import TestSupport

/// The alert rules shipped in contrib/prometheus: Prometheus' own checker accepts them, their unit
/// tests pass, and every alert has a test input that fires it and one that must not.
@Suite struct AlertRulesTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("contrib/prometheus").path
    static let rules = directory + "/auto-ssl.rules.yml"
    static let ruleTests = directory + "/auto-ssl.rules.test.yml"
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    @Test(.enabled(if: promtool != nil, "needs promtool (Debian's prometheus package; CI installs it)"))
    func promtoolAcceptsTheRules() throws {
        let result = try runProcess(try #require(Self.promtool), ["check", "rules", Self.rules])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("SUCCESS: \(try Self.alertNames().count) rules found"), "\(result)")
    }

    @Test(.enabled(if: promtool != nil, "needs promtool (Debian's prometheus package; CI installs it)"))
    func ruleUnitTestsPass() throws {
        // From the rules' directory: the test file names the rules file relative to itself.
        let result = try runProcess(try #require(Self.promtool), ["test", "rules", Self.ruleTests], currentDirectory: Self.directory)
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout.contains("SUCCESS"), "\(result)")
    }

    /// Reads the YAML as lines (the files are ours and shaped alike): each `alertname:` of an
    /// `alert_rule_test` entry is followed by its `exp_alerts:`, empty (`[]`) or a list.
    @Test func everyAlertHasATestThatFiresItAndOneThatMustNot() throws {
        let alerts = try Self.alertNames()
        #expect(alerts.count >= 10, "\(alerts)")
        var fired: Set<String> = []
        var quiet: Set<String> = []
        var current: String?
        for line in try readFile(Self.ruleTests).split(separator: "\n").map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if line.hasPrefix("alertname:") {
                current = line.dropFirst("alertname:".count).trimmingCharacters(in: .whitespaces)
            } else if line.hasPrefix("exp_alerts:"), let name = current {
                if line.hasSuffix("[]") { quiet.insert(name) } else { fired.insert(name) }
                current = nil
            }
        }
        for alert in alerts {
            #expect(fired.contains(alert), "no test input fires \(alert)")
            #expect(quiet.contains(alert), "no test input checks that \(alert) stays quiet")
        }
        #expect(fired.union(quiet).subtracting(alerts).isEmpty, "tests name alerts the rules do not define")
    }

    static func alertNames() throws -> [String] {
        try readFile(rules).split(separator: "\n").compactMap { line -> String? in
            let text = line.trimmingCharacters(in: .whitespaces)
            guard text.hasPrefix("- alert:") else { return nil }
            return text.dropFirst("- alert:".count).trimmingCharacters(in: .whitespaces)
        }
    }
}
