import AutoSSLCore
import Foundation
import FuzzSupport

/// The two readers of a CA's PostgreSQL settings that see outside text: a password file in libpq's
/// format (`PGPASSFILE` / `~/.pgpass`) and the database URL (argv, config.yaml). The input's first
/// line is the URL, the rest the password file. Properties: neither traps; a URL that parses has a
/// user, host, database and a port in range, and never carries a password; a roots file comes only
/// with a mode that checks the server's certificate, as an absolute path; what it prints parses
/// again to the same location; a password found is text of the file, never a line break.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let text = Fuzz.text(Fuzz.bytes(start, count))
    let firstLine = text.prefix { $0 != "\n" }
    let rest = String(text.dropFirst(firstLine.count))

    if let location = try? PostgresLocation(url: String(firstLine)) {
        Fuzz.require(!location.user.isEmpty && !location.host.isEmpty && !location.database.isEmpty, "empty part in \(location)")
        Fuzz.require((1...65_535).contains(location.port), "port \(location.port)")
        Fuzz.require(location.rootCertificateFile == nil || location.tls.checksChain, "roots without a check in \(location)")
        Fuzz.require(location.rootCertificateFile.map { $0.hasPrefix("/") && !$0.contains("%") } ?? true, "roots path \(location)")
        let again = try? PostgresLocation(url: location.description)
        Fuzz.require(again == location, "\(location) does not parse back to itself: \(String(describing: again))")
        if let password = PGPassFile.password(for: location, in: rest) {
            Fuzz.require(!password.contains("\n"), "a password with a line break")
        }
    }
    let fixed = PostgresLocation(user: "autossl", host: "db.internal", port: 5432, database: "ca")
    if let password = PGPassFile.password(for: fixed, in: rest) {
        Fuzz.require(!password.contains("\n") && !password.contains("\r"), "a password with a line break")
    }
    return 0
}
