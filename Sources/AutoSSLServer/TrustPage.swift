import Foundation

/// The plain page the CA serves at `/` and `/trust`: name, fingerprint, downloads, and the exact
/// command for each OS. No scripts, no external resources.
///
/// The CA's name is HTML-escaped. The URL in the commands comes from the request's Host header, so
/// it is used only when it is a plain `https://host[:port]` (letters, digits, `.`, `-`, `:`, `[`,
/// `]`); anything else is replaced by a placeholder, so a pasted command can never run text a
/// client chose.
enum TrustPage {
    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
    }

    static let placeholderURL = "https://CA-ADDRESS"

    /// `url` when it is `https://` and a host[:port] of safe characters, else `placeholderURL`.
    static func commandURL(_ url: String) -> String {
        let prefix = "https://"
        guard url.hasPrefix(prefix) else { return placeholderURL }
        let host = url.dropFirst(prefix.count)
        guard !host.isEmpty, host.count <= 255, !host.hasPrefix("-"),
              host.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || ".-:[]".unicodeScalars.contains($0)) })
        else { return placeholderURL }
        return url
    }

    static func html(caName: String, fingerprint: String, url: String) -> String {
        let name = escape(caName)
        let base = escape(commandURL(url))
        let colons = stride(from: 0, to: fingerprint.count, by: 2).map { offset -> String in
            let start = fingerprint.index(fingerprint.startIndex, offsetBy: offset)
            return String(fingerprint[start..<fingerprint.index(start, offsetBy: 2)]).uppercased()
        }.joined(separator: ":")
        return """
            <!doctype html>
            <html lang="en"><head><meta charset="utf-8"><title>Trust \(name)</title>
            <style>body{font-family:sans-serif;max-width:50em;margin:2em auto;line-height:1.5}
            code,pre{background:#f3f3f3;padding:.2em .4em;overflow-wrap:anywhere}pre{padding:.8em;white-space:pre-wrap}</style>
            </head><body>
            <h1>\(name)</h1>
            <p>This is the internal certificate authority of this network. Trust its root once on each machine so
            browsers and tools accept internal HTTPS sites.</p>
            <h2>Root fingerprint (SHA-256)</h2>
            <pre id="fingerprint">\(fingerprint)</pre>
            <p>With colons: <code>\(colons)</code>. Compare it with the one your administrator gave you before trusting.</p>
            <h2>Download</h2>
            <ul><li><a href="/roots.pem">root_ca.crt (PEM)</a></li><li><a href="/roots.der">root_ca.cer (DER)</a></li></ul>
            <h2>Linux (any distribution, with auto-ssl)</h2>
            <pre>sudo auto-ssl client trust --ca-url \(base) --fingerprint \(fingerprint)</pre>
            <h2>Debian / Ubuntu (without auto-ssl)</h2>
            <pre>f=$(mktemp) &amp;&amp; curl -fsSk \(base)/roots.pem -o "$f"
            openssl x509 -in "$f" -noout -fingerprint -sha256
            sudo install -m 0644 "$f" /usr/local/share/ca-certificates/auto-ssl-root.crt &amp;&amp; sudo update-ca-certificates</pre>
            <h2>RHEL / Fedora / Rocky / Alma (without auto-ssl)</h2>
            <pre>f=$(mktemp) &amp;&amp; curl -fsSk \(base)/roots.pem -o "$f"
            openssl x509 -in "$f" -noout -fingerprint -sha256
            sudo install -m 0644 "$f" /etc/pki/ca-trust/source/anchors/auto-ssl-root.pem &amp;&amp; sudo update-ca-trust extract</pre>
            <h2>macOS</h2>
            <pre>f=$(mktemp) &amp;&amp; curl -fsSk \(base)/roots.pem -o "$f"
            openssl x509 -in "$f" -noout -fingerprint -sha256
            sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain "$f"</pre>
            <h2>Windows (elevated PowerShell)</h2>
            <pre>curl.exe -fsSk \(base)/roots.der -o $env:TEMP\\root_ca.cer
            certutil -dump $env:TEMP\\root_ca.cer | findstr /i "sha256"
            certutil -addstore Root $env:TEMP\\root_ca.cer</pre>
            <p>Each set of commands downloads the root to a temporary file and prints its fingerprint; nothing is
            trusted before the last line. Run that line only if the fingerprint printed is the one your administrator
            gave you, not only the one on this page (a page can be forged; the fingerprint you were given cannot).</p>
            </body></html>

            """
    }
}
