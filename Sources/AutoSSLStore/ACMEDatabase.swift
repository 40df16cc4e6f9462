import Foundation

/// Where ACME state lives: accounts, orders, authorizations, challenges, external account binding
/// keys, spent nonces and the server's ACME secrets, shared by every replica of the CA.
///
/// The contract (checked for every implementation by the shared `ACMEDatabaseContract` tests):
/// - Reads never write. Derived states (an order that is ready because its authorizations are
///   valid, an authorization past its expiry) are the ACME authority's to compute.
/// - Every change is atomic and conditional: it names the state it changes from and reports
///   whether it applied, so concurrent requests on the same object cannot overwrite each other and
///   a transition happens exactly once.
/// - Every write has happened when it returns: a crash of the process loses none. Most are also
///   on disk by then. The steps of an order in flight (creating it, starting and recording a
///   validation, counting its attempts, marking it ready) may be
///   committed without waiting for the disk (SQLite: `synchronous=NORMAL`): a power loss can lose
///   the last of them, and they are on disk with the next durable write. A lost step leaves the
///   order where a client retries or the CA resumes (docs/database.md); accounts, the certificate,
///   the order's `valid` and revocations are always durable.
public protocol ACMEDatabase: Sendable {
    // MARK: Server secrets and nonces

    /// A random secret kept in the database (so every replica shares it), created on first use.
    func key(named name: String, size: Int) async throws -> Data
    /// Records a nonce as spent until `expiresAt`; false when it was spent before.
    func consumeNonce(_ nonce: String, expiresAt: Date) async throws -> Bool

    // MARK: Accounts

    /// Creates the account, binding `account.eabKeyID` at the same time. If the key already has an
    /// account (a concurrent newAccount), that one is returned with `created == false`. Throws
    /// `ACMEDatabaseError.eabKeyAlreadyUsed` (and creates nothing) when the binding key is taken.
    func createAccount(_ account: ACMEAccountRecord) async throws -> (ACMEAccountRecord, created: Bool)
    func account(id: String) async throws -> ACMEAccountRecord?
    /// The account `id` and whether its key is one a revocation cut off (`revoked_keys`, the
    /// certificate store's table), which every account-signed request needs: on SQLite in one
    /// look-up. `keyHash` gives the hash a revocation records the account's key under.
    func account(id: String, keyHash: (ACMEAccountRecord) throws -> String) async throws -> (account: ACMEAccountRecord, keyRevoked: Bool)?
    func account(provisioner: String, thumbprint: String) async throws -> ACMEAccountRecord?
    /// Replaces the contacts of a valid account; returns the account as it is afterwards (nil: no such account).
    func updateAccountContact(id: String, contact: [String]) async throws -> ACMEAccountRecord?
    /// valid → deactivated, with the account's pending and valid authorizations (RFC 8555 §7.3.6),
    /// in one transaction; returns the account as it is afterwards (nil: no such account).
    func deactivateAccount(id: String) async throws -> ACMEAccountRecord?
    /// Key rollover, as a compare-and-swap: the key changes only while the account is valid and its
    /// key is still `oldThumbprint` (the one the request was signed with); false, with nothing
    /// changed, when it is not (a concurrent rollover or deactivation came first). Throws
    /// `ACMEDatabaseError.accountKeyInUse` when the new key belongs to another account of the
    /// provisioner, `.notFound` when there is no such account.
    func changeAccountKey(id: String, oldThumbprint: String, thumbprint: String, jwk: String) async throws -> Bool

    // MARK: Orders

    /// The order, its authorizations and their challenges, in one transaction; throws
    /// `ACMEDatabaseError.tooManyOpenOrders` (and creates nothing) when the account already has
    /// `openOrderLimit` orders that are pending, ready or processing and not expired at the
    /// order's creation. (On PostgreSQL, concurrent orders of one account may pass the count
    /// together: the limit bounds what an account holds, give or take its requests in flight.)
    func createOrder(_ order: ACMEOrderRecord, authorizations: [ACMEAuthorizationRecord], openOrderLimit: Int) async throws
    func order(id: String) async throws -> ACMEOrderRecord?
    /// The ids of an account's orders, oldest first.
    func orderIDs(accountID: String) async throws -> [String]
    /// The order that produced a certificate.
    func order(certificateSerial: String) async throws -> ACMEOrderRecord?
    /// from → to (with `error`, a problem document, when given); false when the order was not in `from`.
    func setOrderStatus(id: String, from: ACMEOrderStatus, to: ACMEOrderStatus, error: String?) async throws -> Bool
    /// Every order in `processing` (a finalization a crash interrupted) back to `ready`; returns how many.
    /// Only for a database that one process uses: on a shared one, another replica's finalization
    /// may be running.
    func resetInterruptedFinalizations() async throws -> Int
    /// The orders in `processing` now (finalizations running, or left by a crash).
    func ordersInProcessing() async throws -> [String]
    /// Whether other processes (replicas) use this database at the same time: then work found in
    /// progress may be theirs, and only work stuck for long is taken over.
    var sharedByReplicas: Bool { get }

    // MARK: Authorizations and challenges

    func authorization(id: String) async throws -> ACMEAuthorizationRecord?
    /// The authorizations of an order, in the order's order.
    func authorizations(orderID: String) async throws -> [ACMEAuthorizationRecord]
    /// Any of `from` → to; false when the authorization was in none of them. The order is left
    /// alone: a client's deactivation is `deactivateAuthorization`.
    func setAuthorizationStatus(id: String, from: Set<ACMEAuthorizationStatus>, to: ACMEAuthorizationStatus) async throws -> Bool
    /// pending or valid → deactivated (RFC 8555 §7.5.2), and in the same transaction its order, if
    /// pending or ready, → invalid with `orderError` (a problem document): an order cannot be
    /// finalized for an identifier whose authorization the client gave up, and no longer counts as
    /// open. False, with nothing written, when the authorization was neither pending nor valid.
    func deactivateAuthorization(id: String, orderError: String?) async throws -> Bool
    /// A challenge and its authorization.
    func challenge(id: String) async throws -> (ACMEChallengeRecord, ACMEAuthorizationRecord)?
    /// pending → processing, only while its authorization is pending, with its first validation
    /// attempt counted in the same write (as `beginValidationAttempt` would); false otherwise.
    func startValidation(challengeID: String) async throws -> Bool
    /// Counts one more validation attempt of a challenge in processing, durably, unless it already
    /// had `maximum`: false then (and for a challenge no longer in processing).
    func beginValidationAttempt(challengeID: String, maximum: Int) async throws -> Bool
    /// Keeps the last attempt's error (problem document JSON) on a challenge still in processing.
    func noteValidationAttempt(challengeID: String, error: String) async throws
    /// Writes a validation's outcome (see `ACMEValidationOutcome`); false when the challenge was no
    /// longer in processing (nothing is written then). The order becomes invalid only when the
    /// outcome changed its authorization: a failed challenge of an authorization that another
    /// challenge made valid meanwhile leaves the order as it is.
    func recordValidationOutcome(_ outcome: ACMEValidationOutcome) async throws -> Bool
    /// Challenges left in processing (by a restart), to validate again.
    func challengesInProcessing() async throws -> [String]

    // MARK: External account binding

    func addEABKey(kid: String, provisioner: String, key: Data, now: Date) async throws
    /// The HMAC key of a binding key of `provisioner` that no account uses yet.
    func unboundEABKey(kid: String, provisioner: String) async throws -> Data?
    func eabKeys(provisioner: String) async throws -> [ACMEEABKeyInfo]
    /// Deletes a binding key that no account uses yet. A key already bound is left in place
    /// (`.bound`): the account it bound stays valid whatever happens to the key, so deleting it
    /// would only lose the record of which key created the account.
    func removeEABKey(kid: String) async throws -> ACMEEABKeyRemoval

    // MARK: Clean-up

    /// Deletes orders (with their authorizations and challenges) that expired before `date` and never
    /// produced a certificate; returns how many.
    func purge(expiredBefore date: Date) async throws -> Int
}

extension ACMEDatabase {
    /// A finalization refused for good (the CSR, the policy, a revoked key): ready → invalid with
    /// the problem document. (A finalization writes nothing before its certificate: the
    /// certificate's record moves the order from ready to valid, `CertificateDatabase.recordIssuance`.)
    public func refuseFinalization(orderID: String, problem: String) async throws {
        _ = try await setOrderStatus(id: orderID, from: .ready, to: .invalid, error: problem)
    }
}

extension ACMEDatabase {
    /// An order with no limit on the account's open orders (migrations, tests).
    public func createOrder(_ order: ACMEOrderRecord, authorizations: [ACMEAuthorizationRecord]) async throws {
        try await createOrder(order, authorizations: authorizations, openOrderLimit: .max)
    }
}
