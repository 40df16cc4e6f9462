import AutoSSLCore
import AutoSSLHost
import Foundation

/// The web servers `server enroll --reload` knows: how to reload each one after a renewal, and
/// the lines that point it at the certificate files.
public enum WebServer: String, CaseIterable, Sendable {
    case nginx
    case apache
    case caddy
    case haproxy

    public init(parsing text: String) throws {
        guard let server = WebServer(rawValue: text.lowercased()) else {
            throw AutoSSLError.invalidArgument("--reload must be nginx, apache, caddy or haproxy, not \"\(text)\"")
        }
        self = server
    }

    /// Reload (not restart): the server keeps its connections and picks up the new files.
    public func reloadCommand(systemd: Bool, family: OSFamily) -> String {
        switch self {
        case .nginx:
            return systemd ? "systemctl reload nginx" : "nginx -s reload"
        case .apache:
            let unit = family == .rhel ? "httpd" : "apache2"
            return systemd ? "systemctl reload \(unit)" : "apachectl -k graceful"
        case .caddy:
            return systemd ? "systemctl reload caddy" : "caddy reload --config /etc/caddy/Caddyfile"
        case .haproxy:
            return systemd ? "systemctl reload haproxy" : "kill -USR2 $(cat /run/haproxy.pid)"
        }
    }

    /// HAProxy reads key and chain from one file.
    public var wantsCombinedFile: Bool { self == .haproxy }

    /// The configuration lines that make this server use the enrolled files.
    public func snippet(certPath: String, keyPath: String, combinedPath: String?) -> String {
        switch self {
        case .nginx:
            return """
                server {
                    listen 443 ssl;
                    ssl_certificate     \(certPath);
                    ssl_certificate_key \(keyPath);
                }
                """
        case .apache:
            return """
                <VirtualHost *:443>
                    SSLEngine on
                    SSLCertificateFile    \(certPath)
                    SSLCertificateKeyFile \(keyPath)
                </VirtualHost>
                """
        case .caddy:
            return """
                your.site.internal {
                    tls \(certPath) \(keyPath)
                }
                """
        case .haproxy:
            return """
                frontend https
                    bind :443 ssl crt \(combinedPath ?? certPath)
                """
        }
    }
}
