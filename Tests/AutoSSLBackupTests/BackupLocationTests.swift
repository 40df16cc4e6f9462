import AutoSSLBackup
import AutoSSLCore
import Foundation
import Testing
import TestSupport

/// The location strings `ca backup` and `ca restore` accept, turned into destinations.
@Suite struct BackupLocationTests {
    static func connection() throws -> S3Connection {
        try S3Connection(endpoint: "http://127.0.0.1:9000", region: "us-east-1", credentials: .init(accessKeyID: "id", secretAccessKey: "secret"))
    }

    func refusal(_ body: () throws -> Void) -> AutoSSLError? {
        do { try body() } catch let error as AutoSSLError { return error } catch { Issue.record("not an AutoSSLError: \(error)") }
        return nil
    }

    @Test func restoreInputS3KeySplitsIntoBucketPrefixAndName() throws {
        let location = try BackupLocation.input("s3://ca-backups/prod/eu/auto-ssl-backup-20261129T010000Z.enc") { try Self.connection() }
        let s3 = try #require(location.destination as? S3Destination)
        #expect(s3.bucket == "ca-backups" && s3.prefix == "prod/eu/")
        #expect(location.name == "auto-ssl-backup-20261129T010000Z.enc")
        #expect(location.location == "s3://ca-backups/prod/eu/auto-ssl-backup-20261129T010000Z.enc")
        let top = try BackupLocation.input("s3://b/key") { try Self.connection() }
        #expect((top.destination as? S3Destination)?.prefix == "" && top.name == "key" && top.location == "s3://b/key")
    }

    @Test(arguments: ["s3://bucket", "s3://bucket/", "s3://", "s3:///key"])
    func malformedS3InputIsRefusedBeforeCredentialsAreLookedUp(_ text: String) {
        var asked = false
        let error = refusal { _ = try BackupLocation.input(text) { asked = true; return try Self.connection() } }
        #expect(error?.kind == .invalidArguments && error?.message == "--input must be s3://bucket/key", "\(String(describing: error))")
        #expect(!asked)
    }

    @Test(arguments: ["/srv/backups/ca.enc", "relative/ca.enc", "ca.enc", "./ca.enc", "host:path.enc", "/x/"])
    func anythingElseIsALocalFileShownAsGiven(_ text: String) throws {
        var asked = false
        let location = try BackupLocation.input(text) { asked = true; return try Self.connection() }
        #expect(location.destination is FileDestination && !asked)
        #expect(location.location == text)
    }

    @Test func rsyncTargetsNameADirectoryOrAFile() throws {
        let directory = try BackupLocation.rsync("backup@vault.internal:/srv/ca-backups/", sshCommand: nil)
        let rsync = try #require(directory.destination as? RsyncDestination)
        #expect(directory.name == nil && rsync.directory == "backup@vault.internal:/srv/ca-backups/")
        #expect(rsync.sshCommand == "ssh -o BatchMode=yes")
        #expect(rsync.location(of: "b.enc") == "backup@vault.internal:/srv/ca-backups/b.enc")
        let named = try BackupLocation.rsync("vault:/srv/named.enc", sshCommand: "ssh -p 2222")
        #expect(named.name == "named.enc" && named.location == "vault:/srv/named.enc")
        #expect((named.destination as? RsyncDestination)?.sshCommand == "ssh -p 2222")
        let home = try BackupLocation.rsync("vault:", sshCommand: nil)
        #expect(home.name == nil && home.destination.location(of: "b.enc") == "vault:b.enc")
        let inHome = try BackupLocation.rsync("vault:b.enc", sshCommand: nil)
        #expect(inHome.name == "b.enc" && inHome.location == "vault:b.enc")
        let daemon = try BackupLocation.rsync("rsync://vault/backups/", sshCommand: nil)
        #expect(daemon.name == nil && daemon.destination.location(of: "b.enc") == "rsync://vault/backups/b.enc")
    }

    @Test(arguments: ["/just/a/path", "no-colon", ":/srv/", "dir/host:/srv/"])
    func malformedRsyncTargetsAreRefused(_ target: String) {
        let error = refusal { _ = try BackupLocation.rsync(target, sshCommand: nil) }
        #expect(error?.kind == .invalidArguments && error?.message == "--rsync-target \"\(target)\" is not of the form [user@]host:path")
    }

    @Test func outputIsADirectoryAFileOrADirectoryToCreate() throws {
        let temporary = TemporaryDirectory("auto-ssl-backup-location")
        let existing = try BackupLocation.output(temporary.path)
        #expect(existing.name == nil && existing.destination.location(of: "b.enc") == temporary.path + "/b.enc")
        let file = try BackupLocation.output(temporary.file("ca.enc"))
        #expect(file.name == "ca.enc" && file.location == temporary.file("ca.enc"))
        #expect(file.nameForNewBackup(at: Date()) == "ca.enc")
        let created = try BackupLocation.output(temporary.file("new/backups") + "/")
        #expect(created.name == nil && fileMode(temporary.file("new/backups")) == 0o700)
        #expect(created.nameForNewBackup(at: Date(timeIntervalSince1970: 0)) == "auto-ssl-backup-19700101T000000Z.enc")
        // Without the slash, a path that does not exist names a file.
        #expect(try BackupLocation.output(temporary.file("missing")).name == "missing")
    }

    /// The CA's directories are protected however links name them (a chain of links to the data
    /// directory, a directory output inside the CA directory); an empty file may be replaced.
    @Test func backupsStayOutOfTheCADirectoriesThroughLinks() throws {
        let temporary = TemporaryDirectory("auto-ssl-backup-location")
        let real = temporary.file("mnt/data")
        try FileManager.default.createDirectory(atPath: real + "/ca", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: temporary.file("data"), withDestinationPath: real)
        try FileManager.default.createSymbolicLink(atPath: temporary.file("lib"), withDestinationPath: temporary.file("data"))
        let protected = [temporary.file("data/ca")]
        for output in [temporary.file("lib/ca/new.enc"), real + "/ca/new.enc", temporary.file("lib/ca") + "/"] {
            let error = refusal { try BackupLocation.output(output).checkLocalOverwrite(protected: protected, protectedFiles: []) }
            #expect(error?.kind == .invalidArguments && error?.message.contains("holds the CA's own files") == true, "\(output): \(String(describing: error))")
        }
        let empty = temporary.file("empty.enc")
        FileManager.default.createFile(atPath: empty, contents: Data())
        try BackupLocation.output(empty).checkLocalOverwrite(protected: protected, protectedFiles: [])
        try BackupLocation.output(temporary.file("elsewhere.enc")).checkLocalOverwrite(protected: protected, protectedFiles: [])
    }

    @Test func retentionNeedsAPlaceThatCanBeListed() throws {
        let temporary = TemporaryDirectory("auto-ssl-backup-location")
        try BackupLocation.output(temporary.path).checkRotation()
        try BackupLocation.s3(bucket: "b", prefix: "ca/", connection: try Self.connection()).checkRotation()
        let file = refusal { try BackupLocation.output(temporary.file("ca.enc")).checkRotation() }
        #expect(file?.kind == .invalidArguments && file?.message == "--retention needs --output to be a directory")
        let rsync = refusal { try BackupLocation.rsync("vault:/srv/", sshCommand: nil).checkRotation() }
        #expect(rsync?.kind == .invalidArguments && rsync?.message.contains("rsync destinations are not listed") == true, "\(String(describing: rsync))")
        let named = refusal { try BackupLocation.rsync("vault:/srv/ca.enc", sshCommand: nil).checkRotation() }
        #expect(named?.message.contains("not the single file vault:/srv/ca.enc") == true, "\(String(describing: named))")
    }

    @Test func s3EndpointsAndBuckets() throws {
        let connection = try S3Connection(endpoint: nil, region: "eu-west-3", credentials: .init(accessKeyID: "a", secretAccessKey: "s"))
        #expect(connection.endpoint.absoluteString == "https://s3.eu-west-3.amazonaws.com")
        for endpoint in ["ftp://example.com", "not a url", "http://"] {
            let error = refusal { _ = try S3Connection(endpoint: endpoint, region: "us-east-1", credentials: .init(accessKeyID: "a", secretAccessKey: "s")) }
            #expect(error?.message == "--s3-endpoint \"\(endpoint)\" is not an http(s) URL", "\(endpoint): \(String(describing: error))")
        }
        #expect(refusal { _ = try BackupLocation.s3(bucket: "", prefix: "", connection: try Self.connection()) } != nil)
        let location = try BackupLocation.s3(bucket: "b", prefix: "prod-", connection: try Self.connection())
        #expect(location.name == nil && location.destination.location(of: "x.enc") == "s3://b/prod-x.enc")
    }

    @Test func credentialsComeFromTheEnvironmentOrTheSharedFileAndNeverIntoTheError() throws {
        let temporary = TemporaryDirectory("auto-ssl-backup-credentials")
        let fromEnvironment = try S3Connection.credentials(environment: ["AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "t"])
        #expect(fromEnvironment == .init(accessKeyID: "id", secretAccessKey: "secret", sessionToken: "t"))
        let file = try temporary.write("credentials", "[default]\naws_access_key_id = a\n[ops]\naws_access_key_id = b\naws_secret_access_key = very-secret\n")
        let fromFile = try S3Connection.credentials(environment: ["AWS_SHARED_CREDENTIALS_FILE": file, "AWS_PROFILE": "ops"])
        #expect(fromFile == .init(accessKeyID: "b", secretAccessKey: "very-secret"))
        let error = refusal { _ = try S3Connection.credentials(environment: ["AWS_SHARED_CREDENTIALS_FILE": file, "HOME": temporary.path]) }
        #expect(error?.message == "no S3 credentials found" && !"\(String(describing: error))".contains("very-secret"))
    }
}
