@testable import AutoSSLACME
import AutoSSLStore
import Foundation
import Testing

/// On a database replicas share, work found in progress may be another replica's: it is taken over
/// only once it has stayed in progress for `staleAfter`.
@Suite struct StaleWorkTests {
    @Test func anOrderLeftInProcessingIsTakenOverOnlyWhenStale() async throws {
        let fixture = try await ACMEFixture()
        let (account, _) = try await fixture.newAccount()
        let created = try await fixture.newOrder(account, names: ["stale.example.test"])
        let orderID = String(created.finalize.split(separator: "/").dropLast().last ?? "")
        #expect(try await fixture.validate(account, order: created, orderID: orderID).status == .ready)
        // As an earlier version finalized: processing while it signs (a replica that stopped then).
        #expect(try await fixture.database.acme.setOrderStatus(id: orderID, from: .ready, to: .processing, error: nil))

        let start = Date()
        await fixture.acme.recoverStaleWork(now: start)
        await fixture.acme.recoverStaleWork(now: start.addingTimeInterval(ACMEAuthority.staleAfter - 1))
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .processing, "a finalization that may be running is left alone")
        await fixture.acme.recoverStaleWork(now: start.addingTimeInterval(ACMEAuthority.staleAfter))
        #expect(try await fixture.database.acme.order(id: orderID)?.status == .ready, "one stuck for long goes back to ready")
    }
}
