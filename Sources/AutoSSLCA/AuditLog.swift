import AutoSSLCore
import AutoSSLIO
import AutoSSLStore
import Foundation
import Logging

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One JSON line per security-relevant event in `$AUTO_SSL_DATA_DIR/audit.log` (0600) and in the
/// service log. Lines are written with a single O_APPEND write, so concurrent writers never interleave.
public final class AuditLog: Sendable {
    public struct Event: Sendable {
        public var time: Date
        public var event: String
        public var serial: String?
        public var sans: [String]?
        public var provisioner: String?
        public var remote: String?
        public var reason: String?
        public var detail: String?

        public init(
            _ event: String, time: Date = Date(), serial: String? = nil, sans: [String]? = nil, provisioner: String? = nil,
            remote: String? = nil, reason: String? = nil, detail: String? = nil
        ) {
            self.time = time
            self.event = event
            self.serial = serial
            self.sans = sans
            self.provisioner = provisioner
            self.remote = remote
            self.reason = reason
            self.detail = detail
        }

        /// `key.revoked`: a revocation of `serial`, which had been revoked before for a reason that
        /// left its key in force, cut the key off now (no certificate is issued or renewed with it).
        public static func keyRevoked(
            of serial: String, _ revocation: RevocationRecord, provisioner: String? = nil, remote: String? = nil
        ) -> Event {
            Event(
                "key.revoked", time: revocation.revokedAt, serial: serial, provisioner: provisioner, remote: remote,
                reason: revocation.reason.isEmpty ? CRLBuilder.reasonNames[revocation.reasonCode] : revocation.reason,
                detail: "reason code \(revocation.reasonCode), by \(revocation.revokedBy); the certificate itself was revoked before and keeps its first reason")
        }

        /// `certificate.revoked` for `serial`, revoked by `revocation` of the certificate `named`
        /// (itself, or one with the same key): the reason's name when no text was given, and who.
        public static func revoked(
            _ serial: String, named: String, _ revocation: RevocationRecord, sans: [String]? = nil, provisioner: String? = nil,
            remote: String? = nil
        ) -> Event {
            let by = serial == named ? revocation.revokedBy : revocation.sameKey(as: named).revokedBy
            return Event(
                "certificate.revoked", time: revocation.revokedAt, serial: serial, sans: sans, provisioner: provisioner, remote: remote,
                reason: revocation.reason.isEmpty ? CRLBuilder.reasonNames[revocation.reasonCode] : revocation.reason,
                detail: "reason code \(revocation.reasonCode), by \(by)")
        }

        /// The most of one text member a line holds: a refusal's reason may quote what a client
        /// sent (a token's 40 KB `alg`, say), and a line per request must not let anyone fill the
        /// disk with their own text.
        public static let maximumTextBytes = 512

        /// `text`, or its first `maximumTextBytes` bytes (whole characters) with how long it was.
        static func bounded(_ text: String) -> String {
            let count = text.utf8.count
            guard count > maximumTextBytes else { return text }
            var end = text.startIndex
            var bytes = 0
            for character in text {
                bytes += character.utf8.count
                guard bytes <= maximumTextBytes else { break }
                end = text.index(after: end)
            }
            return String(text[..<end]) + "... (\(count) bytes, cut)"
        }

        /// One JSON object, keys sorted, no whitespace (built by hand: this runs for every issuance).
        public var jsonLine: String { String(decoding: jsonBytes, as: UTF8.self) }

        /// `jsonLine` as UTF-8, written straight into one buffer.
        public var jsonBytes: [UInt8] {
            var writer = JSONWriter(capacity: 320)
            // Members in key order: detail, event, provisioner, reason, remote, sans, serial, time;
            // "event" and "time" are always there, so every other member can lead with its comma.
            func member(_ key: StaticString, _ value: String?) {
                guard let value else { return }
                writer.raw(key)
                writer.string(Self.bounded(value))
            }
            writer.raw("{")
            if let detail {
                writer.raw("\"detail\":")
                writer.string(Self.bounded(detail))
                writer.raw(",")
            }
            writer.raw("\"event\":")
            writer.string(event)
            member(",\"provisioner\":", provisioner)
            member(",\"reason\":", reason)
            member(",\"remote\":", remote)
            if let sans {
                writer.raw(",\"sans\":")
                writer.array(sans)
            }
            member(",\"serial\":", serial)
            writer.raw(",\"time\":")
            writer.timestamp(time, milliseconds: true)
            writer.raw("}")
            return writer.bytes
        }
    }

    public let path: String
    private let descriptor: Int32

    private let logger: Logger

    public init(path: String, logger: Logger = Logger(label: "auto-ssl.audit")) throws {
        self.path = path
        self.logger = logger
        try FileOperations.makeDirectory((path as NSString).deletingLastPathComponent, mode: 0o755)
        // The log's directory belongs to the CA's service account, and admin commands that append
        // to it run as root: a symlink or a hard link planted there must not make root change
        // another file's mode or contents.
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o600)
        guard fd >= 0 else {
            if errno == ELOOP {
                throw AutoSSLError.general(
                    "the audit log \(path) is a symbolic link", hint: "Remove the link (it is not an audit log written by auto-ssl) and run again.")
            }
            throw FileOperations.systemError(errno, "open the audit log \(path)")
        }
        var status = stat()
        guard fstat(fd, &status) == 0, status.st_mode & S_IFMT == S_IFREG, status.st_nlink == 1 else {
            close(fd)
            throw AutoSSLError.general(
                "the audit log \(path) is not a regular file with a single name",
                hint: "Move it away (it is not an audit log written by auto-ssl) and run again.")
        }
        // An audit log that others can read leaks who asked for which names; keep it private.
        fchmod(fd, 0o600)
        descriptor = fd
    }

    deinit { close(descriptor) }

    public func record(_ event: Event) {
        var line = event.jsonBytes
        let json = String(decoding: line, as: UTF8.self)
        line.append(0x0A)
        let written = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        if written != line.count {
            logger.error("could not append to the audit log \(path): \(String(cString: strerror(errno)))")
        }
        logger.notice("audit \(json)")
    }

    static func timestamp(_ date: Date) -> String {
        Timestamp.rfc3339(date, milliseconds: true)
    }
}
