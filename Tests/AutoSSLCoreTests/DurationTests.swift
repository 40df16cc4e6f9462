import AutoSSLCore
import Testing

@Suite struct DurationTests {
    @Test(arguments: [
        ("168h", 604_800), ("30m", 1_800), ("7d", 604_800), ("1h30m", 5_400), ("90s", 90), ("1.5h", 5_400),
        ("720h", 2_592_000), ("1d12h", 129_600), (" 5m ", 300),
    ] as [(String, Int64)])
    func parsesGoAndDayForms(text: String, seconds: Int64) throws {
        #expect(try CertificateDuration(parsing: text).seconds == seconds)
    }

    @Test(arguments: ["", "7", "h", "7x", "-5m", "7 d", "1h 30m", "1e3h", "..5h", "5000d", "7D"])
    func refusesMalformed(text: String) {
        #expect(throws: AutoSSLError.self) { try CertificateDuration(parsing: text) }
    }

    @Test func errorsAreInvalidArguments() {
        do {
            _ = try CertificateDuration(parsing: "soon")
            Issue.record("parsed nonsense")
        } catch let error as AutoSSLError {
            #expect(error.kind == .invalidArguments)
            #expect(error.message.contains("soon"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func rendersShortestGoForm() throws {
        #expect(CertificateDuration.hours(168).description == "168h")
        #expect(CertificateDuration.minutes(90).description == "1h30m")
        #expect(CertificateDuration(seconds: 45).description == "45s")
        #expect(CertificateDuration(seconds: 0).description == "0s")
        #expect(try CertificateDuration(parsing: CertificateDuration.days(30).description) == .days(30))
        #expect(CertificateDuration.days(7).humanReadable == "7 days")
        #expect(CertificateDuration.minutes(5).humanReadable == "5 minutes")
    }
}
