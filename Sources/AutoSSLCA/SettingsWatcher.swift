import AutoSSLConfig
import AutoSSLCore
import Foundation
import Synchronization

/// The CA settings as `ca serve` re-reads them every few seconds: parsed again only when
/// config.yaml changed (modification time, size or inode), so that a busy server does not decode
/// YAML on the request threads every two seconds.
public final class SettingsWatcher: Sendable {
    struct Stamp: Equatable {
        var modified: timespec
        var size: Int64
        var inode: UInt64

        static func == (a: Stamp, b: Stamp) -> Bool {
            a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec && a.size == b.size && a.inode == b.inode
        }
    }

    private let loader: AuthorityLoader
    private let cache = Mutex<(stamp: Stamp, settings: CASettings)?>(nil)

    public init(loader: AuthorityLoader) {
        self.loader = loader
    }

    func stamp() -> Stamp? {
        var info = stat()
        guard stat(loader.directories.configFile, &info) == 0 else { return nil }
        return Stamp(modified: info.st_mtim, size: Int64(info.st_size), inode: UInt64(info.st_ino))
    }

    public func settings() throws -> CASettings {
        let current = stamp()
        if let current, let cached = cache.withLock({ $0 }), cached.stamp == current {
            return cached.settings
        }
        let settings = try loader.settings()
        if let current { cache.withLock { $0 = (current, settings) } }
        return settings
    }
}
