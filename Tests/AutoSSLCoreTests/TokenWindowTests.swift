import AutoSSLCore
import Foundation
import Testing

@Suite struct TokenWindowTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)
    func check(_ nbf: Int64, _ exp: Int64) -> TokenWindow.Refusal? {
        TokenWindow.check(nbf: nbf, exp: exp, now: now, skew: 60, maximumLifetime: 300)
    }

    @Test func acceptsAShortTokenValidNowWithinTheSkew() {
        #expect(check(1_800_000_000, 1_800_000_300) == nil)
        #expect(check(1_800_000_060, 1_800_000_120) == nil)
        #expect(check(1_799_999_700, 1_799_999_941) == nil)
    }

    @Test func refusesFutureExpiredAndLongTokens() {
        #expect(check(1_800_000_061, 1_800_000_200) == .notYetValid)
        #expect(check(1_799_999_000, 1_799_999_940) == .expired)
        #expect(check(1_800_000_000, 1_800_000_301) == .lifetimeTooLong(maximumSeconds: 300))
        #expect(check(1_800_000_000, 1_800_000_000) == .lifetimeTooLong(maximumSeconds: 300))
    }

    @Test func extremeTimesAreRefusedWithoutOverflow() {
        let extremes: [Int64] = [.min, .min + 1, -1, 253_402_300_800, .max - 1, .max]
        for nbf in extremes + [1_800_000_000] {
            for exp in extremes + [1_800_000_100] where !(nbf == 1_800_000_000 && exp == 1_800_000_100) {
                #expect(check(nbf, exp) != nil, "nbf \(nbf) exp \(exp)")
            }
        }
        #expect(TokenWindow.check(nbf: 0, exp: 1, now: Date(timeIntervalSince1970: .infinity), skew: 60, maximumLifetime: 300) != nil)
        #expect(TokenWindow.check(nbf: 0, exp: 1, now: Date(timeIntervalSince1970: .nan), skew: 60, maximumLifetime: 300) != nil)
    }

    @Test func numericDatesOutsideYearsNineteenSeventyToNineThousandNineHundredNinetyNineAreRefused() {
        #expect(NumericDate.seconds(1_800_000_000.9) == 1_800_000_000)
        #expect(NumericDate.seconds(0.0) == 0)
        #expect(NumericDate.seconds(253_402_300_799.5) == 253_402_300_799)
        for value in [-1, 253_402_300_800, 1e19, -9e18, 9e18, .infinity, -.infinity, .nan, Double(Int64.max)] {
            #expect(NumericDate.seconds(value) == nil, "\(value)")
        }
    }

    @Test func certificateTokenClaimsWithHugeTimesAreAnErrorNotATrap() {
        for json in [
            #"{"aud":"x","nbf":1,"exp":1e19,"jti":"j"}"#, #"{"aud":"x","nbf":-9e18,"exp":9e18,"jti":"j"}"#,
            #"{"aud":"x","iat":1e300,"exp":3,"jti":"j"}"#, #"{"aud":"x","nbf":1,"iat":-1e19,"exp":3,"jti":"j"}"#,
        ] {
            #expect(throws: (any Error).self, "\(json)") { try JSONDecoder().decode(CertificateTokenClaims.self, from: Data(json.utf8)) }
        }
        let ok = try? JSONDecoder().decode(CertificateTokenClaims.self, from: Data(#"{"aud":"x","iat":5.5,"exp":9,"jti":"j"}"#.utf8))
        #expect(ok?.nbf == 5 && ok?.exp == 9)
    }
}

@Suite struct ValidationAddressPolicyTests {
    func ip(_ text: String) -> IPAddress { IPAddress(text)! }

    @Test func refusesLoopbackLinkLocalMulticastUnspecifiedAndOwnAddressesByDefault() {
        let policy = ValidationAddressPolicy(ownAddresses: [IPAddress("192.0.2.10")!])
        for text in ["127.0.0.1", "127.8.9.10", "::1", "169.254.169.254", "fe80::1", "224.0.0.1", "ff02::1", "0.0.0.0", "::",
                     "255.255.255.255", "192.0.2.10", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::ffff:192.0.2.10"] {
            #expect(policy.refusal(for: ip(text)) != nil, "\(text)")
        }
        for text in ["192.0.2.11", "10.1.2.3", "2001:db8::1", "8.8.8.8"] {
            #expect(policy.refusal(for: ip(text)) == nil, "\(text)")
        }
    }

    @Test func allowedRangesOpenWhatIsRefusedByDefault() throws {
        let policy = ValidationAddressPolicy(allowed: [try IPRange(parsing: "127.0.0.0/8")], ownAddresses: [ip("127.0.0.1")])
        #expect(policy.refusal(for: ip("127.0.0.1")) == nil)
        #expect(policy.refusal(for: ip("::ffff:127.0.0.1")) == nil)
        #expect(policy.refusal(for: ip("::1")) != nil)
    }
}

@Suite struct IPAddressTextTests {
    @Test func aNULInsideTheTextIsNotAnAddress() {
        #expect(IPAddress("10.0.0.5\u{0}junk") == nil)
        #expect(IPAddress("::1\u{0}") == nil)
        #expect(IPAddress(String(repeating: "1", count: 100)) == nil)
        #expect(IPAddress("10.0.0.5")?.bytes == [10, 0, 0, 5])
    }
}

@Suite struct DottedQuadTypoTests {
    @Test func numbersAndDotsThatAreNotAnAddressAreRefusedNotTakenAsDNSNames() {
        for text in ["10.0.0.256", "300.1.1.1", "999.999.999.999", "1.2.3.4.5", "1.2.3", "10..0.1", "host.123"] {
            #expect(throws: AutoSSLError.self, "\(text)") { try SubjectName(parsing: text) }
        }
        #expect((try? SubjectName(parsing: "10.0.0.255")) == .ip(IPAddress("10.0.0.255")!))
        #expect((try? SubjectName(parsing: "web01.internal")) == .dns("web01.internal"))
        #expect((try? SubjectName(parsing: "123.example")) == .dns("123.example"))
        #expect(throws: AutoSSLError.self) { try SubjectName(parsing: "web.1") }
    }

    @Test func theErrorSaysItLooksLikeAnAddress() {
        do {
            _ = try SubjectName(parsing: "10.0.0.256")
            Issue.record("accepted")
        } catch let error as AutoSSLError {
            #expect(error.kind == .invalidArguments && error.message.contains("looks like an IPv4 address"))
        } catch {
            Issue.record("\(error)")
        }
    }
}
