import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLHost
import AutoSSLIO
import AutoSSLStore
import Crypto
import Foundation
import X509

/// `ca backup` / `ca backup verify` / `ca restore`: one file holding the CA (certificates, encrypted
/// keys, provisioner keys), config.yaml, the password files, a consistent snapshot of the database
/// and a manifest of SHA-256 hashes; gzip-compressed tar, encrypted in `openssl enc` format so it
/// can always be recovered with `openssl enc -d -aes-256-cbc -pbkdf2 -iter N -in FILE | tar -xz`.
public struct CABackup: Sendable {
    public let directories: Directories
    public static let topDirectory = "auto-ssl-backup"

    public init(directories: Directories) {
        self.directories = directories
    }

    public struct Manifest: Codable, Sendable {
        public var format: Int
        public var createdAt: Date
        public var caName: String
        public var caFingerprint: String
        public var toolVersion: String
        public var files: [String: String]
        /// The shared database (postgres://...) of a CA on PostgreSQL, whose records are not in the
        /// backup (PostgreSQL's own tools back them up); nil when the backup holds the SQLite database.
        public var sharedDatabase: String?
        /// About how many bytes the archive unpacks to (nil in backups made before it was recorded):
        /// what `--max-unpacked-mib` must allow when it is more than the default.
        public var unpackedBytes: Int?

        enum CodingKeys: String, CodingKey {
            case sharedDatabase = "shared_database"
            case unpackedBytes = "unpacked_bytes"
            case format
            case createdAt = "created_at"
            case caName = "ca_name"
            case caFingerprint = "ca_fingerprint"
            case toolVersion = "tool_version"
            case files
        }
    }

    public static func validatePassphrase(_ passphrase: String) throws {
        guard passphrase.count >= 16 else {
            throw AutoSSLError.invalidArgument(
                "the backup passphrase is too short (\(passphrase.count) characters; at least 16 are required)")
        }
    }

    public static func recoveryCommand(file: String, iterations: Int) -> String {
        "openssl enc -d -aes-256-cbc -pbkdf2 -md sha256 -iter \(iterations) -in \(file) | tar -xz"
    }

    // MARK: - Create

    /// Builds the encrypted backup in memory (a CA is a few hundred KiB plus its database).
    public func create(passphrase: String, iterations: Int, toolVersion: String, now: Date = Date()) async throws -> (bytes: [UInt8], manifest: Manifest) {
        try Self.validatePassphrase(passphrase)
        let loader = AuthorityLoader(directories: directories)
        let settings = try loader.settings()
        let work = try Self.privateWorkDirectory(in: directories.dataDir, prefix: ".backup-")
        defer { try? FileManager.default.removeItem(atPath: work) }
        let top = work + "/" + Self.topDirectory

        // The CA directory without its live database files, then a consistent online snapshot of the database.
        try Self.copyTree(from: settings.paths.caDir, to: top + "/ca", skipping: { $0.hasPrefix("db/") })
        try FileOperations.makeDirectory(top + "/ca/db", mode: 0o700)
        // A CA on PostgreSQL: the keys and settings only; the records are PostgreSQL's to back up.
        if settings.database == nil {
            let database = try await loader.openDatabase(settings)
            do {
                guard let snapshots = database.snapshots else {
                    throw AutoSSLError.general(
                        "the certificate database \(database.location) is not a file this backup can copy",
                        hint: "back the database up with its own tools (pg_dump for PostgreSQL)")
                }
                try await snapshots.snapshot(to: top + "/ca/db/auto-ssl.sqlite")
                try await database.close()
            } catch {
                try? await database.close()
                throw AutoSSLError.general("could not snapshot the certificate database: \(error)")
            }
        }
        try FileOperations.makeDirectory(top + "/config", mode: 0o700)
        var configFiles = [directories.configFile, directories.caPasswordFile, directories.provisionerPasswordFile]
        configFiles += settings.provisioners.compactMap(\.passwordFile)
        if let databasePasswordFile = settings.database?.passwordFile { configFiles.append(databasePasswordFile) }
        for path in Set(configFiles) where FileOperations.exists(path) {
            try FileOperations.writeAtomically(
                try FileOperations.readText(path), to: top + "/config/" + (path as NSString).lastPathComponent, mode: 0o600)
        }

        let root = try CAStatusReport.loadCertificate(settings.paths.rootCertificate, what: "root certificate")
        var manifest = Manifest(
            format: 1, createdAt: now, caName: settings.name, caFingerprint: try Fingerprint.sha256(of: root),
            toolVersion: toolVersion, files: try Self.hashes(under: top), sharedDatabase: settings.database?.displayURL)
        manifest.unpackedBytes = try Self.unpackedSize(of: work) + 64 * 1024  // the manifest itself and the end marker
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        try FileOperations.writeAtomically(try encoder.encode(manifest), to: top + "/manifest.json", mode: 0o600)
        let archive = try Tarball.create(directory: work, member: Self.topDirectory)
        return (try OpenSSLEnc.encrypt(archive, passphrase: passphrase, iterations: iterations), manifest)
    }

    /// The default of `--max-unpacked-mib`: what restore and verify accept unless told otherwise.
    public static let defaultMaximumUnpackedMiB = TarReader.defaultMaximumBytes >> 20

    /// What a tar of everything under `directory` takes: a 512-byte header per entry, each file's
    /// bytes rounded up to 512.
    static func unpackedSize(of directory: String) throws -> Int {
        var total = 0
        guard let walker = FileManager.default.enumerator(atPath: directory) else { return 0 }
        while walker.nextObject() != nil {
            total += 512
            if let size = walker.fileAttributes?[.size] as? Int, walker.fileAttributes?[.type] as? FileAttributeType == .typeRegular {
                total += (size + 511) / 512 * 512
            }
        }
        return total
    }

    // MARK: - Open and verify

    public struct Opened: Sendable {
        public var workDirectory: String
        /// The directory holding `ca/` and `config/`.
        public var content: String
        public var manifest: Manifest?
        public var rootFingerprint: String
    }

    /// Decrypts and unpacks into a private directory under `$AUTO_SSL_DATA_DIR` and checks every
    /// manifest hash (and that nothing unlisted was added). Nothing outside that directory changes.
    ///
    /// The archive is listed before anything is written: only regular files and directories under
    /// `ca/` and `config/` (files only, one level) and `manifest.json` are accepted, either at the top
    /// or all inside `auto-ssl-backup/`; links, devices, FIFOs, absolute paths, `..` and anything else
    /// are refused naming the member, as are more than 10,000 members or 256 MiB uncompressed. The
    /// members are written by us (no owner or mode from the archive): directories 0700, certificates
    /// under `ca/certs/` 0644, everything else 0600. Without `manifest.json` the archive is refused
    /// unless `allowNoManifest` (a hand-made archive of the same layout).
    public func open(
        _ bytes: [UInt8], passphrase: String, iterations: Int, allowNoManifest: Bool = false,
        maximumUnpackedBytes: Int = TarReader.defaultMaximumBytes
    ) throws -> Opened {
        let archive = try OpenSSLEnc.decrypt(bytes, passphrase: passphrase, iterations: iterations)
        let createdDataDirectory = !FileOperations.exists(directories.dataDir)
        try FileOperations.makeDirectory(directories.dataDir, mode: 0o755)
        let work = try Self.privateWorkDirectory(in: directories.dataDir, prefix: ".restore-")
        do {
            let tar: [UInt8]
            do {
                tar = try TarReader.gunzip(archive, scratchDirectory: work, limit: maximumUnpackedBytes)
            } catch var error as AutoSSLError where error.message.contains("gzip bomb") {
                error.hint = "a backup of a large CA may unpack to more (`ca backup` says how much when it writes one): give --max-unpacked-mib with that size"
                throw error
            }
            let members = try TarReader.members(of: tar)
            let wrapped = try Self.checkLayout(members, allowNoManifest: allowNoManifest)
            let files = work + "/files"
            try FileOperations.makeDirectory(files, mode: 0o700)
            try TarReader.write(members, from: tar, into: files) { member in
                let relative = wrapped ? member.components.dropFirst() : member.components[...]
                // Certificates (ca/certs/, archived intermediates included) are public; the rest is not.
                return relative.count >= 3 && relative.first == "ca" && relative.dropFirst().first == "certs" ? 0o644 : 0o600
            }
            let content = wrapped ? files + "/" + Self.topDirectory : files
            var manifest: Manifest?
            if FileOperations.exists(content + "/manifest.json") {
                let decoder = JSONDecoder()
                decoder.dateDecodingStrategy = .iso8601
                guard let parsed = try? decoder.decode(Manifest.self, from: Data(try FileOperations.readText(content + "/manifest.json").utf8)) else {
                    throw AutoSSLError.general("the backup's manifest is damaged")
                }
                let actual = try Self.hashes(under: content).filter { $0.key != "manifest.json" }
                for (path, hash) in parsed.files where actual[path] != hash {
                    throw AutoSSLError.general("the backup is damaged: \(path) does not match its manifest hash")
                }
                if let extra = actual.keys.first(where: { parsed.files[$0] == nil }) {
                    throw AutoSSLError.general("the backup is damaged: \(extra) is not in its manifest")
                }
                manifest = parsed
            }
            let rootPath = content + "/ca/certs/root_ca.crt"
            guard FileOperations.exists(rootPath), FileOperations.exists(content + "/config/config.yaml") else {
                throw AutoSSLError.general("the backup does not hold a CA (ca/certs/root_ca.crt and config/config.yaml expected)")
            }
            let fingerprint = try Fingerprint.sha256(of: try CAStatusReport.loadCertificate(rootPath, what: "root certificate in the backup"))
            if let manifest, manifest.caFingerprint != fingerprint {
                throw AutoSSLError.general("the backup's root does not match its manifest fingerprint")
            }
            return Opened(workDirectory: work, content: content, manifest: manifest, rootFingerprint: fingerprint)
        } catch {
            try? FileManager.default.removeItem(atPath: work)
            if createdDataDirectory { rmdir(directories.dataDir) }  // only if still empty
            throw error
        }
    }

    // MARK: - Restore

    public struct Restored: Sendable {
        public var settings: CASettings
        public var fingerprint: String
        public var previousCALocation: String?
        public var hadManifest: Bool
    }

    /// Installs an opened backup as this machine's CA (`CAInitializer.installRestored`: paths rewritten
    /// for the directories in use; an existing CA refused unless `force`, then moved aside first; any
    /// failure puts back what was there). The work directory is removed either way.
    public func restore(_ opened: Opened, force: Bool, newAddress: ListenAddress?, now: Date = Date()) throws -> Restored {
        defer { try? FileManager.default.removeItem(atPath: opened.workDirectory) }
        let installed = try CAInitializer(directories: directories).installRestored(
            from: opened.content, force: force, newAddress: newAddress, now: now)
        return Restored(
            settings: installed.settings, fingerprint: opened.rootFingerprint, previousCALocation: installed.previousCALocation,
            hadManifest: opened.manifest != nil)
    }

    // MARK: - Archive layout

    /// Checks every member against the backup layout (see `open`); true when the members sit inside
    /// `auto-ssl-backup/`.
    static func checkLayout(_ members: [TarMember], allowNoManifest: Bool) throws -> Bool {
        let wrapped = members.contains { $0.components.first.map(String.init) == topDirectory }
        var hasManifest = false
        for member in members {
            var parts = member.components.map(String.init)
            if wrapped, !parts.isEmpty {
                guard parts[0] == topDirectory else {
                    throw TarReader.refused(member.path, "it is outside \(topDirectory)/, where the rest of the backup is")
                }
                parts.removeFirst()
            }
            switch (parts.first, parts.count, member.kind) {
            case (nil, _, .directory), ("ca", 1, .directory), ("ca", 2..., _), ("config", 1, .directory), ("config", 2, .file):
                continue
            case ("manifest.json", 1, .file):
                hasManifest = true
            default:
                throw TarReader.refused(
                    member.path, "a backup holds only files and directories under ca/, files directly in config/, and manifest.json")
            }
        }
        guard hasManifest || allowNoManifest else {
            throw AutoSSLError.general(
                "the archive has no manifest.json, so its files cannot be checked; nothing was changed",
                hint: "if you made it yourself from a CA's ca/ and config/ directories, rerun with --allow-no-manifest")
        }
        return wrapped
    }

    // MARK: - Helpers

    /// A new work directory (0700) in `parent`. It holds plaintext copies of the password files
    /// while a backup or restore runs and is removed after it; one that a killed run left behind
    /// is removed by the next run once it is a day old (a younger one may be another run's).
    static func privateWorkDirectory(in parent: String, prefix: String, now: Date = Date()) throws -> String {
        FileOperations.removeStaleDirectories(in: parent, prefix: prefix, olderThan: 86_400, now: now)
        let path = parent + "/" + prefix + Passwords.generate(length: 10)
        try FileOperations.makeDirectory(path, mode: 0o700)
        return path
    }

    /// SHA-256 of every regular file below `root`, by relative path.
    static func hashes(under root: String) throws -> [String: String] {
        var result: [String: String] = [:]
        guard let enumerator = FileManager.default.enumerator(atPath: root) else { return result }
        while let relative = enumerator.nextObject() as? String {
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: root + "/" + relative, isDirectory: &isDirectory)
            guard !isDirectory.boolValue else { continue }
            guard let data = FileManager.default.contents(atPath: root + "/" + relative) else {
                throw AutoSSLError.general("could not read \(relative) for the manifest")
            }
            result[relative] = Hex.encode(SHA256.hash(data: data))
        }
        return result
    }

    /// Copies the CA directory. Everything in it must be read: a file or directory this user
    /// cannot read fails the backup (a backup without the keys would restore a CA that cannot
    /// sign), where `FileManager`'s enumerator would skip it without a word. A link is copied as
    /// what it points to when that is a file; a link to a directory, a socket or a FIFO is refused.
    static func copyTree(from source: String, to destination: String, skipping: (String) -> Bool) throws {
        try FileOperations.makeDirectory(destination, mode: 0o700)
        func walk(_ relative: String) throws {
            let from = relative.isEmpty ? source : source + "/" + relative
            let names: [String]
            do {
                names = try FileManager.default.contentsOfDirectory(atPath: from).sorted()
            } catch {
                throw AutoSSLError(
                    .permissionDenied, "cannot list \(from) for the backup; nothing was written",
                    hint: "run the backup as the CA's owner (or root)")
            }
            for name in names {
                let path = relative.isEmpty ? name : relative + "/" + name
                if skipping(path) { continue }
                let full = source + "/" + path
                var info = stat()
                guard stat(full, &info) == 0 else {
                    throw FileOperations.systemError(errno, "read \(full) for the backup")
                }
                let mode = info.st_mode & 0o7777
                switch info.st_mode & S_IFMT {
                case S_IFDIR:
                    try FileOperations.makeDirectory(destination + "/" + path, mode: mode)
                    // A directory whose contents are skipped (the database's) may be a link.
                    if skipping(path + "/") { continue }
                    var own = stat()
                    guard lstat(full, &own) == 0, own.st_mode & S_IFMT == S_IFDIR else {
                        throw AutoSSLError.general(
                            "\(full) is a link to a directory; the backup copies the CA directory's own files only",
                            hint: "replace the link with the directory itself")
                    }
                    try walk(path)
                case S_IFREG:
                    guard let data = FileManager.default.contents(atPath: full) else {
                        throw AutoSSLError(
                            .permissionDenied, "cannot read \(full) for the backup; nothing was written",
                            hint: "run the backup as the CA's owner (or root)")
                    }
                    try FileOperations.writeAtomically(data, to: destination + "/" + path, mode: mode)
                default:
                    throw AutoSSLError.general(
                        "\(full) is neither a file nor a directory; the backup does not copy it",
                        hint: "move it out of \(source)")
                }
            }
        }
        try walk("")
    }
}
