import AutoSSLCore
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// An advisory `flock` on a file (created 0600, never through a symbolic link, closed on exec so a
/// child program does not keep it). The kernel drops it when the process ends, however it ends.
public final class FileLock: @unchecked Sendable {
    public let path: String
    private let lock = NSLock()
    private var descriptor: Int32

    /// Takes the lock, shared or exclusive. `wait`: block until it is free; otherwise nil when
    /// another holder has it.
    public static func acquire(_ path: String, exclusive: Bool, wait: Bool) throws -> FileLock? {
        try FileOperations.makeDirectory((path as NSString).deletingLastPathComponent, mode: 0o700)
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw FileOperations.systemError(errno, "open the lock file \(path)") }
        var result: Int32
        repeat {
            result = flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB))
        } while result != 0 && errno == EINTR
        if result != 0 {
            let code = errno
            close(fd)
            if !wait, code == EWOULDBLOCK || code == EAGAIN { return nil }
            throw FileOperations.systemError(code, "lock \(path)")
        }
        return FileLock(path: path, descriptor: fd)
    }

    /// An exclusive lock on an existing directory itself (nothing is created), waiting until it is free.
    public static func acquireDirectory(_ path: String) throws -> FileLock {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileOperations.systemError(errno, "open \(path) to lock it") }
        var result: Int32
        repeat {
            result = flock(fd, LOCK_EX)
        } while result != 0 && errno == EINTR
        guard result == 0 else {
            let code = errno
            close(fd)
            throw FileOperations.systemError(code, "lock \(path)")
        }
        return FileLock(path: path, descriptor: fd)
    }

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// Gives the lock up now (it also goes when the value is released or the process ends).
    public func release() {
        lock.withLock {
            if descriptor >= 0 {
                close(descriptor)
                descriptor = -1
            }
        }
    }

    deinit { release() }
}
