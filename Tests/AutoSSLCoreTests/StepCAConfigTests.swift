import AutoSSLCore
import Foundation
import Testing

/// Reading step-ca's config/ca.json for `ca import`: the documented schema, and hostile or odd files.
@Suite struct StepCAConfigTests {
    static let documented = """
        {
          "root": "/home/ops/.step/certs/root_ca.crt",
          "federatedRoots": null,
          "crt": "/home/ops/.step/certs/intermediate_ca.crt",
          "key": "/home/ops/.step/secrets/intermediate_ca_key",
          "address": ":9000",
          "insecureAddress": "",
          "dnsNames": ["ca.internal", "10.0.0.5"],
          "logger": {"format": "text"},
          "db": {"type": "badgerv2", "dataSource": "/home/ops/.step/db", "badgerFileLoadingMode": ""},
          "authority": {
            "claims": {"minTLSCertDuration": "5m0s", "maxTLSCertDuration": "168h0m0s", "defaultTLSCertDuration": "24h", "enableSSHCA": true},
            "provisioners": [
              {"type": "JWK", "name": "ops@example.com",
               "key": {"use": "sig", "kty": "EC", "kid": "abc", "crv": "P-256", "alg": "ES256", "x": "xx", "y": "yy"},
               "encryptedKey": "a.b.c.d.e",
               "claims": {"maxTLSCertDuration": "72h"}},
              {"type": "ACME", "name": "acme", "challenges": ["http-01", "device-attest-01"], "requireEAB": true, "forceCN": true},
              {"type": "OIDC", "name": "google", "clientID": "x", "clientSecret": "y"},
              {"type": "X5C", "name": "x5c", "roots": "AAAA"}
            ],
            "template": {},
            "backdate": "1m0s"
          },
          "tls": {"cipherSuites": ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"], "minVersion": 1.2, "maxVersion": 1.3, "renegotiation": false}
        }
        """

    @Test func theDocumentedSchemaIsReadWithEverythingItCannotCarryNamed() throws {
        let config = try StepCAConfig.parse(Array(Self.documented.utf8))
        #expect(config.roots == ["/home/ops/.step/certs/root_ca.crt"])
        #expect(config.intermediateKey == "/home/ops/.step/secrets/intermediate_ca_key")
        #expect(config.address == ":9000" && config.dnsNames == ["ca.internal", "10.0.0.5"])
        #expect(config.databaseType == "badgerv2")
        #expect(config.claims.minimum == 300 && config.claims.maximum == 168 * 3_600 && config.claims.defaultDuration == 86_400)
        #expect(config.provisioners.count == 4)
        guard case .jwk(let jwk) = config.provisioners[0], case .acme(let acme) = config.provisioners[1] else {
            Issue.record("provisioner types not read")
            return
        }
        #expect(jwk.name == "ops@example.com" && jwk.key.kid == "abc" && jwk.encryptedKey == "a.b.c.d.e" && jwk.claims.maximum == 72 * 3_600)
        #expect(acme.challenges == ["http-01", "device-attest-01"] && acme.requireEAB && acme.notCarried == ["forceCN"])
        #expect(config.provisioners[2] == .other(type: "OIDC", name: "google"))
        #expect(config.provisioners[3] == .other(type: "X5C", name: "x5c"))
        #expect(config.notCarried.contains { $0.hasPrefix("tls") })
        #expect(config.notCarried.contains { $0.hasPrefix("authority.backdate") })
        #expect(config.notCarried.contains { $0.contains("enableSSHCA") })
        // The database's data source (which can hold a password) is never repeated.
        #expect(!config.notCarried.joined().contains("/home/ops/.step/db"))
    }

    @Test func rootMayBeAListAndClaimsMayBeAbsent() throws {
        let config = try StepCAConfig.parse(Array(#"{"root": ["r1.crt", "r2.crt"], "crt": "i.crt", "key": "i.key"}"#.utf8))
        #expect(config.roots == ["r1.crt", "r2.crt"] && config.provisioners.isEmpty && config.claims == StepCAConfig.Claims())
    }

    @Test(arguments: [
        ("not json", "{"),
        ("array", "[]"),
        ("no root", #"{"crt": "a", "key": "b"}"#),
        ("root number", #"{"root": 5, "crt": "a", "key": "b"}"#),
        ("root list of numbers", #"{"root": [5], "crt": "a", "key": "b"}"#),
        ("empty root", #"{"root": "", "crt": "a", "key": "b"}"#),
        ("no key", #"{"root": "r", "crt": "a"}"#),
        ("kms key", #"{"root": "r", "crt": "a", "key": "pkcs11:id=7331"}"#),
        ("kms uri", #"{"root": "r", "crt": "a", "key": "awskms:key-id=x", "kms": {"type": "awskms"}}"#),
        ("authority string", #"{"root": "r", "crt": "a", "key": "b", "authority": "x"}"#),
        ("provisioners object", #"{"root": "r", "crt": "a", "key": "b", "authority": {"provisioners": {}}}"#),
        ("provisioner without type", #"{"root": "r", "crt": "a", "key": "b", "authority": {"provisioners": [{"name": "x"}]}}"#),
        ("provisioner without name", #"{"root": "r", "crt": "a", "key": "b", "authority": {"provisioners": [{"type": "JWK"}]}}"#),
        ("jwk without key", #"{"root": "r", "crt": "a", "key": "b", "authority": {"provisioners": [{"type": "JWK", "name": "x"}]}}"#),
        ("jwk key number", #"{"root": "r", "crt": "a", "key": "b", "authority": {"provisioners": [{"type": "JWK", "name": "x", "key": {"kty": 1}}]}}"#),
        ("encryptedKey number", #"{"root": "r", "crt": "a", "key": "b", "authority": {"provisioners": [{"type": "JWK", "name": "x", "key": {"kty": "EC"}, "encryptedKey": 7}]}}"#),
        ("duplicate names", #"{"root": "r", "crt": "a", "key": "b", "authority": {"provisioners": [{"type": "ACME", "name": "a"}, {"type": "ACME", "name": "a"}]}}"#),
        ("duration number", #"{"root": "r", "crt": "a", "key": "b", "authority": {"claims": {"maxTLSCertDuration": 720}}}"#),
        ("duration garbage", #"{"root": "r", "crt": "a", "key": "b", "authority": {"claims": {"maxTLSCertDuration": "forever"}}}"#),
        ("negative duration", #"{"root": "r", "crt": "a", "key": "b", "authority": {"claims": {"maxTLSCertDuration": "-5m"}}}"#),
        ("huge duration", #"{"root": "r", "crt": "a", "key": "b", "authority": {"claims": {"maxTLSCertDuration": "99999999999999999999h"}}}"#),
        ("nan duration", #"{"root": "r", "crt": "a", "key": "b", "authority": {"claims": {"maxTLSCertDuration": "NaNh"}}}"#),
        ("challenges string", #"{"root": "r", "crt": "a", "key": "b", "authority": {"provisioners": [{"type": "ACME", "name": "a", "challenges": "http-01"}]}}"#),
        ("dnsNames string", #"{"root": "r", "crt": "a", "key": "b", "dnsNames": "x"}"#),
        ("nul in path", "{\"root\": \"r\\u0000x\", \"crt\": \"a\", \"key\": \"b\"}"),
    ])
    func hostileOrBrokenFilesAreRefusedWithAMessageNamingTheFile(name: String, json: String) {
        do {
            _ = try StepCAConfig.parse(Array(json.utf8))
            Issue.record("\(name) was accepted")
        } catch let error as AutoSSLError {
            #expect(error.message.contains("ca.json"), "\(name): \(error.message)")
        } catch {
            Issue.record("\(name): \(error)")
        }
    }

    @Test func deepNestingAndHugeFilesAreRefusedWithoutCrashing() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: AutoSSLError.self) { try StepCAConfig.parse(Array(deep.utf8)) }
        let huge = "{\"root\": \"" + String(repeating: "a", count: StepCAConfig.maximumBytes) + "\"}"
        #expect(throws: AutoSSLError.self) { try StepCAConfig.parse(Array(huge.utf8)) }
    }

    @Test(arguments: [
        ("24h", Int64(86_400)), ("5m0s", 300), ("720h0m0s", 2_592_000), ("1h30m", 5_400), ("1.5h", 5_400),
        ("300ms", 0), ("90s", 90), ("0", 0), ("2160h", 7_776_000), ("+1h", 3_600), ("1h0m0.5s", 3_600),
    ])
    func goDurationsAreReadAsStepCAWritesThem(text: String, seconds: Int64) throws {
        #expect(try GoDuration.seconds(text, field: "f") == seconds)
    }

    @Test(arguments: ["", "h", "5", "5d", "1e3h", "-1h", "1h-", "..h", "1.2.3h", String(repeating: "9", count: 70) + "h"])
    func malformedGoDurationsAreRefused(text: String) {
        #expect(throws: AutoSSLError.self) { try GoDuration.seconds(text, field: "f") }
    }

    @Test func jweParametersAreReadWithoutAPassword() throws {
        let jwe = try PasswordJWE.encrypt(Data("{}".utf8), password: "a provisioner password", iterations: 210_000)
        let parameters = StepCAConfig.jweParameters(jwe)
        #expect(parameters?.alg == "PBES2-HS256+A128KW" && parameters?.enc == "A256GCM" && parameters?.p2c == 210_000)
        #expect(StepCAConfig.jweParameters("a.b.c.d.e") == nil)
        #expect(StepCAConfig.jweParameters("") == nil)
    }

    @Test func randomMutationsOfTheDocumentedFileNeverCrash() {
        let original = Array(Self.documented.utf8)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var bytes = original
            for _ in 0..<Int.random(in: 1...6, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                if Bool.random(using: &generator) {
                    bytes[index] = UInt8.random(in: 0...255, using: &generator)
                } else {
                    bytes.remove(at: index)
                }
            }
            _ = try? StepCAConfig.parse(bytes)
        }
    }
}
