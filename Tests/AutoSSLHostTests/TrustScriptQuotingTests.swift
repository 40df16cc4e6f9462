import AutoSSLCore
import AutoSSLHost
import Foundation
import Testing
import X509

/// A root's name is data in the generated trust scripts: shell and PowerShell syntax in it stays inert.
@Suite struct TrustScriptQuotingTests {
    /// A CA name full of shell and PowerShell syntax; the markers land in `directory` if any of it runs.
    static func hostileName(markers directory: String) -> String {
        "Evil $(touch \(directory)/PWNED_x) `touch \(directory)/PWNED_y` ' \" \\ %PATH% ${HOME} $HOME !! "
            + "\n newline; touch \(directory)/PWNED_z; rm -rf \(directory)/keep\r\u{85}\u{2028}\u{202E} '' ‘q’ “d” ; exit 9 #"
    }

    func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "trust-quoting-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func macOSScriptRunsNothingFromAHostileNameAndPrintsTheNameAsIs() throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try "keep".write(toFile: directory + "/keep", atomically: true, encoding: .utf8)
        let name = Self.hostileName(markers: directory)
        let root = try TrustStoreTests.makeRoot(name)
        let commonName = try #require(root.commonName)
        #expect(commonName.contains("$(touch") && commonName.contains("\n"))
        let fingerprint = try Fingerprint.sha256(of: root)
        let script = try TrustScripts.macOS(root: root, caName: commonName)

        // The name is on one line, inside one single-quoted word, and nowhere else.
        let lines = script.split(separator: "\n", omittingEmptySubsequences: false)
        let withName = lines.filter { $0.contains("PWNED") }
        #expect(withName.count == 1 && withName[0].hasPrefix("NAME='"), "\(withName)")
        #expect(!script.unicodeScalars.contains { $0 == "\r" || $0 == "\u{85}" || $0 == "\u{2028}" || $0 == "\u{202E}" })

        let runnable = script.replacingOccurrences(of: "sudo security add-trusted-cert", with: "echo WOULD-INSTALL")
        let path = directory + "/trust.sh"
        try runnable.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try runBash(path, in: directory)
        #expect(result.status == 0 && result.output.contains("WOULD-INSTALL"), "\(result)")
        let shown = TrustScripts.displayName(commonName)
        #expect(result.output.contains("Trusted \(shown) (\(fingerprint))."), "\(result)")
        #expect(shown.contains("$(touch \(directory)/PWNED_x) `touch") && shown.contains("%PATH% ${HOME}") && !shown.contains("\n"))
        let left = try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
        #expect(left == ["keep", "trust.sh"], "something in the name ran: \(left)")
    }

    @Test(arguments: ["plain", "unicode"])
    func windowsScriptHoldsAHostileNameOnlyAsASingleQuotedLiteralOrBase64(kind: String) throws {
        let directory = "C:/Temp"
        let name = kind == "plain"
            ? "Evil $(touch \(directory)/PWNED_x) `touch PWNED_y` ' \" \\ %PATH% ${env:PATH} @' '@ \n newline; PWNED_z #>"
            : Self.hostileName(markers: directory) + " Ёлка ‘PWNED’"
        let root = try TrustStoreTests.makeRoot(name)
        let commonName = try #require(root.commonName)
        let script = try TrustScripts.windows(root: root, caName: commonName)
        // ASCII only (Windows PowerShell reads a script without BOM in the system code page), and
        // no carriage returns or other control characters that could end a line or a comment.
        #expect(script.unicodeScalars.allSatisfy { $0 == "\n" || (0x20...0x7E).contains($0.value) })

        let lines = script.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let nameLines = lines.filter { $0.hasPrefix("$Name = ") }
        #expect(nameLines.count == 1)
        let expression = String(try #require(nameLines.first).dropFirst("$Name = ".count))
        let value: String
        if kind == "plain" {
            value = try #require(Self.singleQuotedPowerShellLiteral(expression), "not one single-quoted literal: \(expression)")
        } else {
            let prefix = "[System.Text.Encoding]::UTF8.GetString([System.Convert]::FromBase64String('"
            let suffix = "'))"
            #expect(expression.hasPrefix(prefix) && expression.hasSuffix(suffix))
            let base64 = String(expression.dropFirst(prefix.count).dropLast(suffix.count))
            #expect(base64.allSatisfy { $0.isLetter || $0.isNumber || $0 == "+" || $0 == "/" || $0 == "=" })
            value = String(decoding: try #require(Data(base64Encoded: base64)), as: UTF8.self)
        }
        #expect(value == TrustScripts.displayName(commonName))
        #expect(value.contains("PWNED_x") && !value.contains("\n"))
        // The name is used only through $Name, never inside a double-quoted (expanding) string.
        for line in lines where !line.hasPrefix("$Name = ") {
            #expect(!line.contains("PWNED") && !line.contains("Evil"), "the name leaked into: \(line)")
        }
        #expect(script.contains("Write-Output ('Trusted {0} ({1}).' -f $Name, $Expected)"))
    }

    /// The value of `text` if it is exactly one PowerShell single-quoted string (where only `'` is
    /// special, written `''`) with nothing after it; nil otherwise.
    static func singleQuotedPowerShellLiteral(_ text: String) -> String? {
        let characters = Array(text.unicodeScalars)
        guard characters.first == "'" else { return nil }
        var value = String.UnicodeScalarView()
        var index = 1
        while index < characters.count {
            let character = characters[index]
            if character == "\n" || character == "\r" { return nil }
            if ["'", "\u{2018}", "\u{2019}", "\u{201A}", "\u{201B}"].contains(character) {
                if index + 1 < characters.count, characters[index + 1] == character {
                    value.append(character)
                    index += 2
                    continue
                }
                return index == characters.count - 1 && character == "'" ? String(value) : nil
            }
            value.append(character)
            index += 1
        }
        return nil
    }

    @Test func thePowerShellLiteralCheckerRejectsBrokenQuoting() {
        #expect(Self.singleQuotedPowerShellLiteral("'a''b'") == "a'b")
        #expect(Self.singleQuotedPowerShellLiteral("'a'b'") == nil)
        #expect(Self.singleQuotedPowerShellLiteral("'a' + $(x)") == nil)
        #expect(Self.singleQuotedPowerShellLiteral("'a\u{2019}b'") == nil)
        #expect(Self.singleQuotedPowerShellLiteral("'a") == nil)
    }

    @Test func displayNameReplacesLineBreaksAndControls() {
        #expect(TrustScripts.displayName("a\nb\rc\u{85}d\u{2028}e\u{202E}f\u{0}g") == "a b c d e f g")
        #expect(TrustScripts.displayName("Ёлка ‘CA’") == "Ёлка ‘CA’")
    }

    func runBash(_ path: String, in directory: String) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [path]
        process.currentDirectoryURL = URL(fileURLWithPath: directory)
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
