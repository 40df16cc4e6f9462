import AutoSSLCore
import Crypto
import Foundation
import Testing
import TestSupport

@Suite struct JWTAndRangesTests {
    func claims(aud: [String] = ["https://ca:9000/1.0/sign"]) -> ProvisionerTokenClaims {
        ProvisionerTokenClaims(
            iss: "admin", aud: aud, sub: "web01", sans: ["web01"], nbf: 1000, iat: 1000, exp: 1300, jti: "abc",
            sha: "00")
    }

    @Test func signsAndVerifiesES256() throws {
        let key = P256.Signing.PrivateKey()
        let token = try JWT.sign(payload: claims(), kid: "kid-1", key: key)
        let parsed = try JWT.parse(token)
        #expect(parsed.header == JWT.Header(alg: "ES256", kid: "kid-1"))
        #expect(parsed.signature.count == 64)
        #expect(JWT.verifyES256(parsed, key: key.publicKey))
        #expect(!JWT.verifyES256(parsed, key: P256.Signing.PrivateKey().publicKey))
        let decoded = try JSONDecoder().decode(ProvisionerTokenClaims.self, from: parsed.payload)
        #expect(decoded == claims())
    }

    @Test func tamperedPayloadFailsVerification() throws {
        let key = P256.Signing.PrivateKey()
        let token = try JWT.sign(payload: claims(), kid: nil, key: key)
        var parts = token.split(separator: ".").map(String.init)
        parts[1] = Base64URL.encode(Data(#"{"iss":"evil"}"#.utf8))
        #expect(!JWT.verifyES256(try JWT.parse(parts.joined(separator: ".")), key: key.publicKey))
    }

    @Test func rejectsMalformedTokens() {
        for bad in ["", "a.b", "a.b.c.d", "!!.??.**", Base64URL.encode(Data("{}".utf8)) + ".e30.AA"] {
            #expect(throws: AutoSSLError.self, "\(bad)") { try JWT.parse(bad) }
        }
    }

    @Test func audienceMayBeAStringOrAList() throws {
        let single = #"{"iss":"a","aud":"https://x/sign","nbf":1,"exp":2,"jti":"j","sha":"s","sans":["x"]}"#
        #expect(try JSONDecoder().decode(ProvisionerTokenClaims.self, from: Data(single.utf8)).aud == ["https://x/sign"])
        let list = #"{"iss":"a","aud":["u1","u2"],"nbf":1.5,"exp":2,"jti":"j"}"#
        let decoded = try JSONDecoder().decode(ProvisionerTokenClaims.self, from: Data(list.utf8))
        #expect(decoded.aud == ["u1", "u2"] && decoded.nbf == 1 && decoded.sans.isEmpty)
    }

    @Test func jwcryptoVerifiesOurTokens() throws {
        let key = ECJWK.generatePrivate()
        let token = try JWT.sign(payload: claims(), kid: key.kid, key: try key.privateKey())
        let script = """
            import json, sys
            from jwcrypto import jwk, jws
            key = jwk.JWK(**json.loads(sys.argv[2]))
            token = jws.JWS()
            token.deserialize(sys.argv[1])
            token.verify(key)
            print(json.loads(token.payload)["iss"], token.jose_header["kid"])
            """
        let result = try runPython(script, arguments: [token, try key.publicOnly.jsonString()])
        #expect(result.status == 0, "\(result)")
        #expect(result.stdout == "admin \(key.kid!)\n")
    }

    @Test func ipRanges() throws {
        let v4 = try IPRange(parsing: "10.1.0.0/16")
        #expect(v4.contains(IPAddress("10.1.200.3")!))
        #expect(!v4.contains(IPAddress("10.2.0.1")!))
        #expect(!v4.contains(IPAddress("fd00::1")!))
        #expect(try IPRange(parsing: "10.1.2.3/8").description == "10.0.0.0/8")
        #expect(try IPRange(parsing: "192.0.2.7").contains(IPAddress("192.0.2.7")!))
        let v6 = try IPRange(parsing: "fd00::/8")
        #expect(v6.contains(IPAddress("fd12:3456::1")!))
        #expect(!v6.contains(IPAddress("fe80::1")!))
        #expect(try IPRange(parsing: "0.0.0.0/0").contains(IPAddress("8.8.8.8")!))
        for bad in ["10.0.0.0/33", "fd00::/129", "nope/8", "10.0.0.0/x", ""] {
            #expect(throws: AutoSSLError.self, "\(bad)") { try IPRange(parsing: bad) }
        }
    }

    @Test func serialsInHexAndDecimal() throws {
        #expect(SerialText.decimal(fromHex: "ff") == "255")
        #expect(SerialText.decimal(fromHex: "0100") == "256")
        #expect(SerialText.decimalToBytes("256") == [1, 0])
        let hex = "520733c9a5abcd72729bba0264c82038"
        let decimal = SerialText.decimal(fromHex: hex)
        // Cross-check with Python's arbitrary-precision integers.
        let python = try runPython("import sys; print(int(sys.argv[1], 16))", arguments: [hex])
        #expect(python.stdout == decimal + "\n")
        #expect(try SerialText.candidates(decimal).contains(hex))
        #expect(try SerialText.candidates("52:07:33:C9:A5:AB:CD:72:72:9B:BA:02:64:C8:20:38") == [hex])
        #expect(throws: AutoSSLError.self) { try SerialText.candidates("xyz") }
    }
}
