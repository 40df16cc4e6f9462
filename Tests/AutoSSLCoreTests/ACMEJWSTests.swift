@testable import AutoSSLCore
import Crypto
import Foundation
import Testing
import TestSupport

struct ACMEJWSTests {
    @Test func rfc7638ThumbprintOfTheRSAExample() throws {
        let fields = ACMEAccountKey.Fields(
            kty: "RSA",
            n: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            e: "AQAB")
        let key = try ACMEAccountKey(jwk: fields)
        #expect(key.thumbprint == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        #expect(key.fields == fields, "n and e survive the round trip without leading zeros")
    }

    func jws(_ header: [String: Any], _ payload: String, sign: (Data) throws -> Data) throws -> Data {
        let protected = Base64URL.encode(try JSONSerialization.data(withJSONObject: header))
        let body = Base64URL.encode(Data(payload.utf8))
        let signature = Base64URL.encode(try sign(Data((protected + "." + body).utf8)))
        return try JSONSerialization.data(withJSONObject: ["protected": protected, "payload": body, "signature": signature])
    }

    @Test func es256SignaturesVerifyAndTamperingIsCaught() throws {
        let privateKey = P256.Signing.PrivateKey()
        let key = ACMEAccountKey.p256(privateKey.publicKey)
        let fields = key.fields
        let header: [String: Any] = [
            "alg": "ES256", "nonce": "n", "url": "https://ca/acme/a/new-account",
            "jwk": ["kty": fields.kty, "crv": fields.crv!, "x": fields.x!, "y": fields.y!],
        ]
        let body = try jws(header, #"{"termsOfServiceAgreed":true}"#) { try privateKey.signature(for: $0).rawRepresentation }
        let parsed = try ACMEJWS(body: body)
        #expect(parsed.header.url == "https://ca/acme/a/new-account")
        let embedded = try ACMEAccountKey(jwk: parsed.header.jwk!)
        #expect(embedded.thumbprint == key.thumbprint)
        try parsed.verify(with: embedded)
        let other = ACMEAccountKey.p256(P256.Signing.PrivateKey().publicKey)
        #expect(throws: ACMEProblem.self) { try parsed.verify(with: other) }
        let p384 = ACMEAccountKey.p384(P384.Signing.PrivateKey().publicKey)
        do {
            try parsed.verify(with: p384)
            Issue.record("an ES256 JWS must not verify with a P-384 key")
        } catch let problem as ACMEProblem {
            #expect(problem.kind == .badSignatureAlgorithm)
        }
        // Both jwk and kid, or neither, is malformed.
        var both = header
        both["kid"] = "https://ca/acme/a/account/1"
        #expect(throws: ACMEProblem.self) { try ACMEJWS(body: try jws(both, "{}") { try privateKey.signature(for: $0).rawRepresentation }) }
        #expect(throws: ACMEProblem.self) { try ACMEJWS(body: Data("not json".utf8)) }
    }

    /// RFC 7515 §4.1.11: a "crit" naming extensions we do not support makes the JWS invalid; RFC
    /// 8555 §6.2: no unprotected header. Both are refused, whichever parser reads the body.
    @Test func criticalExtensionsAndUnprotectedHeadersAreRefused() throws {
        let privateKey = P256.Signing.PrivateKey()
        let sign: (Data) throws -> Data = { try privateKey.signature(for: $0).rawRepresentation }
        let base: [String: Any] = ["alg": "ES256", "nonce": "n", "url": "https://ca/acme/a/new-order", "kid": "https://ca/acme/a/account/1"]
        _ = try ACMEJWS(body: try jws(base, "{}", sign: sign))
        var critical = base
        critical["crit"] = ["zzz"]
        critical["zzz"] = "1"
        let refusedCrit = #expect(throws: ACMEProblem.self) { try ACMEJWS(body: try jws(critical, "{}", sign: sign)) }
        #expect(refusedCrit?.kind == .malformed && refusedCrit?.detail.contains("crit") == true)
        let signed = try JSONSerialization.jsonObject(with: try jws(base, "{}", sign: sign)) as? [String: Any] ?? [:]
        for unprotected in [["kid": "x"] as Any, "x", NSNull()] {
            var body = signed
            body["header"] = unprotected
            let data = try JSONSerialization.data(withJSONObject: body)
            if unprotected is NSNull {
                _ = try ACMEJWS(body: data)  // a null member is no header
            } else {
                let refused = #expect(throws: ACMEProblem.self) { try ACMEJWS(body: data) }
                #expect(refused?.detail.contains("unprotected") == true, "\(unprotected)")
            }
        }
    }

    /// JWS made by jwcrypto (an independent implementation) with ES384, RS256 and EdDSA verify here.
    @Test func jwcryptoSignaturesVerify() throws {
        let script = """
            import json, sys
            from jwcrypto import jwk, jws
            out = []
            for kty, args, alg in [("EC", {"crv": "P-384"}, "ES384"), ("RSA", {"size": 2048}, "RS256"), ("OKP", {"crv": "Ed25519"}, "EdDSA")]:
                key = jwk.JWK.generate(kty=kty, **args)
                public = json.loads(key.export_public())
                token = jws.JWS(b'{"identifiers":[]}')
                token.add_signature(key, None, json.dumps({"alg": alg, "nonce": "n", "url": "https://ca/x", "jwk": public}))
                flat = json.loads(token.serialize())
                out.append({"jws": flat, "thumbprint": key.thumbprint()})
            print(json.dumps(out))
            """
        let result = try runPython(script)
        #expect(result.status == 0, "\(result)")
        let cases = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(cases.count == 3)
        for entry in cases {
            let body = try JSONSerialization.data(withJSONObject: entry["jws"] as Any)
            let parsed = try ACMEJWS(body: body)
            let key = try ACMEAccountKey(jwk: parsed.header.jwk!)
            try parsed.verify(with: key)
            #expect(key.thumbprint == entry["thumbprint"] as? String, "RFC 7638 thumbprints agree with jwcrypto for \(parsed.header.alg)")
        }
    }

    @Test func externalAccountBindingIsCheckedWithTheHMACKey() throws {
        let accountKey = ACMEAccountKey.p256(P256.Signing.PrivateKey().publicKey)
        let macKey = Data((0..<32).map { UInt8($0) })
        let url = "https://ca/acme/a/new-account"
        func binding(kid: String, key: Data, boundTo: ACMEAccountKey, url: String) throws -> Data {
            let f = boundTo.fields
            let payload = String(decoding: try JSONSerialization.data(withJSONObject: ["kty": f.kty, "crv": f.crv!, "x": f.x!, "y": f.y!]), as: UTF8.self)
            return try jws(["alg": "HS256", "kid": kid, "url": url], payload) {
                Data(HMAC<SHA256>.authenticationCode(for: $0, using: SymmetricKey(data: key)))
            }
        }
        let good = try binding(kid: "k1", key: macKey, boundTo: accountKey, url: url)
        #expect(ACMEJWS.externalBindingKeyID(good) == "k1")
        #expect(try ACMEJWS.verifyExternalBinding(good, accountKey: accountKey, url: url) { $0 == "k1" ? macKey : nil } == "k1")
        let wrongMAC = try binding(kid: "k1", key: Data(repeating: 9, count: 32), boundTo: accountKey, url: url)
        #expect(throws: ACMEProblem.self) { try ACMEJWS.verifyExternalBinding(wrongMAC, accountKey: accountKey, url: url) { _ in macKey } }
        let otherAccount = try binding(kid: "k1", key: macKey, boundTo: .p256(P256.Signing.PrivateKey().publicKey), url: url)
        #expect(throws: ACMEProblem.self) { try ACMEJWS.verifyExternalBinding(otherAccount, accountKey: accountKey, url: url) { _ in macKey } }
        #expect(throws: ACMEProblem.self) { try ACMEJWS.verifyExternalBinding(good, accountKey: accountKey, url: url) { _ in nil } }
        // The binding's own JWS follows the outer one's rules: no crit, no unprotected header, no jwk
        // (each correctly MAC'd, so only the rule refuses it).
        let f = accountKey.fields
        let payload = String(decoding: try JSONSerialization.data(withJSONObject: ["kty": f.kty, "crv": f.crv!, "x": f.x!, "y": f.y!]), as: UTF8.self)
        func mac(_ input: Data) -> Data { Data(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: macKey))) }
        for (extra, words) in [(["crit": ["exp"]] as [String: Any], "crit"), (["jwk": ["kty": "oct"]], "jwk")] {
            let header = ["alg": "HS256", "kid": "k1", "url": url].merging(extra) { $1 }
            let hostile = try jws(header, payload, sign: mac)
            #expect {
                try ACMEJWS.verifyExternalBinding(hostile, accountKey: accountKey, url: url) { _ in macKey }
            } throws: { ($0 as? ACMEProblem)?.detail.contains(words) == true }
        }
        var withHeader = try JSONSerialization.jsonObject(with: good) as? [String: Any] ?? [:]
        withHeader["header"] = ["kid": "k2"]
        #expect {
            try ACMEJWS.verifyExternalBinding(try JSONSerialization.data(withJSONObject: withHeader), accountKey: accountKey, url: url) { _ in macKey }
        } throws: { ($0 as? ACMEProblem)?.detail.contains("unprotected") == true }
    }

    /// The fast readers of the JWS members and of a `kid` header give what `JSONDecoder` gives, and
    /// step aside (nil) for what they do not read, which `JSONDecoder` then decides.
    @Test func theFastReadersAgreeWithJSONDecoderOrStepAside() throws {
        let headers = [
            #"{"alg":"ES256","nonce":"n","url":"https://ca/x","kid":"https://ca/acct/1"}"#, #"{"alg":"ES256","nonce":null,"kid":"k","jwk":null}"#,
            #"{"alg":"ES256","url":"u\u0041","kid":"k","extra":[ "a" ]}"#, #"{"alg":"ES256","jwk":{"kty":"EC"}}"#, #"{"alg":1,"kid":"k"}"#,
            #"{"alg":"ES256","nonce":5}"#, #"{"alg":"ES256","jwk":"text"}"#, #"{"alg":"ES256","kid":"a","kid":"b"}"#, #"[]"#,
        ]
        var read = 0
        for text in headers {
            let data = Data(text.utf8)
            let decoded = try? JSONDecoder().decode(ACMEJWS.Header.self, from: data)
            if let fast = ACMEJWS.fastHeader(data) {
                read += 1
                #expect(fast == decoded, "\(text)")
            }
        }
        #expect(read == 3, "the kid headers are read fast")
        for text in [#"{"protected":"a","payload":"","signature":"c"}"#, #"{"protected":"a","payload":"b","signature":"c","header":{}}"#,
                     #"{"protected":"a","payload":1,"signature":"c"}"#] {
            let data = Data(text.utf8)
            let decoded = try? JSONDecoder().decode(ACMEJWS.Wire.self, from: data)
            if let fast = ACMEJWS.fastWire(data) { #expect(fast == decoded, "\(text)") }
        }
        #expect(ACMEJWS.fastWire(Data(#"{"protected":"a","payload":"","signature":"c"}"#.utf8)) != nil)
    }

    @Test func challengeValues() {
        let keyAuthorization = ACMEChallengeValues.keyAuthorization(token: "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", thumbprint: "9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI")
        // RFC 8555 §8.4's example: the TXT value for this key authorization.
        #expect(ACMEChallengeValues.dnsTXT(keyAuthorization) == Base64URL.encode(Array(SHA256.hash(data: Data(keyAuthorization.utf8)))))
        #expect(ACMEChallengeValues.tlsALPNDigest(keyAuthorization).count == 32)
        #expect(ACMEProblem(.badNonce, "x").type == "urn:ietf:params:acme:error:badNonce")
    }
}
