import ArgumentParser
import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation

struct CACertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certs", abstract: "The certificates this CA issued.",
        subcommands: [CACertsListCommand.self, CACertsShowCommand.self])
}

/// What `ca certs` prints per certificate (also its JSON shape).
struct CertificateView: Encodable {
    var serial: String
    var serialDecimal: String
    var commonName: String
    var names: [String]
    var notBefore: Date
    var notAfter: Date
    var keyType: String
    var provisioner: String
    var requester: String?
    var renewedFrom: String?
    var status: String
    var revocation: RevocationView?

    /// The revocation, with the snake_case keys of the rest of the JSON.
    struct RevocationView: Encodable {
        var reasonCode: Int
        var reason: String
        var revokedAt: Date
        var revokedBy: String

        enum CodingKeys: String, CodingKey {
            case reasonCode = "reason_code"
            case reason
            case revokedAt = "revoked_at"
            case revokedBy = "revoked_by"
        }
    }

    enum CodingKeys: String, CodingKey {
        case serial
        case serialDecimal = "serial_decimal"
        case commonName = "common_name"
        case names
        case notBefore = "not_before"
        case notAfter = "not_after"
        case keyType = "key_type"
        case provisioner, requester
        case renewedFrom = "renewed_from"
        case status, revocation
    }

    init(_ record: CertificateRecord, now: Date) {
        serial = record.serial
        serialDecimal = SerialText.decimal(fromHex: record.serial)
        commonName = record.commonName
        names = record.names
        notBefore = record.notBefore
        notAfter = record.notAfter
        keyType = record.keyType
        provisioner = record.provisioner
        requester = record.requester
        renewedFrom = record.renewedFrom
        revocation = record.revocation.map {
            RevocationView(reasonCode: $0.reasonCode, reason: $0.reason, revokedAt: $0.revokedAt, revokedBy: $0.revokedBy)
        }
        status = record.revocation != nil ? "revoked" : (record.notAfter < now ? "expired" : "valid")
    }
}

/// The certificate records, read on the CA host whether or not the server runs.
func openStoreForAdmin() async throws -> any CertificateDatabase {
    let loader = AuthorityLoader(directories: Directories.fromEnvironment())
    return try await loader.openDatabase(try loader.settings()).certificates
}

struct CACertsListCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List issued certificates, newest first.")

    @Option(help: "Only certificates that expire within this time (e.g. 48h).")
    var expiring: String?

    @Flag(help: "Only revoked certificates.")
    var revoked = false

    @Option(help: "Only certificates this provisioner issued (an ACME one's by its name or acme/NAME).")
    var provisioner: String?

    @Flag(help: "Print JSON.")
    var json = false

    func run() async throws {
        let now = Date()
        var query = CertificateQuery(onlyRevoked: revoked, provisioners: provisioner.map(ACMEProvisioner.recordedLabels(forName:)))
        if let expiring {
            query.expiringBefore = now.addingTimeInterval(TimeInterval(try CertificateDuration(parsing: expiring).seconds))
            query.includeExpired = false
        }
        let store = try await openStoreForAdmin()
        let records = try await store.certificates(query, now: now)
        try await store.close()
        let views = records.map { CertificateView($0, now: now) }
        if json {
            try Output.json(views)
            return
        }
        if views.isEmpty {
            print("No certificates match.")
            return
        }
        print("SERIAL                             STATUS   NOT AFTER             PROVISIONER  NAMES")
        for view in views {
            print(
                "\(view.serial.padding(toLength: 34, withPad: " ", startingAt: 0)) \(view.status.padding(toLength: 8, withPad: " ", startingAt: 0)) \(Output.date(view.notAfter))  \(view.provisioner.padding(toLength: 12, withPad: " ", startingAt: 0)) \(view.names.joined(separator: ", "))"
                    + (view.requester?.hasPrefix("acme-account:") == true ? "  (ACME account \(view.requester!.dropFirst(13)))" : ""))
        }
    }
}

struct CACertsShowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one certificate (serial in hex or decimal).")

    @Argument(help: "Serial number: hex (colons allowed) or decimal.")
    var serial: String

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Print the certificate as PEM.")
    var pem = false

    func run() async throws {
        guard !(json && pem) else { throw AutoSSLError.invalidArgument("give --json or --pem, not both") }
        let store = try await openStoreForAdmin()
        var found: CertificateRecord?
        for candidate in try SerialText.candidates(serial) {
            if let record = try await store.certificate(serial: candidate), record.status == .issued {
                found = record
                break
            }
        }
        try await store.close()
        guard let record = found else {
            throw AutoSSLError.general("no certificate with serial \(serial) was issued by this CA")
        }
        let view = CertificateView(record, now: Date())
        if pem, let der = record.der {
            print(PEMDocumentText.certificate(der), terminator: "")
            return
        }
        if json {
            try Output.json(view)
            return
        }
        var lines = [
            "Serial:       \(view.serial) (decimal \(view.serialDecimal))",
            "Status:       \(view.status)",
            "Subject CN:   \(view.commonName)",
            "Names:        \(view.names.joined(separator: ", "))",
            "Key:          \(view.keyType)",
            "Valid:        \(Output.date(view.notBefore)) to \(Output.date(view.notAfter))",
            "Provisioner:  \(view.provisioner)",
            "Requested by: \(view.requester ?? "-")",
        ]
        if let renewedFrom = view.renewedFrom { lines.append("Renewed from: \(renewedFrom)") }
        if let revocation = view.revocation {
            lines.append("Revoked:      \(Output.date(revocation.revokedAt)) by \(revocation.revokedBy), reason code \(revocation.reasonCode)"
                + (CRLBuilder.reasonNames[revocation.reasonCode].map { " (\($0))" } ?? "")
                + (revocation.reason.isEmpty ? "" : ": \(revocation.reason)"))
        }
        print(lines.joined(separator: "\n"))
    }
}

enum PEMDocumentText {
    static func certificate(_ der: [UInt8]) -> String {
        let base64 = Data(der).base64EncodedString()
        var lines = ["-----BEGIN CERTIFICATE-----"]
        var index = base64.startIndex
        while index < base64.endIndex {
            let next = base64.index(index, offsetBy: 64, limitedBy: base64.endIndex) ?? base64.endIndex
            lines.append(String(base64[index..<next]))
            index = next
        }
        lines.append("-----END CERTIFICATE-----")
        return lines.joined(separator: "\n") + "\n"
    }
}
