import AutoSSLCA
import AutoSSLCore
import AutoSSLIO
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Talking to a person at a terminal: secrets without echo, confirmations.
enum Terminal {
    static var standardInputIsTerminal: Bool { isatty(STDIN_FILENO) == 1 }

    /// Reads one line without echo. Echo comes back even if reading fails.
    static func readSecret(prompt: String) throws -> String {
        var original = termios()
        let haveTerminal = tcgetattr(STDIN_FILENO, &original) == 0
        // Echo goes off before the prompt appears, and without flushing, so whatever is typed
        // (or sent by automation) once the prompt is visible is neither shown nor lost.
        if haveTerminal {
            var silent = original
            silent.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(STDIN_FILENO, TCSANOW, &silent)
        }
        defer {
            if haveTerminal {
                tcsetattr(STDIN_FILENO, TCSANOW, &original)
                Output.standardError("\n")
            }
        }
        Output.standardError(prompt)
        guard let line = readLine(strippingNewline: true) else {
            throw AutoSSLError.invalidArgument("no input: standard input was closed")
        }
        return line
    }

    /// Asks twice and insists the answers match. An empty answer means "generate one for me" when allowed.
    static func readNewSecret(purpose: String, allowGenerate: Bool) throws -> PasswordChoice {
        for _ in 0..<3 {
            let suffix = allowGenerate ? " (at least \(Passwords.minimumLength) characters; empty = generate one)" : ""
            let first = try readSecret(prompt: "\(purpose.capitalizedFirst)\(suffix): ")
            if first.isEmpty, allowGenerate { return .generate }
            do {
                try Passwords.validate(first, purpose: purpose)
            } catch let error as AutoSSLError {
                Output.error(error)
                continue
            }
            let second = try readSecret(prompt: "Repeat the \(purpose): ")
            if first == second { return .given(first) }
            Output.standardError("The two entries differ; try again.\n")
        }
        throw AutoSSLError.invalidArgument("no valid \(purpose) was entered after three attempts")
    }

    /// The confirmation every destructive command asks for: skipped with --yes, asked at a terminal,
    /// and refused (exit 2, naming --yes) on a non-terminal, never silently cancelled.
    static func requireConfirmation(yes: Bool, action: String, question: String) throws {
        guard !yes else { return }
        guard standardInputIsTerminal else {
            throw AutoSSLError.invalidArgument(
                "\(action) needs confirmation, and standard input is not a terminal", hint: "rerun with --yes to confirm")
        }
        guard confirm(question) else { throw AutoSSLError.general("cancelled; nothing was changed") }
    }

    /// yes/no confirmation; only "y" or "yes" confirm.
    static func confirm(_ question: String) -> Bool {
        Output.standardError("\(question) [y/N] ")
        guard let answer = readLine(strippingNewline: true)?.trimmingCharacters(in: .whitespaces).lowercased() else {
            return false
        }
        return answer == "y" || answer == "yes"
    }
}

/// Reading secrets from files named on the command line (never from argv itself).
enum SecretFiles {
    /// A password file holds one line; anything bigger is the wrong file.
    static let secretFileLimit = 64 << 10

    /// Reads the first line of `path`; `/dev/stdin` and `-` read standard input.
    static func read(_ path: String, option: String) throws -> String {
        let effective = path == "-" ? "/dev/stdin" : path
        if effective != "/dev/stdin" {
            var info = stat()
            let found = stat(effective, &info) == 0
            if !found, errno == ENOENT || errno == ENOTDIR {
                throw AutoSSLError.invalidArgument("\(option): \(path) does not exist", hint: "give the file that holds the password")
            }
            // Anything else stat refuses (permission) is reported by the read below, with its exit code.
            if found, info.st_mode & S_IFMT == S_IFDIR {
                throw AutoSSLError.invalidArgument("\(option): \(path) is a directory", hint: "give the file that holds the password")
            }
            if found, info.st_mode & S_IFMT == S_IFREG, info.st_size > secretFileLimit {
                throw AutoSSLError.invalidArgument(
                    "\(option): \(path) is larger than \(secretFileLimit >> 10) KiB, too big to be a password file",
                    hint: "give the file that holds the password on its first line")
            }
        }
        let contents: String
        if effective == "/dev/stdin" {
            var lines: [String] = []
            while let line = readLine(strippingNewline: true) {
                lines.append(line)
                break
            }
            contents = lines.first ?? ""
        } else {
            // A password file is a line, not a disk image: refuse big files before reading them whole.
            do {
                contents = String(decoding: try FileOperations.readBytes(effective, limit: secretFileLimit), as: UTF8.self)
            } catch let error as AutoSSLError where error.message.contains("refusing to read it") {
                // A device or pipe that goes on (/dev/zero): the same wrong argument as a big file.
                throw AutoSSLError.invalidArgument(
                    "\(option): \(path) gives more than \(secretFileLimit >> 10) KiB, too much to be a password file",
                    hint: "give the file that holds the password on its first line")
            }
        }
        let secret = Passwords.fromFileContents(contents)
        guard !secret.isEmpty else {
            throw AutoSSLError.invalidArgument(
                "\(option): \(path) is empty",
                hint: option == "--token-file" ? "put the token from `auto-ssl ca token create` on its first line" : "put the password on its first line")
        }
        return secret
    }

    static func isStandardInput(_ path: String?) -> Bool {
        guard let path else { return false }
        return path == "-" || path == "/dev/stdin" || path == "/proc/self/fd/0" || path == "/dev/fd/0"
    }
}

extension String {
    var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}
