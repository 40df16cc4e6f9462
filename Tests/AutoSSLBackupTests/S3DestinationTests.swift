@testable import AutoSSLBackup
import AutoSSLCore
import Foundation
import Testing
import TestSupport

@Suite struct S3DestinationTests {
    @Test func xmlValuesAreFoundInOrderAndUnescaped() {
        let listing = """
            <ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>ca/a&amp;b.enc</Key></Contents>\
            <Contents><Key>ca/auto-ssl-backup-1.enc</Key></Contents></ListBucketResult>
            """
        #expect(S3XML.values(of: "Key", in: listing) == ["ca/a&b.enc", "ca/auto-ssl-backup-1.enc"])
        #expect(S3XML.firstValue(of: "IsTruncated", in: listing) == "false")
        #expect(S3XML.firstValue(of: "Code", in: "</Code>backwards<Code>") == nil)
        #expect(S3XML.values(of: "Key", in: "</Key><Key>unterminated") == [])
    }

    /// An answer's body may take 120 s plus a second per 256 KiB announced (never more than the
    /// limit's worth, whatever a hostile Content-Length says); an upload, a second per 256 KiB sent.
    @Test func theTimeForAnAnswerGrowsWithItsAnnouncedSize() {
        #expect(S3Connection.bodySeconds(announced: 1_000, limit: 1 << 20) == 120)
        #expect(S3Connection.bodySeconds(announced: 64 << 20, limit: 512 << 20) == 120 + 256)
        #expect(S3Connection.bodySeconds(announced: nil, limit: 512 << 20) == 120 + 2_048)
        #expect(S3Connection.bodySeconds(announced: Int.max, limit: 512 << 20) == 120 + 2_048)
        #expect(S3Connection.bodySeconds(announced: -5, limit: 512 << 20) == 120)
        #expect(S3Connection.bodySeconds(announced: 64 << 20, limit: 64 << 20) == 376, "an upload of 64 MiB")
    }

    /// The endpoint is printed in progress lines and restore hints: one with credentials in it is
    /// refused, and an unreadable one is not repeated.

    @Test func anEndpointWithCredentialsIsRefusedWithoutRepeatingThem() {
        let credentials = SigV4Signer.Credentials(accessKeyID: "AKID", secretAccessKey: "secret")
        for endpoint in ["https://user:hunter2@s3.example.internal", "ftp://user:hunter2@s3", "https://:hunter2@"] {
            do {
                _ = try S3Connection(endpoint: endpoint, region: "us-east-1", credentials: credentials)
                Issue.record("\(endpoint) was accepted")
            } catch let error as AutoSSLError {
                #expect(!"\(error.message) \(error.hint ?? "")".contains("hunter2"), "\(error)")
                #expect(error.kind == .invalidArguments)
            } catch {
                Issue.record("\(error)")
            }
        }
        #expect((try? S3Connection(endpoint: "https://s3.example.internal:9000", region: "us-east-1", credentials: credentials)) != nil)
    }

    /// A server whose listing never ends (always truncated, 20,000 backup names a page) is
    /// stopped at `maximumListedBackups` names, with nothing deleted, instead of filling memory
    /// for 1,000 pages.
    @Test func aListingThatNeverEndsIsRefusedAtTheBound() async throws {
        let port = freeLoopbackPort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["python3", "-c", """
            import http.server, sys
            page = 0
            class Handler(http.server.BaseHTTPRequestHandler):
                def log_message(self, *args): pass
                def do_GET(self):
                    global page
                    page += 1
                    keys = "".join("<Contents><Key>p/auto-ssl-backup-%08dT%06dZ.enc</Key></Contents>" % (page, i) for i in range(20000))
                    body = ("<ListBucketResult><IsTruncated>true</IsTruncated>" + keys
                            + "<NextContinuationToken>t%d</NextContinuationToken></ListBucketResult>" % page).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def do_DELETE(self):
                    sys.stderr.write("DELETE " + self.path + "\\n")
                    self.send_response(204)
                    self.end_headers()
            http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
            """, "\(port)"]
        let errors = Pipe()
        server.standardError = errors
        try server.run()
        // Waited for once: a second waitUntilExit on a reaped process never returns.
        var stopped = false
        func stop() {
            guard !stopped else { return }
            stopped = true
            kill(server.processIdentifier, SIGKILL)
            server.waitUntilExit()
        }
        defer { stop() }
        var ready = false
        for _ in 0..<100 where !ready {
            ready = (try? runProcess("curl", ["-s", "-o", "/dev/null", "http://127.0.0.1:\(port)/"]))?.status == 0
            if !ready { usleep(100_000) }
        }
        try #require(ready, "the listing server did not start")
        let connection = try S3Connection(
            endpoint: "http://127.0.0.1:\(port)", region: "us-east-1", credentials: .init(accessKeyID: "testing", secretAccessKey: "testing-secret"))
        let destination = try S3Destination(connection: connection, bucket: "b", prefix: "p/")
        do {
            _ = try await BackupRotation.prune(destination, keep: 1, written: nil)
            Issue.record("a listing without end was accepted")
        } catch let error as AutoSSLError {
            #expect(error.message.contains("more than 100000 backups") && error.message.contains("nothing was deleted"), "\(error)")
        }
        stop()
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(!log.contains("DELETE"), "\(log)")
    }

    static var motoIsInstalled: Bool {
        (try? runProcess("sh", ["-c", "command -v moto_server"]))?.status == 0
    }

    /// Put, list, rotate, get and delete against moto's S3 server on loopback.
    @Test(.enabled(if: motoIsInstalled, "needs moto_server (pip install 'moto[server]')"))
    func rotationListsAndDeletesObjectsUnderThePrefixOnly() async throws {
        let port = freeLoopbackPort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["moto_server", "-H", "127.0.0.1", "-p", "\(port)"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }  // moto ignores SIGTERM
        let endpoint = "http://127.0.0.1:\(port)"
        var ready = false
        for _ in 0..<100 where !ready {
            ready = (try? runProcess("curl", ["-sf", "-o", "/dev/null", endpoint]))?.status == 0
            if !ready { usleep(100_000) }
        }
        try #require(ready, "moto_server did not start")
        let made = try runPython("""
            import boto3, sys
            s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing-secret")
            s3.create_bucket(Bucket="ca-backups")
            s3.put_object(Bucket="ca-backups", Key="other/auto-ssl-backup-20000101T000000Z.enc", Body=b"elsewhere")
            s3.put_object(Bucket="ca-backups", Key="prod/notes.txt", Body=b"not a backup")
            print("ok")
            """, arguments: [endpoint])
        try #require(made.status == 0, "\(made)")

        let connection = try S3Connection(
            endpoint: endpoint, region: "us-east-1",
            credentials: .init(accessKeyID: "testing", secretAccessKey: "testing-secret", sessionToken: "session"))
        let destination = try S3Destination(connection: connection, bucket: "ca-backups", prefix: "prod/")
        let names = BackupRotationTests.names(4)
        for (index, name) in names.enumerated() {
            #expect(try await destination.put(Array("backup \(index)".utf8), name: name) == "s3://ca-backups/prod/" + name)
        }
        #expect(Set(try await destination.list()) == Set(names))
        #expect(try await destination.get(names[3]) == Array("backup 3".utf8))

        #expect(try await BackupRotation.prune(destination, keep: 2, written: nil) == [names[1], names[0]])
        #expect(Set(try await destination.list()) == Set(names.suffix(2)))
        let left = try runPython("""
            import boto3, sys
            s3 = boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing-secret")
            print(" ".join(sorted(o["Key"] for o in s3.list_objects_v2(Bucket="ca-backups")["Contents"])))
            """, arguments: [endpoint])
        let expected = (["other/auto-ssl-backup-20000101T000000Z.enc", "prod/notes.txt"] + names.suffix(2).map { "prod/" + $0 }).sorted()
        #expect(left.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == expected.joined(separator: " "), "\(left)")

        do {
            _ = try await destination.get("auto-ssl-backup-missing.enc")
            Issue.record("a missing object was read")
        } catch let error as AutoSSLError {
            #expect(error.message == "could not download s3://ca-backups/prod/auto-ssl-backup-missing.enc: HTTP 404 (NoSuchKey)", "\(error)")
            #expect(!"\(error)".contains("testing-secret"))
        }
    }
}
