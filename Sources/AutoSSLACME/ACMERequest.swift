import AutoSSLCA
import AutoSSLConfig
import AutoSSLCore
import AutoSSLStore
import Foundation

/// Where a request came in: the provisioner, the URLs to hand out, who asked. Built by the HTTP
/// layer from the request line and Host header; everything else about HTTP stays there.
public struct ACMEEndpoint: Sendable {
    public var provisioner: ACMEProvisionerSettings
    /// `https://HOST/acme/NAME`.
    public var base: String
    /// The URL of this request (what the JWS must name).
    public var url: String
    /// The `:id` of the route, when it has one.
    public var id: String?
    public var remote: String?
    /// The Host header the client used (for the directory's website).
    public var requestHost: String?

    public init(provisioner: ACMEProvisionerSettings, base: String, url: String, id: String?, remote: String?, requestHost: String?) {
        self.provisioner = provisioner
        self.base = base
        self.url = url
        self.id = id
        self.remote = remote
        self.requestHost = requestHost
    }

    public var directoryURL: String { base + "/directory" }
    public func accountURL(_ id: String) -> String { base + "/account/" + id }
    public func orderURL(_ id: String) -> String { base + "/order/" + id }
    public func authorizationURL(_ id: String) -> String { base + "/authz/" + id }
    public func challengeURL(_ id: String) -> String { base + "/chall/" + id }
    public func certificateURL(_ id: String) -> String { base + "/cert/" + id }
}

/// An authenticated POST: the verified JWS, and the account when it was signed with `kid`.
public struct ACMERequest: Sendable {
    public var endpoint: ACMEEndpoint
    public var jws: ACMEJWS
    public var account: ACMEAccountRecord?
    public var key: ACMEAccountKey

    public var isPostAsGet: Bool { jws.payloadB64.isEmpty }

    func requireAccount() throws -> ACMEAccountRecord {
        guard let account else {
            throw ACMEProblem(.malformed, "this request must be signed with the account key and carry \"kid\"")
        }
        return account
    }

    func payload<T: Decodable>(_ type: T.Type) throws -> T {
        if let flat = type as? any FlatPayload.Type, let object = FlatJSON.object(jws.payload), let value = flat.init(flat: object) as? T {
            return value
        }
        do {
            return try JSONDecoder().decode(type, from: jws.payload)
        } catch let problem as ACMEProblem {
            throw problem
        } catch {
            throw ACMEProblem(.malformed, "the JWS payload is not the expected JSON object")
        }
    }
}
