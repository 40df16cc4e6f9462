import AutoSSLCore
import Foundation

/// The JSON the stores keep in text columns, read back: a certificate's names, an account's
/// contacts, an order's identifiers, a replica's addresses. Several of them are read on every
/// ACME request, so `FlatJSON` reads them first (what the stores write always has its shape);
/// anything it steps aside from goes through JSONDecoder, so the result is JSONDecoder's either
/// way. Text neither can read gives an empty list: the column was written by the store itself.
enum StoredJSON {
    static func strings(_ text: String) -> [String] {
        FlatJSON.strings(text) ?? decoded(text)
    }

    static func identifiers(_ text: String) -> [ACMEIdentifier] {
        if let objects = FlatJSON.objects(text) {
            var identifiers: [ACMEIdentifier] = []
            identifiers.reserveCapacity(objects.count)
            for object in objects {
                // Only the two members, as strings: anything else is JSONDecoder's to judge.
                guard object.count == 2, let type = object.string("type"), let value = object.string("value") else {
                    return decoded(text)
                }
                identifiers.append(ACMEIdentifier(type: type, value: value))
            }
            return identifiers
        }
        return decoded(text)
    }

    private static func decoded<Element: Decodable>(_ text: String) -> [Element] {
        (try? JSONDecoder().decode([Element].self, from: Data(text.utf8))) ?? []
    }

    /// A list of strings as the stores write it (by hand: a certificate's names are written at
    /// every issuance).
    static func encode(_ strings: [String]) -> String {
        JSONText.array(strings.map(JSONText.quote))
    }

    static func encode(_ identifiers: [ACMEIdentifier]) -> String {
        JSONText.array(identifiers.map { JSONText.object([("type", JSONText.quote($0.type)), ("value", JSONText.quote($0.value))]) })
    }

    /// A LIKE pattern (`\` escapes) matching a `names` column that carries `name`: `encode`
    /// writes a name that needs no JSON escape (every name the CA issues for) as `"name"`.
    static func likePattern(forName name: String) -> String {
        var escaped = ""
        for character in name {
            if character == "%" || character == "_" || character == "\\" { escaped.append("\\") }
            escaped.append(character)
        }
        return "%\"" + escaped + "\"%"
    }
}
