import AutoSSLHost
import AutoSSLRemote
import Foundation
import FuzzSupport

/// What `auto-ssl remote` reads from a host over ssh: the host's `server status --json`
/// (`RemoteHostStatus(hostJSON:)`), the binary probe's `version=`/`sha256=` lines, and ssh's and
/// sudo's messages (`SSHFailure.classify`), all cleaned by `RemoteText.clean` before they are
/// shown. The input is stdout, then a NUL, then stderr; its first byte is the exit status.
/// Nothing may crash, and nothing shown may carry a control character (other than a newline or
/// a tab), exceed its length limit, or contain the secret that was to be taken out.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let input = Fuzz.bytes(start, count)
    guard let status = input.first else { return 0 }
    let rest = Array(input.dropFirst())
    let split = rest.firstIndex(of: 0) ?? rest.count
    let stdout = Array(rest[..<split])
    let stderr = Fuzz.text(split < rest.count ? Array(rest[(split + 1)...]) : [])

    func shown(_ text: String?, limit: Int, _ what: String) {
        guard let text else { return }
        Fuzz.require(text.count <= limit + 1, "\(what): \(text.count) characters")
        Fuzz.require(!text.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\n" && $0 != "\t") || (0x7F..<0xA0).contains($0.value) },
                     "\(what): control character in \(text.debugDescription)")
    }

    if let report = try? RemoteHostStatus(hostJSON: stdout, checkedAt: Date(timeIntervalSince1970: 0)) {
        for name in report.names ?? [] { shown(name, limit: 253, "name") }
        Fuzz.require((report.names?.count ?? 0) <= 100, "\(report.names?.count ?? 0) names")
        for (field, value) in [("serial", report.serial), ("timer", report.timer), ("reason", report.suspensionReason), ("ca_url", report.caURL),
                               ("detail", report.detail), ("result", report.lastAttempt?.result), ("message", report.lastAttempt?.message)] {
            shown(value, limit: 300, field)
        }
        if report.state == .ok || report.state == .renewalOverdue { Fuzz.require(report.serial != nil, "\(report.state) without a serial") }
    }

    let probe = RemoteOperations.binaryProbe(stdout)
    shown(probe.version, limit: 100, "version")
    shown(probe.checksum, limit: 100, "checksum")

    let captured = SpawnedProcess.Captured(status: Int32(status), stdout: stdout, stderr: stderr, timedOut: false, overflowed: false)
    if let target = try? SSHTarget(host: "host.example", user: "deploy"),
       let failure = SSHFailure.classify(captured, target: target, action: "fuzzing") {
        shown(failure.message, limit: 500, "failure")
    }

    let secret = "s3cr3t-token"
    let cleaned = RemoteText.clean(stderr + secret + Fuzz.text(stdout), limit: 200, secrets: [secret])
    shown(cleaned, limit: 200, "cleaned")
    Fuzz.require(!cleaned.contains(secret), "the secret was shown")
    return 0
}
