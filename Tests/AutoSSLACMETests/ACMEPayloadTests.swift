import AutoSSLCore
import Foundation
import Testing

@testable import AutoSSLACME

/// The flat payloads read without JSONDecoder give what JSONDecoder gives, and leave every other
/// shape to it (so its errors are the ones a client sees).
struct ACMEPayloadTests {
    static func fast<T: FlatPayload>(_ type: T.Type, _ text: String) -> T? {
        FlatJSON.object(Data(text.utf8)).flatMap(T.init(flat:))
    }

    @Test func flatPayloadsReadAsJSONDecoderReadsThem() throws {
        for text in [#"{"csr":"MIIB.abc_-"}"#, #"{ "csr" : "x" , "extra": [ "a" ], "n": 1 }"#, #"{"csr":"a\/b"}"#] {
            let decoded = try JSONDecoder().decode(FinalizePayload.self, from: Data(text.utf8))
            #expect(Self.fast(FinalizePayload.self, text)?.csr == decoded.csr, "\(text)")
        }
        // Missing, of another type, duplicated, nested, not an object: JSONDecoder's to decide.
        for text in [#"{}"#, #"{"csr":1}"#, #"{"csr":null}"#, #"{"csr":"a","csr":"b"}"#, #"{"csr":"a","x":{"y":1}}"#, #"[]"#, ""] {
            #expect(Self.fast(FinalizePayload.self, text) == nil, "\(text)")
        }
        let status = #"{"status":"deactivated","contact":[]}"#
        #expect(Self.fast(StatusPayload.self, status)?.status == (try JSONDecoder().decode(StatusPayload.self, from: Data(status.utf8))).status)
        #expect(Self.fast(StatusPayload.self, #"{"status":false}"#) == nil)
    }
}
