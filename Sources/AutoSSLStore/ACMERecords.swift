import Foundation

/// ACME state (RFC 8555) as stored: plain records with typed statuses. The database keeps the same
/// raw strings it always has (`pending`, `ready`, ...); what a status means and when it changes is
/// decided by the ACME authority (module AutoSSLACME), never by a read.

public enum ACMEAccountStatus: String, Sendable, Codable, CaseIterable {
    case valid, deactivated, revoked
}

public enum ACMEOrderStatus: String, Sendable, Codable, CaseIterable {
    case pending, ready, processing, valid, invalid
}

public enum ACMEAuthorizationStatus: String, Sendable, Codable, CaseIterable {
    case pending, valid, invalid, deactivated, expired, revoked
}

public enum ACMEChallengeStatus: String, Sendable, Codable, CaseIterable {
    case pending, processing, valid, invalid
}

public struct ACMEIdentifier: Codable, Hashable, Sendable {
    public var type: String
    public var value: String

    public init(type: String, value: String) {
        self.type = type
        self.value = value
    }
}

public struct ACMEAccountRecord: Sendable, Equatable {
    public var id: String
    public var provisioner: String
    public var thumbprint: String
    /// RFC 7638 canonical JWK.
    public var jwk: String
    public var status: ACMEAccountStatus
    public var contact: [String]
    public var createdAt: Date
    public var eabKeyID: String?

    public init(
        id: String, provisioner: String, thumbprint: String, jwk: String, status: ACMEAccountStatus, contact: [String], createdAt: Date,
        eabKeyID: String?
    ) {
        self.id = id
        self.provisioner = provisioner
        self.thumbprint = thumbprint
        self.jwk = jwk
        self.status = status
        self.contact = contact
        self.createdAt = createdAt
        self.eabKeyID = eabKeyID
    }
}

public struct ACMEChallengeRecord: Sendable, Equatable {
    public var id: String
    public var authorizationID: String
    public var type: String
    public var token: String
    public var status: ACMEChallengeStatus
    public var validatedAt: Date?
    /// Problem document JSON.
    public var error: String?

    public init(
        id: String, authorizationID: String, type: String, token: String, status: ACMEChallengeStatus, validatedAt: Date? = nil,
        error: String? = nil
    ) {
        self.id = id
        self.authorizationID = authorizationID
        self.type = type
        self.token = token
        self.status = status
        self.validatedAt = validatedAt
        self.error = error
    }
}

public struct ACMEAuthorizationRecord: Sendable, Equatable {
    public var id: String
    public var accountID: String
    public var orderID: String
    public var identifier: ACMEIdentifier
    public var wildcard: Bool
    public var status: ACMEAuthorizationStatus
    public var expires: Date
    public var challenges: [ACMEChallengeRecord]

    public init(
        id: String, accountID: String, orderID: String, identifier: ACMEIdentifier, wildcard: Bool, status: ACMEAuthorizationStatus,
        expires: Date, challenges: [ACMEChallengeRecord]
    ) {
        self.id = id
        self.accountID = accountID
        self.orderID = orderID
        self.identifier = identifier
        self.wildcard = wildcard
        self.status = status
        self.expires = expires
        self.challenges = challenges
    }
}

public struct ACMEOrderRecord: Sendable, Equatable {
    public var id: String
    public var accountID: String
    public var provisioner: String
    public var status: ACMEOrderStatus
    public var identifiers: [ACMEIdentifier]
    public var notBefore: Date?
    public var notAfter: Date?
    public var expires: Date
    /// Problem document JSON.
    public var error: String?
    public var certificateSerial: String?
    public var createdAt: Date
    public var authorizationIDs: [String]

    public init(
        id: String, accountID: String, provisioner: String, status: ACMEOrderStatus, identifiers: [ACMEIdentifier], notBefore: Date?,
        notAfter: Date?, expires: Date, error: String? = nil, certificateSerial: String? = nil, createdAt: Date, authorizationIDs: [String]
    ) {
        self.id = id
        self.accountID = accountID
        self.provisioner = provisioner
        self.status = status
        self.identifiers = identifiers
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.expires = expires
        self.error = error
        self.certificateSerial = certificateSerial
        self.createdAt = createdAt
        self.authorizationIDs = authorizationIDs
    }
}

/// An external account binding key as `ca provisioner eab list` shows it (never the HMAC key).
public struct ACMEEABKeyInfo: Sendable, Equatable {
    public var kid: String
    public var provisioner: String
    public var createdAt: Date
    public var boundAccount: String?

    public init(kid: String, provisioner: String, createdAt: Date, boundAccount: String?) {
        self.kid = kid
        self.provisioner = provisioner
        self.createdAt = createdAt
        self.boundAccount = boundAccount
    }
}

/// What `ACMEDatabase.removeEABKey` did.
public enum ACMEEABKeyRemoval: Sendable, Equatable {
    case removed(provisioner: String)
    case notFound
    /// Nothing was removed: the key already bound this account.
    case bound(provisioner: String, account: String)
}

/// The outcome of one challenge's validation, written in one transaction. Each change applies only
/// from the state named here, so a late or repeated outcome changes nothing.
public struct ACMEValidationOutcome: Sendable, Equatable {
    public var challengeID: String
    /// `.valid` or `.invalid`; applied only to a challenge in `processing`.
    public var challengeStatus: ACMEChallengeStatus
    public var validatedAt: Date?
    /// Problem document JSON (the challenge's, and the order's when it becomes invalid).
    public var error: String?
    public var authorizationID: String
    /// Applied only to an authorization still `pending`.
    public var authorizationStatus: ACMEAuthorizationStatus
    /// The order's new status, applied only to an order still `pending`; nil leaves the order alone.
    /// `.ready` is applied only when, in the same transaction, every authorization of the order is
    /// valid: so when two validations of one order finish together, the second to write marks it.
    /// `.invalid` is applied only when this outcome changed the authorization: a failure written
    /// after another challenge of the same authorization made it valid leaves the order alone.
    public var orderStatus: ACMEOrderStatus?

    public init(
        challengeID: String, challengeStatus: ACMEChallengeStatus, validatedAt: Date?, error: String?, authorizationID: String,
        authorizationStatus: ACMEAuthorizationStatus, orderStatus: ACMEOrderStatus?
    ) {
        self.challengeID = challengeID
        self.challengeStatus = challengeStatus
        self.validatedAt = validatedAt
        self.error = error
        self.authorizationID = authorizationID
        self.authorizationStatus = authorizationStatus
        self.orderStatus = orderStatus
    }
}

public enum ACMEDatabaseError: Error, Equatable, Sendable {
    case accountKeyInUse(existingID: String)
    case notFound
    case eabKeyAlreadyUsed
    /// The account already has this many orders open (pending, ready or processing, unexpired).
    case tooManyOpenOrders(limit: Int)
}
