import AutoSSLCore
import Testing

/// Clients take a refusal for a revocation only by the CA's own phrases, never by the word alone.
@Suite struct RenewalRefusalTests {
    @Test func onlyTheCAsRevocationPhrasesCountNotTheWordInANameOrReason() {
        #expect(RenewalRefusal.isRevocation(RenewalRefusal.revokedCertificate + ": certificate 1234 was revoked (key compromise)"))
        #expect(RenewalRefusal.isRevocation(RenewalRefusal.revokedKey))
        #expect(!RenewalRefusal.isRevocation("names not allowed by provisioner admin: unrevoked-api.example.com"))
        #expect(!RenewalRefusal.isRevocation("the provisioner revoked-hosts, which this CA no longer has, issued it"))
    }
}
