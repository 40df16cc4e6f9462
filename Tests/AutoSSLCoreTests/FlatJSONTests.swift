@testable import AutoSSLCore
import Foundation
import Testing

/// The fast JSON reader must agree with Foundation wherever it answers, and step aside (nil)
/// wherever Foundation refuses or the shape is not flat.
@Suite struct FlatJSONTests {
    static let valid: [String] = [
        #"{}"#,
        #" { "a" : "b" } "#,
        #"{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\/+==\n-----END CERTIFICATE REQUEST-----\n","ott":"a.b.c"}"#,
        #"{"s":"quote \" backslash \\ slash \/ controls \b\f\n\r\t"}"#,
        #"{"u":"\u00e9\u2713 \ud83d\udd10 raw é ✓ 🔐","nul":"\u0000"}"#,
        #"{"n":0,"m":-0,"i":1796000000,"f":1796000000.75,"e":1.5e3,"E":-2E-2,"p":1e+2}"#,
        #"{"t":true,"f":false,"z":null}"#,
        #"{"aud":[],"sans":["a.internal", "10.0.0.1" ,"::1"]}"#,
        "{\n\t\"a\"\r\n:\"b\"\n}",
    ]

    static let invalid: [String] = [
        "", " ", "[]", #""a""#, "{", "}", #"{"a"}"#, #"{"a":}"#, #"{"a":"b",}"#, #"{"a":"b" "c":"d"}"#,
        #"{"a":"b"}x"#, #"{"a":"b"}{}"#, #"{a:"b"}"#, #"{'a':'b'}"#, #"{"a":"unterminated}"#,
        "{\"a\":\"raw\ncontrol\"}", #"{"a":"\x"}"#, #"{"a":"\u12"}"#, #"{"a":"\ud800"}"#, #"{"a":"\udc00"}"#,
        #"{"a":01}"#, #"{"a":1.}"#, #"{"a":.5}"#, #"{"a":-}"#, #"{"a":1e}"#, #"{"a":+1}"#, #"{"a":NaN}"#,
        #"{"a":tru}"#, #"{"a":nul}"#, #"{"a":[1]}"#, #"{"a":["x",]}"#, #"{"a":{"b":"c"}}"#,
        #"{"a":"x","a":"y"}"#, #"{"a":1e400}"#,
    ]

    /// Whether a fast-path value equals what JSONSerialization made of the same member.
    static func matches(_ value: FlatJSON.Value, _ foundation: Any) -> Bool {
        switch value {
        case .string(let string): return (foundation as? String) == string
        case .strings(let strings): return (foundation as? [String]) == strings
        case .null: return foundation is NSNull
        case .bool(let bool): return (foundation as? Bool) == bool && !(foundation is String)
        case .number(let number): return (foundation as? NSNumber)?.doubleValue == number
        }
    }

    static func agreesWithFoundation(_ bytes: [UInt8]) -> Bool {
        let fast = FlatJSON.object(bytes)
        let foundation = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any]
        guard let fast else { return true }  // stepping aside is always allowed
        guard let foundation, foundation.count == fast.count else { return false }
        return fast.allSatisfy { key, value in foundation[key].map { matches(value, $0) } ?? false }
    }

    @Test func readsFlatObjectsLikeFoundation() {
        for text in Self.valid {
            let bytes = Array(text.utf8)
            #expect(FlatJSON.object(bytes) != nil, "\(text)")
            #expect(Self.agreesWithFoundation(bytes), "\(text)")
        }
        #expect(FlatJSON.object(Array(#"{"u":"\u00e9\ud83d\udd10","s":"a\/b"}"#.utf8)) == ["u": .string("é🔐"), "s": .string("a/b")])
    }

    @Test func stepsAsideForEverythingElse() {
        for text in Self.invalid {
            #expect(FlatJSON.object(Array(text.utf8)) == nil, "\(text)")
        }
        #expect(FlatJSON.object([0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xC3, 0x28, 0x22, 0x7D]) == nil)  // invalid UTF-8
    }

    @Test func randomMutationsNeverDisagreeWithFoundation() {
        var generator = SeededGenerator(seed: 0x5EED)
        let alphabet = Array(#"{}[]":,\ u0a1.-eE+tfn"#.utf8) + [0x00, 0x0A, 0xC3, 0xFF]
        for iteration in 0..<4_000 {
            var bytes = Array(Self.valid[iteration % Self.valid.count].utf8)
            for _ in 0..<Int.random(in: 1...3, using: &generator) where !bytes.isEmpty {
                let position = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[position] = alphabet.randomElement(using: &generator)!
                case 1: bytes.remove(at: position)
                default: bytes.insert(alphabet.randomElement(using: &generator)!, at: position)
                }
            }
            #expect(Self.agreesWithFoundation(bytes), "\(String(decoding: bytes, as: UTF8.self))")
        }
    }

    /// The top-level arrays the stores keep (identifiers, names, contacts): the same members as
    /// JSONDecoder reads, nil for any other shape.
    @Test func readsArraysOfFlatObjectsAndOfStringsLikeJSONDecoder() throws {
        let objects = [
            #"[]"#, #" [ ] "#, #"[{"type":"dns","value":"a.internal"}]"#,
            #"[{"type":"dns","value":"*.a.internal"},{"type":"ip","value":"10.0.0.1"} , {"value":"::1","type":"ip"}]"#,
            #"[{"type":"dns","value":"a\/b\u00e9"},{}]"#,
        ]
        for text in objects {
            let fast = try #require(FlatJSON.objects(text), "\(text)")
            let decoded = try JSONDecoder().decode([[String: String]].self, from: Data(text.utf8))
            #expect(fast.map { $0.compactMapValues { if case .string(let s) = $0 { s } else { nil } } } == decoded, "\(text)")
        }
        let strings = [#"[]"#, #"["a.internal"]"#, #" ["a", "b\"c" ,"\u00e9"] "#]
        for text in strings {
            #expect(FlatJSON.strings(text) == (try JSONDecoder().decode([String].self, from: Data(text.utf8))), "\(text)")
        }
        for text in ["", "[", "]", "{}", #"[{"a":"b"}"#, #"[{"a":"b"},]"#, #"[{"a":"b"}]x"#, #"[{"a":{"b":"c"}}]"#, #"["a"]"#, #"[[]]"#, #"[{"a":"b"}{"c":"d"}]"#] {
            #expect(FlatJSON.objects(text) == nil, "\(text)")
        }
        for text in ["", "[", #"["a""#, #"["a",]"#, #"[1]"#, #"[null]"#, #"["a"]]"#, #"{"a":"b"}"#, #"[{"a":"b"}]"#] {
            #expect(FlatJSON.strings(text) == nil, "\(text)")
        }
    }

    @Test func tokenClaimsDecodeExactlyAsJSONDecoderDoes() throws {
        let documents = [
            #"{"iss":"admin","aud":"https://ca:9000/1.0/sign","sub":"a","sans":["a"],"nbf":1,"iat":2,"exp":3,"jti":"j","sha":"f"}"#,
            #"{"iss":"admin","aud":["x","y"],"nbf":1.9,"exp":300.5,"jti":"j"}"#,
            #"{"iss":"admin","aud":[],"sub":null,"sans":null,"nbf":-5,"iat":null,"exp":3,"jti":"j","sha":null,"extra":true}"#,
            // Shapes the fast reader leaves to JSONDecoder, which must still decide the same way.
            #"{"iss":"admin","aud":"x","nbf":1,"exp":3,"jti":"j","extra":{"nested":1}}"#,
            #"{"iss":"admin","aud":"x","nbf":1,"exp":3}"#,
            #"{"iss":"admin","aud":1,"nbf":1,"exp":3,"jti":"j"}"#,
            #"{"iss":"admin","aud":"x","nbf":"1","exp":3,"jti":"j"}"#,
            #"{"iss":"admin","aud":"x","nbf":1,"exp":1e300,"jti":"j"}"#,
            #"{"iss":"admin","aud":"x","nbf":1,"exp":3,"jti":"j","sans":["a",null]}"#,
        ]
        for text in documents {
            let data = Data(text.utf8)
            let expected = try? JSONDecoder().decode(ProvisionerTokenClaims.self, from: data)
            let actual = try? ProvisionerTokenClaims.decode(data)
            #expect(actual == expected, "\(text)")
        }
        let first = try ProvisionerTokenClaims.decode(Data(documents[1].utf8))
        #expect(first.aud == ["x", "y"] && first.nbf == 1 && first.exp == 300 && first.sub == "" && first.sans.isEmpty)
        // Out-of-range dates are refused rather than trapping.
        #expect(throws: (any Error).self) { try ProvisionerTokenClaims.decode(Data(documents[7].utf8)) }
    }

    @Test func tokenHeadersDecodeExactlyAsJSONDecoderDoes() {
        for text in [#"{"alg":"ES256","kid":"k","typ":"JWT"}"#, #"{"alg":"ES256"}"#, #"{"alg":"ES256","kid":null}"#,
                     #"{"alg":1}"#, #"{"kid":"k"}"#, #"{"alg":"ES256","x5c":["a","b"]}"#, #"{"alg":"ES256","jwk":{"kty":"EC"}}"#] {
            let data = Data(text.utf8)
            #expect(JWT.Header.decode(data) == (try? JSONDecoder().decode(JWT.Header.self, from: data)), "\(text)")
        }
    }
}

/// A small deterministic generator (SplitMix64) so a failing mutation can be reproduced.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
