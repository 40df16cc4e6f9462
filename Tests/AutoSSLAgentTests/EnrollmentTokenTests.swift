import AutoSSLAgent
import AutoSSLCore
import Foundation
import Testing

/// What `server enroll --token-file` checks before anything is sent.
@Suite struct EnrollmentTokenTests {
    let now = Date(timeIntervalSince1970: 1_900_000_000)

    func token(sans: [String], lifetime: Int64 = 3600, issued: Date? = nil) throws -> String {
        let claims = ProvisionerTokenClaims.oneTime(
            provisioner: "admin", audience: ["https://ca.internal:9000/1.0/sign"], names: sans, lifetime: lifetime,
            rootFingerprint: String(repeating: "a", count: 64), now: issued ?? now)
        return try JWT.sign(payload: claims, kid: "k", key: ECJWK.generatePrivate().privateKey())
    }

    @Test func theTokensNamesAreUsedAndOtherNamesRefused() throws {
        let read = try EnrollmentToken(text: try token(sans: ["web.internal", "10.0.0.5"]) + "\n", now: now)
        #expect(read.claims.iss == "admin")
        #expect(try read.names(given: nil).map(\.description) == ["web.internal", "10.0.0.5"])
        #expect(try read.names(given: [try SubjectName(parsing: "10.0.0.5"), .dns("web.internal")]).count == 2, "same set, any order")
        #expect(throws: AutoSSLError.self) { try read.names(given: [.dns("other.internal")]) }
    }

    @Test func expiredEmptyAndForeignTokensAreRefused() throws {
        let expired = try token(sans: ["web.internal"], lifetime: 60, issued: now.addingTimeInterval(-120))
        #expect(throws: AutoSSLError.self) { try EnrollmentToken(text: expired, now: now) }
        #expect(throws: AutoSSLError.self) { try EnrollmentToken(text: try token(sans: []), now: now) }
        for text in ["", "not a token", "a.b.c", String(repeating: "x", count: 20_000)] {
            #expect(throws: AutoSSLError.self) { try EnrollmentToken(text: text, now: now) }
        }
    }
}
