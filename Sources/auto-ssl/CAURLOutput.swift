import ArgumentParser
import AutoSSLClient
import AutoSSLIO

/// `--ca-url`, given once per URL of the CA (its replicas); `CAFailover` tries them in order.
enum CAURLHelp {
    static let required = ArgumentHelp(
        "CA URL, e.g. https://ca.internal:9000. Repeat it for each of the CA's URLs (replicas): they are tried in order, the next one when a URL does not answer.",
        valueName: "url")
    static let optional = ArgumentHelp(
        "CA URL, e.g. https://ca.internal:9000 (repeat it for each of the CA's URLs: they are tried in order).",
        valueName: "url")
}

extension Output {
    /// A warning for each URL that did not answer and, when there was a choice, which one did.
    static func contact(_ contact: CAContact) {
        skippedURLs(contact)
        if contact.choices > 1 { progress("Answered by the CA at \(contact.url).") }
    }

    /// A warning (stderr) for each URL that did not answer before the one that did.
    static func skippedURLs(_ contact: CAContact) {
        for skipped in contact.skipped {
            warning("\(skipped.url): \(skipped.failure); tried the next URL")
        }
    }
}
