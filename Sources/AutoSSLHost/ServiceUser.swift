import AutoSSLCore
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The system account a service runs as, and handing a service's files to it.
public struct ServiceUser: Equatable, Sendable {
    /// The account the Debian package creates for the CA.
    public static let packaged = "auto-ssl"

    public let name: String
    public let uid: UInt32
    public let gid: UInt32
    /// The name of the primary group (the number when the group database has no name for it).
    public let group: String

    public init(name: String, uid: UInt32, gid: UInt32, group: String) {
        self.name = name
        self.uid = uid
        self.gid = gid
        self.group = group
    }

    public var isRoot: Bool { uid == 0 }

    /// The account named `name` in the user database (with its primary group), or nil.
    public static func lookup(_ name: String) -> ServiceUser? {
        var entry = passwd()
        var found: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 16_384)
        guard getpwnam_r(name, &entry, &buffer, buffer.count, &found) == 0, found != nil else { return nil }
        let gid = entry.pw_gid
        var groupEntry = Glibc.group()
        var groupFound: UnsafeMutablePointer<Glibc.group>?
        var groupName = String(gid)
        if getgrgid_r(gid, &groupEntry, &buffer, buffer.count, &groupFound) == 0, groupFound != nil {
            groupName = String(cString: groupEntry.gr_name)
        }
        return ServiceUser(name: name, uid: entry.pw_uid, gid: gid, group: groupName)
    }

    /// Makes this user and its group the owner of `path` and, when `recursive`, of everything
    /// under it. Symbolic links are changed themselves, never followed. Modes are left as they are.
    public func own(_ path: String, recursive: Bool) throws {
        try change(path)
        guard recursive, let walker = FileManager.default.enumerator(atPath: path) else { return }
        while let relative = walker.nextObject() as? String {
            try change(path + "/" + relative)
        }
    }

    /// The first directory on the way to `path` (itself included) this user may not enter, judged
    /// by owner, group and mode (supplementary groups aside); nil when every one is searchable.
    public func blockedAncestor(of path: String) -> String? {
        var current = ""
        for component in path.split(separator: "/") {
            current += "/" + component
            var info = stat()
            guard stat(current, &info) == 0 else { return nil }
            let mode = info.st_mode
            let searchable = uid == 0
                || (info.st_uid == uid ? mode & S_IXUSR != 0 : info.st_gid == gid ? mode & S_IXGRP != 0 : mode & S_IXOTH != 0)
            if !searchable { return current }
        }
        return nil
    }

    private func change(_ path: String) throws {
        guard lchown(path, uid, gid) == 0 else {
            let code = errno
            let kind: FailureKind = (code == EPERM || code == EACCES) ? .permissionDenied : .general
            throw AutoSSLError(kind, "cannot give \(path) to the user \(name): \(String(cString: strerror(code)))",
                               hint: kind == .permissionDenied ? "rerun with sudo" : nil)
        }
    }
}
