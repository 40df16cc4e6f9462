import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import Foundation
import AutoSSLIO

struct CAFleetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fleet",
        abstract: "Every name set this CA issued for, its newest certificate and its state, most urgent first.",
        discussion: """
            States: expired, expiring (past the renewal point, less than 24 h left), renewal_overdue (past 3/4 \
            of the lifetime with no newer certificate), revoked, healthy. Certificates expired for more than \
            7 days are left out. Read from the CA's database on the CA host, whether or not the server runs. \
            See docs/fleet.md.
            """)

    @Option(help: "Only this state: \(FleetState.allCases.map(\.rawValue).joined(separator: ", ")).")
    var state: String?

    @Option(help: "Only name sets with a name containing this (case-insensitive).")
    var name: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let filter = try FleetFilter(state: state, name: name)
        let now = Date()
        let store = try await openStoreForAdmin()
        let entries: [FleetEntry]
        do {
            entries = try await Fleet.load(from: store, now: now).filter(filter.matches)
        } catch {
            try? await store.close()
            throw error
        }
        try await store.close()
        if json {
            try Output.json(FleetReport(
                generatedAt: now, entries: entries,
                counts: Dictionary(uniqueKeysWithValues: FleetState.allCases.map { state in (state.rawValue, entries.filter { $0.state == state }.count) })))
            return
        }
        if entries.isEmpty {
            print(filter == FleetFilter() ? "This CA has issued no certificate that is valid or expired less than 7 days ago." : "No name set matches.")
            return
        }
        let rows = entries.map { entry in
            [
                entry.state.label, Fleet.timeLeft(seconds: entry.secondsLeft), Output.date(entry.notAfter),
                entry.lastRenewal.map(Output.date) ?? "never", entry.provisioner, entry.requester ?? "-", entry.serial,
                entry.names.joined(separator: ", "),
            ].map(Self.printable)
        }
        let header = ["STATE", "TIME LEFT", "EXPIRES", "LAST RENEWAL", "PROVISIONER", "FROM", "SERIAL", "NAMES"]
        var widths = header.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count - 1 { widths[index] = max(widths[index], min(cell.count, 40)) }
        }
        for row in [header] + rows {
            let cells = row.enumerated().map { index, cell in
                index == row.count - 1 ? cell : cell.padding(toLength: max(widths[index], cell.count), withPad: " ", startingAt: 0)
            }
            print(cells.joined(separator: "  "))
        }
        let counts = FleetState.allCases.compactMap { state -> String? in
            let count = entries.filter { $0.state == state }.count
            return count == 0 ? nil : "\(count) \(state.label)"
        }
        print("\n\(entries.count) name set\(entries.count == 1 ? "" : "s"): \(counts.joined(separator: ", "))")
    }

    /// What the database holds is shown, never interpreted by the terminal: control characters
    /// (escape sequences) become `?`.
    static func printable(_ text: String) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.map { CharacterSet.controlCharacters.contains($0) ? "?" : $0 }))
    }
}

/// `ca fleet --json`.
struct FleetReport: Encodable {
    var generatedAt: Date
    var entries: [FleetEntry]
    /// How many entries are in each state (every state named, 0 included).
    var counts: [String: Int]

    enum CodingKeys: String, CodingKey {
        case generatedAt = "generated_at"
        case entries, counts
    }
}
