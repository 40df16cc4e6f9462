@testable import AutoSSLACME
import AutoSSLCore
import AutoSSLStore
import Foundation
import Testing

/// The wire objects that write their JSON themselves (`ACMEWritableObject`) write what
/// `ACMEReply.encoder` writes: the same bytes for ordinary text, and for text with control
/// characters (escaped another way) the same values read back.
@Suite struct ACMEWireWritingTests {
    static let texts = ["plain", "https://ca.internal:9443/acme/acme/order/Ab-_1", "quote \" backslash \\ slash /", "ünïcödé ✓ 𝄞", ""]
    static let controls = ["tab\there", "line\nbreak\r", "bell\u{07} nul\u{00} esc\u{1B} del\u{7F}"]

    static func problems(_ text: String) -> [ProblemDocument?] {
        [nil, ProblemDocument(type: "urn:ietf:params:acme:error:" + text, detail: nil, status: nil),
         ProblemDocument(type: "t", detail: text, status: 400, algorithms: ["ES256", text])]
    }

    static func objects(_ text: String) -> [any ACMEWritableObject] {
        var objects: [any ACMEWritableObject] = []
        for problem in problems(text) {
            for status in ACMEChallengeStatus.allCases {
                objects.append(ACMEChallengeObject(type: text, url: text, status: status, token: text, validated: nil, error: problem))
                objects.append(ACMEChallengeObject(type: "http-01", url: "u", status: status, token: "t", validated: text, error: problem))
            }
            for status in ACMEOrderStatus.allCases {
                objects.append(ACMEOrderObject(
                    status: status, expires: text, identifiers: [ACMEIdentifier(type: "dns", value: text), ACMEIdentifier(type: text, value: "1")],
                    authorizations: [text, "b"], finalize: text, notBefore: nil, notAfter: text, certificate: nil, error: problem))
                objects.append(ACMEOrderObject(
                    status: status, expires: "e", identifiers: [], authorizations: [], finalize: "f", notBefore: text, notAfter: nil,
                    certificate: text, error: problem))
            }
            if let problem { objects.append(problem) }
        }
        let challenge = ACMEChallengeObject(type: "dns-01", url: text, status: .pending, token: text, validated: nil, error: nil)
        for status in ACMEAuthorizationStatus.allCases {
            for wildcard in [nil, true, false] {
                objects.append(ACMEAuthorizationObject(
                    identifier: ACMEIdentifier(type: "dns", value: text), status: status, expires: text, challenges: [challenge, challenge],
                    wildcard: wildcard))
            }
            objects.append(ACMEAuthorizationObject(identifier: ACMEIdentifier(type: "ip", value: "::1"), status: status, expires: "x", challenges: [], wildcard: nil))
        }
        return objects
    }

    @Test func theBytesAreWhatJSONEncoderWrites() throws {
        var count = 0
        for text in Self.texts {
            for object in Self.objects(text) {
                let expected = Array(try ACMEReply.encoder.encode(object))
                let actual = ACMEReply.written(object)
                #expect(actual == expected, "\(String(decoding: actual, as: UTF8.self)) != \(String(decoding: expected, as: UTF8.self))")
                count += 1
            }
        }
        #expect(count > 300)
    }

    @Test func controlCharactersReadBackTheSame() throws {
        for text in Self.controls {
            for object in Self.objects(text) {
                let fromEncoder = try JSONSerialization.jsonObject(with: try ACMEReply.encoder.encode(object)) as? NSDictionary
                let fromWriter = try JSONSerialization.jsonObject(with: Data(ACMEReply.written(object))) as? NSDictionary
                #expect(fromEncoder != nil && fromWriter == fromEncoder, "\(text.debugDescription)")
            }
        }
    }

    @Test func aProblemReplyIsTheEncodersDocument() throws {
        let problem = ACMEProblem(.badSignatureAlgorithm, "no \"RS1\" / here", algorithms: ["ES256", "RS256"])
        let reply = ACMEReply.problem(problem)
        #expect(reply.body == Array(try ACMEReply.encoder.encode(ProblemDocument(problem))))
        #expect(reply.contentType == "application/problem+json")
    }
}
