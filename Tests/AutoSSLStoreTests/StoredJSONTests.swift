import Foundation
import Testing

@testable import AutoSSLStore

/// The lists the stores keep as JSON text read back as JSONDecoder reads them, whichever path
/// reads them, including text written by earlier versions (JSONEncoder escaped `/`).
struct StoredJSONTests {
    @Test func writtenListsReadBackUnchanged() {
        let identifiers = [
            ACMEIdentifier(type: "dns", value: "a.internal"), ACMEIdentifier(type: "dns", value: "*.b.internal"),
            ACMEIdentifier(type: "ip", value: "fd00::1"), ACMEIdentifier(type: "dns", value: "quote\"back\\slash/é"),
        ]
        #expect(StoredJSON.identifiers(StoredJSON.encode(identifiers)) == identifiers)
        #expect(StoredJSON.identifiers(StoredJSON.encode([ACMEIdentifier]())) == [])
        let strings = ["mailto:a@b.internal", "", "tab\tand\u{1}control", "é🔐"]
        #expect(StoredJSON.strings(StoredJSON.encode(strings)) == strings)
        #expect(StoredJSON.encode(identifiers.prefix(1).map { $0 }) == #"[{"type":"dns","value":"a.internal"}]"#)
    }

    @Test func textOfEveryOtherShapeReadsAsJSONDecoderReadsIt() throws {
        let identifierTexts = [
            #"[{"type":"dns","value":"a\/b.internal"}]"#,  // JSONEncoder's escaped slash
            #"[{"type":"dns","value":"a.internal","extra":1}]"#,  // a member JSONDecoder ignores
            #"[{"value":"a.internal","type":"dns"}]"#,
        ]
        for text in identifierTexts {
            #expect(StoredJSON.identifiers(text) == (try JSONDecoder().decode([ACMEIdentifier].self, from: Data(text.utf8))), "\(text)")
        }
        #expect(StoredJSON.identifiers(#"[{"type":"dns"}]"#) == [])
        #expect(StoredJSON.identifiers("not json") == [])
        #expect(StoredJSON.strings(#"["a\/b"]"#) == ["a/b"])
        #expect(StoredJSON.strings("[1]") == [])
        #expect(StoredJSON.strings("") == [])
    }
}
