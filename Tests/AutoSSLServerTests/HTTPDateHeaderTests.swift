@testable import AutoSSLServer
import Foundation
import Testing

/// The `Date` header every listener sends.
@Suite struct HTTPDateHeaderTests {
    @Test func formatsIMFFixdateAsRFC9110Shows() {
        #expect(HTTPDateHeader.format(784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDateHeader.format(0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDateHeader.format(951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
    }

    @Test func agreesWithFoundationsFormatterForTheCurrentTime() {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        let before = formatter.string(from: Date())
        let ours = HTTPDateHeader.now()
        let after = formatter.string(from: Date())
        #expect(ours == before || ours == after)
    }
}
