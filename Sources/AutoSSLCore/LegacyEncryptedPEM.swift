import Crypto
import Foundation
import SwiftASN1
import _CryptoExtras

/// OpenSSL's "traditional" encrypted PEM (RFC 1421 headers), which step-ca writes for its CA keys by
/// default and `openssl ec -aes256` / `openssl rsa -aes256` write:
///
///     -----BEGIN EC PRIVATE KEY-----
///     Proc-Type: 4,ENCRYPTED
///     DEK-Info: AES-256-CBC,<32 hex digits of IV>
///
///     <base64 of the CBC ciphertext of the SEC1 / PKCS#1 DER>
///     -----END EC PRIVATE KEY-----
///
/// The key is OpenSSL's `EVP_BytesToKey(MD5, password, salt = first 8 bytes of the IV, 1 round)`.
/// Every byte of the file is hostile: sizes are bounded, every index is checked, and a decryption is
/// accepted only when the plaintext parses as a private key (CBC has no integrity check).
public enum LegacyEncryptedPEM {
    /// A CA key is a few KiB; anything much larger is not a key file.
    public static let maximumFileBytes = 64 * 1024

    public enum Cipher: String, Sendable, CaseIterable {
        case aes128CBC = "AES-128-CBC"
        case aes192CBC = "AES-192-CBC"
        case aes256CBC = "AES-256-CBC"

        var keyLength: Int {
            switch self {
            case .aes128CBC: 16
            case .aes192CBC: 24
            case .aes256CBC: 32
            }
        }
    }

    /// A parsed but not yet decrypted block.
    public struct Block: Sendable, Equatable {
        /// "EC PRIVATE KEY" or "RSA PRIVATE KEY".
        public var label: String
        /// nil when the block carries no `Proc-Type: 4,ENCRYPTED` (a plain traditional key).
        public var cipher: Cipher?
        public var iv: [UInt8]
        /// The decoded base64 body: ciphertext when encrypted, the DER key otherwise.
        public var body: [UInt8]
    }

    static let acceptedLabels = ["EC PRIVATE KEY", "RSA PRIVATE KEY"]

    /// Reads the first `-----BEGIN ...-----` block of `text` (a file may carry an `EC PARAMETERS`
    /// block first, as `openssl ecparam -genkey` writes: it is skipped).
    public static func parse(_ text: String) throws -> Block {
        let utf8 = Array(text.utf8)
        guard utf8.count <= maximumFileBytes else { throw malformed("the key file is larger than \(maximumFileBytes / 1024) KiB") }
        guard !utf8.contains(0) else { throw malformed("the key file contains NUL bytes") }
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        var index = 0
        var label: String?
        while index < lines.count {
            let line = lines[index]
            index += 1
            guard line.hasPrefix("-----BEGIN "), line.hasSuffix("-----"), line.count > 16 else { continue }
            let name = String(line.dropFirst(11).dropLast(5))
            if name == "EC PARAMETERS" { continue }
            label = name
            break
        }
        guard let label else { throw malformed("no PEM block was found") }
        guard acceptedLabels.contains(label) else {
            throw malformed("a \"\(printable(label))\" block is not a traditional EC or RSA private key")
        }
        // Headers: "Name: value" lines up to the first empty line (only when the first line is a header).
        var headers: [(String, String)] = []
        if index < lines.count, lines[index].contains(":") {
            while index < lines.count, !lines[index].isEmpty {
                let line = lines[index]
                guard let colon = line.firstIndex(of: ":") else { throw malformed("a PEM header line has no colon") }
                guard headers.count < 8 else { throw malformed("too many PEM header lines") }
                headers.append((String(line[..<colon]).trimmingCharacters(in: .whitespaces),
                                String(line[line.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
                index += 1
            }
            guard index < lines.count else { throw malformed("the PEM block ends inside its headers") }
            index += 1  // the empty line
        }
        var base64 = ""
        var ended = false
        while index < lines.count {
            let line = lines[index]
            index += 1
            if line == "-----END \(label)-----" {
                ended = true
                break
            }
            guard !line.hasPrefix("-----") else { throw malformed("the PEM block has no matching END line") }
            base64 += line
        }
        guard ended else { throw malformed("the PEM block has no END line") }
        guard let decoded = Data(base64Encoded: base64), !decoded.isEmpty else {
            throw malformed("the PEM body is not valid base64")
        }
        let body = Array(decoded)

        let procType = headers.first { $0.0 == "Proc-Type" }?.1
        let dekInfo = headers.first { $0.0 == "DEK-Info" }?.1
        guard let procType else {
            guard dekInfo == nil else { throw malformed("DEK-Info without Proc-Type") }
            return Block(label: label, cipher: nil, iv: [], body: body)
        }
        guard procType.replacingOccurrences(of: " ", with: "") == "4,ENCRYPTED" else {
            throw malformed("unsupported Proc-Type \"\(printable(procType))\"")
        }
        guard let dekInfo else { throw malformed("an encrypted PEM block without DEK-Info") }
        let parts = dekInfo.split(separator: ",", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2 else { throw malformed("DEK-Info must be \"CIPHER,IV\"") }
        guard let cipher = Cipher(rawValue: parts[0].uppercased()) else {
            throw AutoSSLError.general(
                "the key is encrypted with \(printable(parts[0])), which is not supported (AES-128/192/256-CBC are)",
                hint: "re-encrypt it first: `openssl ec -aes256 -in KEY -out NEW` (or `openssl rsa -aes256` for RSA)")
        }
        guard let iv = hexBytes(parts[1]), iv.count == 16 else { throw malformed("the DEK-Info IV is not 32 hex digits") }
        guard body.count >= 16, body.count % 16 == 0 else {
            throw malformed("the ciphertext length \(body.count) is not a whole number of AES blocks")
        }
        return Block(label: label, cipher: cipher, iv: iv, body: body)
    }

    /// OpenSSL's EVP_BytesToKey with MD5 and one round: D_i = MD5(D_{i-1} ‖ password ‖ salt).
    public static func bytesToKey(password: [UInt8], salt: [UInt8], length: Int) -> [UInt8] {
        var derived: [UInt8] = []
        var previous: [UInt8] = []
        while derived.count < length {
            var md5 = Insecure.MD5()
            md5.update(data: previous)
            md5.update(data: password)
            md5.update(data: salt)
            previous = Array(md5.finalize())
            derived += previous
        }
        return Array(derived.prefix(length))
    }

    /// Decrypts the block (if encrypted) and returns the traditional DER (SEC1 or PKCS#1). The
    /// result is checked to be a key of the label's kind, so a wrong password is reported as such.
    public static func decrypt(_ block: Block, password: String) throws -> [UInt8] {
        guard let cipher = block.cipher else { return try checked(block.body, label: block.label, wrongPassword: false) }
        let key = bytesToKey(password: Array(password.utf8), salt: Array(block.iv.prefix(8)), length: cipher.keyLength)
        let plaintext: [UInt8]
        do {
            plaintext = Array(try AES._CBC.decrypt(block.body, using: SymmetricKey(data: key), iv: try AES._CBC.IV(ivBytes: block.iv)))
        } catch {
            throw wrongPassword
        }
        return try checked(plaintext, label: block.label, wrongPassword: true)
    }

    /// Parse, decrypt and load in one step.
    public static func decryptKey(pem: String, password: String) throws -> SigningKey {
        let der = try decrypt(try parse(pem), password: password)
        return try SigningKey(derRepresentation: der)
    }

    /// The plaintext must be one DER SEQUENCE (nothing after it) of the kind the label names.
    static func checked(_ der: [UInt8], label: String, wrongPassword isPasswordProblem: Bool) throws -> [UInt8] {
        let failure = isPasswordProblem ? wrongPassword : malformed("the key inside the PEM block could not be parsed")
        guard let node = try? DER.parse(der), node.identifier == .sequence, node.encodedBytes.count == der.count else { throw failure }
        switch label {
        case "EC PRIVATE KEY":
            guard (try? P256.Signing.PrivateKey(derRepresentation: der)) != nil
                || (try? P384.Signing.PrivateKey(derRepresentation: der)) != nil
                || (try? P521.Signing.PrivateKey(derRepresentation: der)) != nil else { throw failure }
        default:
            guard (try? _RSA.Signing.PrivateKey(derRepresentation: der)) != nil else { throw failure }
        }
        return der
    }

    /// Even-length hex (either case) to bytes; nil for anything else.
    static func hexBytes(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0, digits.count <= 128 else { return nil }
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case 0x30...0x39: digit - 0x30
            case 0x41...0x46: digit - 0x41 + 10
            case 0x61...0x66: digit - 0x61 + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        var index = 0
        while index + 1 < digits.count {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    static let wrongPassword = AutoSSLError.general("the key could not be decrypted: wrong password or damaged key file")

    static func malformed(_ what: String) -> AutoSSLError {
        AutoSSLError.general("the key file is not a valid traditional PEM key: \(what)")
    }

    /// A value from the file fit for a message: at most 40 printable ASCII characters.
    static func printable(_ text: String) -> String {
        let cleaned = String(text.unicodeScalars.prefix(40).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
        return text.unicodeScalars.count > 40 ? cleaned + "..." : cleaned
    }
}

/// Opens a CA key in any format auto-ssl reads: PKCS#8 (`ENCRYPTED PRIVATE KEY`, PBES2), OpenSSL's
/// traditional encrypted PEM (`EC PRIVATE KEY` / `RSA PRIVATE KEY` with `Proc-Type: 4,ENCRYPTED`), or
/// one of those unencrypted (`PRIVATE KEY`, a traditional block without the header).
public enum CAKeyFile {
    public struct Opened: Sendable {
        public var key: SigningKey
        /// False when the file held the key in the clear.
        public var wasEncrypted: Bool
        /// "PKCS#8", "traditional PEM (AES-256-CBC)", ...
        public var format: String
    }

    public static func open(pem: String, password: String) throws -> Opened {
        guard pem.utf8.count <= LegacyEncryptedPEM.maximumFileBytes else {
            throw LegacyEncryptedPEM.malformed("the key file is larger than \(LegacyEncryptedPEM.maximumFileBytes / 1024) KiB")
        }
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Opened(key: try EncryptedPrivateKey.decryptKey(pem: pem, password: password), wasEncrypted: true, format: "PKCS#8")
        }
        if pem.contains("-----BEGIN PRIVATE KEY-----") {
            let document: PEMDocument
            do { document = try PEMDocument(pemString: pem) } catch { throw AutoSSLError.general("the key file is not valid PEM") }
            guard document.discriminator == "PRIVATE KEY" else { throw AutoSSLError.general("the key file is not valid PEM") }
            return Opened(key: try SigningKey(derRepresentation: document.derBytes), wasEncrypted: false, format: "PKCS#8 (unencrypted)")
        }
        let block = try LegacyEncryptedPEM.parse(pem)
        let key = try SigningKey(derRepresentation: try LegacyEncryptedPEM.decrypt(block, password: password))
        return Opened(
            key: key, wasEncrypted: block.cipher != nil,
            format: block.cipher.map { "traditional PEM (\($0.rawValue))" } ?? "traditional PEM (unencrypted)")
    }
}
