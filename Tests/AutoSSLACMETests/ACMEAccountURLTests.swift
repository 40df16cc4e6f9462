@testable import AutoSSLACME
import Testing

@Suite struct ACMEAccountURLTests {
    let base = "https://ca-b.internal:9000/acme/acme"

    @Test func anAccountURLOfThisProvisionerAtAnyAddressOfTheCANamesTheAccount() {
        #expect(ACMEAuthority.accountID(kid: base + "/account/abc", base: base) == "abc")
        // Made through replica A (or a shared name), used on replica B: the key's signature proves the account.
        #expect(ACMEAuthority.accountID(kid: "https://10.0.0.5:9000/acme/acme/account/abc", base: base) == "abc")
    }

    @Test func otherURLsAreNotAccounts() {
        for kid in [
            "https://10.0.0.5:9000/acme/other/account/abc", "http://10.0.0.5:9000/acme/acme/account/abc",
            "https://10.0.0.5:9000/acme/acme/account/", "https://10.0.0.5:9000/acme/acme/account/a/b",
            "https://10.0.0.5:9000/acme/acme/account/abc?x=1", "abc", "", "https://h/acme/acme/order/abc",
        ] {
            #expect(ACMEAuthority.accountID(kid: kid, base: base) == nil, "\(kid)")
        }
    }
}
