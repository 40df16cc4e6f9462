import HTTPTypes

/// The headers of every HTML answer of the CA (the trust page, the dashboard and its refusals):
/// nothing runs, nothing is loaded from elsewhere, nothing frames it, forms go to the CA only, and
/// nothing keeps it.
enum HTMLHeaders {
    static let contentSecurityPolicy =
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

    static let fields: HTTPFields = {
        var fields = HTTPFields()
        fields[.contentType] = "text/html; charset=utf-8"
        fields[.cacheControl] = "no-store"
        for (name, value) in [
            ("Content-Security-Policy", contentSecurityPolicy), ("X-Frame-Options", "DENY"),
            ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
        ] {
            if let name = HTTPField.Name(name) { fields[name] = value }
        }
        return fields
    }()
}
