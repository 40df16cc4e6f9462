import AutoSSLClient
import AutoSSLCore
import Foundation

extension ServerAgent {
    /// `server set-ca-url`: after the CA moved, renewal goes to `urls`. The CA must stay the same:
    /// `fingerprint` must be the one recorded at enrollment, and every new URL must present that
    /// root (and a certificate naming its host) before anything is written.
    public func setCAURLs(_ urls: [String], fingerprint: String) async throws -> [String] {
        var enrollment = try enrollment()
        let given = try Fingerprint.normalise(fingerprint)
        guard given == (try? Fingerprint.normalise(enrollment.fingerprint)) else {
            throw AutoSSLError(
                .trustFailure, "the fingerprint given is not the one of the CA this host is enrolled with; nothing was changed",
                hint: "to move this host to another CA, enroll it there (`server enroll`)")
        }
        let endpoints = try CAEndpoints(urls)
        for url in endpoints.urls {
            _ = try await CAClient.withConnection(to: try CAEndpoints([url]), fingerprint: given) { _ in () }
        }
        enrollment.setURLs(endpoints.urls)
        try saveEnrollment(enrollment)
        return endpoints.urls
    }
}
