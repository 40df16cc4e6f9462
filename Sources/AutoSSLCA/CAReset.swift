import AutoSSLConfig
import AutoSSLCore
import AutoSSLIO
import Foundation
import Logging

/// Removes the CA from this machine: by default after moving it aside whole (keys still encrypted),
/// with `keepCopy: false` for good. The rest of config.yaml (other roles) stays.
public struct CAReset {
    public let directories: Directories
    let logger: Logger

    public init(directories: Directories, logger: Logger = Logger(label: "auto-ssl.ca.reset")) {
        self.directories = directories
        self.logger = logger
    }

    public struct Result: Sendable {
        public var safetyCopy: String?
    }

    public func reset(keepCopy: Bool, now: Date = Date()) throws -> Result {
        guard try CAInitializer(directories: directories).existingCA() != nil else {
            throw AutoSSLError.general("there is no CA on this machine to reset; nothing was changed")
        }
        var transaction = InstallTransaction(directories: directories, logger: logger)
        do {
            if keepCopy {
                try transaction.moveExistingCAAside(suffix: "reset-" + FileOperations.timestamp(now))
                try transaction.installCASettings(nil)
            } else {
                let settings = try? AutoSSLConfiguration.load(from: directories.configFile).ca
                let lock = try InstallTransaction.lockAgainstServing(directories, settings: settings)
                defer { lock?.release() }
                for name in InstallTransaction.configFilesOfCA(in: directories.configDir) where name != "config.yaml" {
                    try transaction.remove(directories.configDir + "/" + name)
                }
                try transaction.installCASettings(nil)
                // Last: once the keys are gone there is nothing to roll back to.
                try FileOperations.removeTree(directories.caDir)
            }
        } catch {
            transaction.rollBack()
            throw error
        }
        return Result(safetyCopy: transaction.movedAside)
    }
}
