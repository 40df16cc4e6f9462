import AutoSSLCore
import AutoSSLStore
import Foundation
import Logging
import Synchronization
import X509

/// The OCSP responder (RFC 6960, in the RFC 5019 profile's spirit): answers from the certificate
/// store, signed by the intermediate that issued the certificate (the current one, or one archived
/// by `ca rotate-intermediate` whose key `ca serve` opened). No HTTP here: bytes in, bytes out.
///
/// - good: this CA issued the serial (its record is in the store, signed by the CertID's issuer);
/// - revoked: with the revocation time and reason from the store;
/// - unknown: anything else, including serials of issuers this CA does not have.
///
/// Answers are cached per certificate for `cacheLifetime`; a revocation drops the serial's entry at
/// once (`revoked(serial:)`), and a revocation recorded elsewhere (`ca revoke`, another replica)
/// drops the whole cache when the maintenance loop sees the store's revocation marker move
/// (`refreshIfChanged`, every 2 s in `ca serve`).
public final class OCSPResponder: Sendable {
    /// nextUpdate - thisUpdate: how long a client (or nginx's stapling cache) may keep an answer.
    public static let validity: TimeInterval = 3600
    /// How long a cached answer is served before the store is asked again.
    public static let cacheLifetime: TimeInterval = 300
    /// Backdating of thisUpdate, for clients whose clocks are a little behind.
    public static let clockSkew: TimeInterval = 60
    /// The most certificates cached; the cache is emptied when it would grow beyond.
    public static let maximumCacheEntries = 50_000

    struct Signer: Sendable {
        var issuer: Certificate
        var key: SigningKey
        var hashes: OCSP.IssuerHashes
        /// The key identifier the certificates it signed carry in their AKI.
        var keyID: ArraySlice<UInt8>
        var isCurrent: Bool
    }

    struct CacheEntry: Sendable {
        var status: OCSP.CertStatus
        var thisUpdate: Date
        /// The signed answer to a request for this CertID alone without a nonce (nginx, browsers).
        var plainResponse: [UInt8]?
    }

    struct Cache: Sendable {
        var entries: [OCSP.CertID: CacheEntry] = [:]
        var marker: Int64?
        /// Bumped whenever entries are dropped, so a lookup that started before a revocation does
        /// not put its stale answer back.
        var generation = 0
    }

    let signers: [Signer]
    let store: any CertificateDatabase
    let logger: Logger
    private let cache = Mutex(Cache())

    init(current: Certificate, key: SigningKey, archived: [(Certificate, SigningKey)], store: any CertificateDatabase, logger: Logger) throws {
        var signers = [Signer(
            issuer: current, key: key, hashes: try OCSP.IssuerHashes(issuer: current),
            keyID: try CertificateProfiles.authorityKeyIdentifier(forIssuer: current), isCurrent: true)]
        for (certificate, archivedKey) in archived {
            signers.append(Signer(
                issuer: certificate, key: archivedKey, hashes: try OCSP.IssuerHashes(issuer: certificate),
                keyID: try CertificateProfiles.authorityKeyIdentifier(forIssuer: certificate), isCurrent: false))
        }
        self.signers = signers
        self.store = store
        self.logger = logger
    }

    /// The answer to a POSTed request (DER). Never throws: every failure is an OCSP error response.
    public func respond(toDER der: [UInt8], now: Date = Date()) async -> [UInt8] {
        let request: OCSP.Request
        do {
            request = try OCSP.parseRequest(der)
        } catch {
            logger.debug("OCSP request refused: \(error)")
            return OCSP.errorResponse(.malformedRequest)
        }
        return await respond(to: request, now: now)
    }

    /// The answer to a GET request (`/ocsp/{base64 of the DER}`).
    public func respond(toGetPath path: Substring, now: Date = Date()) async -> [UInt8] {
        let request: OCSP.Request
        do {
            request = try OCSP.parseRequest(getPath: path)
        } catch {
            logger.debug("OCSP request refused: \(error)")
            return OCSP.errorResponse(.malformedRequest)
        }
        return await respond(to: request, now: now)
    }

    func respond(to request: OCSP.Request, now: Date) async -> [UInt8] {
        // One signer per response: the first of our issuers a CertID names (else the current one,
        // and every answer is unknown).
        let signer = request.certIDs.lazy.compactMap { id in self.signers.first { $0.hashes.matches(id) } }.first
            ?? signers[0]
        if request.nonce == nil, request.certIDs.count == 1, let id = request.certIDs.first,
           let cached = cachedPlainResponse(id, now: now) {
            return cached
        }
        do {
            var singles: [OCSP.SingleResponse] = []
            for id in request.certIDs {
                let entry = try await entry(for: id, signer: signer, now: now)
                singles.append(OCSP.SingleResponse(
                    certID: id, status: entry.status, thisUpdate: entry.thisUpdate,
                    nextUpdate: entry.thisUpdate.addingTimeInterval(Self.validity)))
            }
            let response = try OCSP.successfulResponse(
                responderKeyHash: signer.hashes.responderKeyHash, signer: signer.key, producedAt: now, responses: singles,
                nonce: request.nonce)
            if request.nonce == nil, singles.count == 1, let id = request.certIDs.first {
                remember(plainResponse: response, for: id)
            }
            return response
        } catch StoreError.unavailable(let reason) {
            logger.warning("OCSP: the database does not answer (\(reason)); answering tryLater")
            return OCSP.errorResponse(.tryLater)
        } catch {
            logger.error("OCSP: internal error: \(error)")
            return OCSP.errorResponse(.internalError)
        }
    }

    func cachedPlainResponse(_ id: OCSP.CertID, now: Date) -> [UInt8]? {
        cache.withLock { cache in
            guard let entry = cache.entries[id], now.timeIntervalSince(entry.thisUpdate) < Self.cacheLifetime + Self.clockSkew else {
                return nil
            }
            return entry.plainResponse
        }
    }

    func remember(plainResponse: [UInt8], for id: OCSP.CertID) {
        cache.withLock { cache in
            if cache.entries[id] != nil { cache.entries[id]?.plainResponse = plainResponse }
        }
    }

    /// The status of one certificate: from the cache while fresh, else from the store.
    func entry(for id: OCSP.CertID, signer: Signer, now: Date) async throws -> CacheEntry {
        if let cached = cache.withLock({ $0.entries[id] }),
           now.timeIntervalSince(cached.thisUpdate) < Self.cacheLifetime + Self.clockSkew {
            return cached
        }
        let generation = cache.withLock { $0.generation }
        let status = try await lookUp(id, signer: signer)
        var thisUpdate = now.addingTimeInterval(-Self.clockSkew)
        if case .revoked(let at, _) = status { thisUpdate = max(thisUpdate, at) }
        let entry = CacheEntry(status: status, thisUpdate: thisUpdate, plainResponse: nil)
        cache.withLock { cache in
            guard cache.generation == generation else { return }
            if cache.entries.count >= Self.maximumCacheEntries { cache.entries.removeAll(keepingCapacity: true) }
            cache.entries[id] = entry
        }
        return entry
    }

    func lookUp(_ id: OCSP.CertID, signer: Signer) async throws -> OCSP.CertStatus {
        guard signer.hashes.matches(id) else { return .unknown }
        guard let record = try await store.certificate(serial: id.serialHex), record.status == .issued else { return .unknown }
        // The record must be a certificate of the CertID's issuer (matched by its AKI, as the CRLs
        // are); a record without its DER is attributed to the current intermediate.
        if let der = record.der {
            guard let certificate = try? Certificate(derEncoded: der),
                  let aki = try? certificate.extensions.authorityKeyIdentifier?.keyIdentifier,
                  aki == signer.keyID else { return .unknown }
        } else if !signer.isCurrent {
            return .unknown
        }
        if let revocation = record.revocation {
            return .revoked(at: revocation.revokedAt, reasonCode: revocation.reasonCode)
        }
        return .good
    }

    /// Forgets what was cached about `serial` (hex), after it was revoked here.
    public func revoked(serial: String) {
        let lower = serial.lowercased()
        cache.withLock { cache in
            cache.entries = cache.entries.filter { $0.key.serialHex != lower }
            cache.generation &+= 1
        }
    }

    /// Empties the cache when the store's revocation marker moved since the last call: a revocation
    /// recorded by another process or replica.
    public func refreshIfChanged() async throws {
        let marker = try await store.revocationMarker()
        cache.withLock { cache in
            if cache.marker != marker {
                cache.entries.removeAll()
                cache.marker = marker
                cache.generation &+= 1
            }
        }
    }

    /// How many certificates are cached (for tests).
    public var cachedCount: Int { cache.withLock { $0.entries.count } }
}
