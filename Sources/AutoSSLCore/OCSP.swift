import Crypto
import Foundation
import SwiftASN1
import X509

/// RFC 6960 OCSP: reading requests and writing responses, with no I/O. swift-certificates keeps its
/// OCSP types internal, so both directions are written here with SwiftASN1, as `CRLBuilder` is.
///
/// Requests come from anyone on the network: the reader takes at most `maximumRequestBytes` and
/// `maximumCertIDs`, parses with SwiftASN1's bounded DER parser (definite lengths, limited depth),
/// and every way a request can be wrong is an `OCSPError.malformed`, which the responder answers
/// with `malformedRequest`.
public enum OCSP {
    /// The largest request read (a request for 16 certificates with a nonce is under 1.5 KiB).
    public static let maximumRequestBytes = 8192
    /// The most certificates one request may ask about.
    public static let maximumCertIDs = 16
    /// Longest nonce accepted and echoed (RFC 8954 §2.1: 1 to 32 octets).
    public static let maximumNonceBytes = 32

    static let sha1OID: ASN1ObjectIdentifier = [1, 3, 14, 3, 2, 26]
    static let sha256OID: ASN1ObjectIdentifier = [2, 16, 840, 1, 101, 3, 4, 2, 1]
    static let nonceOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 2]
    static let basicResponseOID: ASN1ObjectIdentifier = [1, 3, 6, 1, 5, 5, 7, 48, 1, 1]

    /// The hash a CertID names its issuer with. SHA-1 is what most clients send (it is openssl's
    /// default and RFC 5019's profile); it only identifies the issuer here, nothing is signed with it.
    public enum HashAlgorithm: Sendable, Hashable, CaseIterable {
        case sha1, sha256

        var oid: ASN1ObjectIdentifier { self == .sha1 ? OCSP.sha1OID : OCSP.sha256OID }
        var length: Int { self == .sha1 ? 20 : 32 }

        public func hash(_ bytes: [UInt8]) -> [UInt8] {
            switch self {
            case .sha1: return Array(Insecure.SHA1.hash(data: bytes))
            case .sha256: return Array(SHA256.hash(data: bytes))
            }
        }
    }

    /// One certificate a request asks about.
    public struct CertID: Sendable, Hashable {
        public var hashAlgorithm: HashAlgorithm
        public var issuerNameHash: [UInt8]
        public var issuerKeyHash: [UInt8]
        /// The serial's INTEGER content octets, as the request wrote them.
        public var serial: [UInt8]
        /// Whether the AlgorithmIdentifier carried NULL parameters (echoed as received).
        var nullParameters: Bool

        public init(hashAlgorithm: HashAlgorithm, issuerNameHash: [UInt8], issuerKeyHash: [UInt8], serial: [UInt8]) {
            self.hashAlgorithm = hashAlgorithm
            self.issuerNameHash = issuerNameHash
            self.issuerKeyHash = issuerKeyHash
            self.serial = serial
            self.nullParameters = true
        }

        /// The serial in lower-case hex, as the certificate store keys it.
        public var serialHex: String { Hex.encode(serial[...]) }

        func serialize(into serializer: inout DER.Serializer) throws {
            try serializer.appendConstructedNode(identifier: .sequence) { id in
                try id.appendConstructedNode(identifier: .sequence) { algorithm in
                    try algorithm.serialize(hashAlgorithm.oid)
                    if nullParameters { try algorithm.serialize(ASN1Null()) }
                }
                try id.serialize(ASN1OctetString(contentBytes: issuerNameHash[...]))
                try id.serialize(ASN1OctetString(contentBytes: issuerKeyHash[...]))
                id.appendPrimitiveNode(identifier: .integer) { $0.append(contentsOf: serial) }
            }
        }
    }

    /// A parsed OCSPRequest.
    public struct Request: Sendable, Equatable {
        public var certIDs: [CertID]
        /// The nonce extension's value (extnValue's content, to be echoed as is), if the request had one.
        public var nonce: [UInt8]?
    }

    /// Why a request could not be read; always answered with `malformedRequest`.
    public struct MalformedRequest: Error, Sendable, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    // MARK: - Reading requests

    /// Reads a DER OCSPRequest (the body of a POST).
    public static func parseRequest(_ der: [UInt8]) throws -> Request {
        guard !der.isEmpty else { throw MalformedRequest("empty request") }
        guard der.count <= maximumRequestBytes else {
            throw MalformedRequest("request larger than \(maximumRequestBytes) bytes")
        }
        do {
            return try parse(der)
        } catch let error as MalformedRequest {
            throw error
        } catch {
            throw MalformedRequest("not a DER OCSPRequest (\(error))")
        }
    }

    /// Reads the GET form (RFC 6960 appendix A.1): the request's DER in base64, percent-encoded in
    /// the URL path. Both standard and URL-safe base64 are accepted, padded or not.
    public static func parseRequest(getPath component: Substring) throws -> Request {
        guard component.utf8.count <= maximumRequestBytes * 2 else {
            throw MalformedRequest("request larger than \(maximumRequestBytes) bytes")
        }
        guard let decodedText = String(component).removingPercentEncoding else {
            throw MalformedRequest("the path is not valid percent-encoding")
        }
        var text = String(decodedText.map { $0 == "-" ? "+" : $0 == "_" ? "/" : $0 }.filter { !$0.isWhitespace })
        let remainder = text.utf8.count % 4
        if remainder == 1 { throw MalformedRequest("the path is not base64") }
        if remainder > 0 { text += String(repeating: "=", count: 4 - remainder) }
        guard let data = Data(base64Encoded: text) else { throw MalformedRequest("the path is not base64") }
        return try parseRequest(Array(data))
    }

    static func parse(_ der: [UInt8]) throws -> Request {
        let root = try DER.parse(der)
        var certIDs: [CertID] = []
        var nonce: [UInt8]?
        try DER.sequence(root, identifier: .sequence) { outer in
            guard let tbsNode = outer.next() else { throw MalformedRequest("no tbsRequest") }
            // optionalSignature [0] may follow; signed requests are read but their signature is not
            // needed (this responder answers anyone, as RFC 5019 responders do).
            if let signature = outer.next() {
                guard signature.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) else {
                    throw MalformedRequest("unexpected element after tbsRequest")
                }
                guard outer.next() == nil else { throw MalformedRequest("trailing elements in OCSPRequest") }
            }
            try DER.sequence(tbsNode, identifier: .sequence) { tbs in
                var node = tbs.next()
                if let version = node, version.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) {
                    let value = try DER.explicitlyTagged(version, tagNumber: 0, tagClass: .contextSpecific) { try Int(derEncoded: $0) }
                    guard value == 0 else { throw MalformedRequest("unsupported OCSP request version \(value)") }
                    node = tbs.next()
                }
                if let name = node, name.identifier == ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific) {
                    node = tbs.next()  // requestorName: not used
                }
                guard let list = node else { throw MalformedRequest("no requestList") }
                try DER.sequence(list, identifier: .sequence) { requests in
                    while let request = requests.next() {
                        guard certIDs.count < maximumCertIDs else {
                            throw MalformedRequest("more than \(maximumCertIDs) certificates in one request")
                        }
                        certIDs.append(try parseSingleRequest(request))
                    }
                }
                guard !certIDs.isEmpty else { throw MalformedRequest("the request asks about no certificate") }
                if let extensionsNode = tbs.next() {
                    guard extensionsNode.identifier == ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific) else {
                        throw MalformedRequest("unexpected element in tbsRequest")
                    }
                    nonce = try DER.explicitlyTagged(extensionsNode, tagNumber: 2, tagClass: .contextSpecific) { try parseNonce($0) }
                }
                guard tbs.next() == nil else { throw MalformedRequest("trailing elements in tbsRequest") }
            }
        }
        return Request(certIDs: certIDs, nonce: nonce)
    }

    static func parseSingleRequest(_ node: ASN1Node) throws -> CertID {
        try DER.sequence(node, identifier: .sequence) { request in
            guard let certIDNode = request.next() else { throw MalformedRequest("a Request without a CertID") }
            let certID = try parseCertID(certIDNode)
            if let extensions = request.next() {
                guard extensions.identifier == ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific) else {
                    throw MalformedRequest("unexpected element in a Request")
                }
                // singleRequestExtensions (e.g. service locator): none is acted upon.
            }
            guard request.next() == nil else { throw MalformedRequest("trailing elements in a Request") }
            return certID
        }
    }

    static func parseCertID(_ node: ASN1Node) throws -> CertID {
        try DER.sequence(node, identifier: .sequence) { id in
            guard let algorithmNode = id.next(), let nameNode = id.next(), let keyNode = id.next(), let serialNode = id.next(),
                  id.next() == nil else {
                throw MalformedRequest("a CertID needs hashAlgorithm, issuerNameHash, issuerKeyHash and serialNumber")
            }
            var nullParameters = false
            let oid: ASN1ObjectIdentifier = try DER.sequence(algorithmNode, identifier: .sequence) { algorithm in
                guard let oidNode = algorithm.next() else { throw MalformedRequest("a hash algorithm without an identifier") }
                let oid = try ASN1ObjectIdentifier(derEncoded: oidNode)
                if let parameters = algorithm.next() {
                    _ = try ASN1Null(derEncoded: parameters)
                    nullParameters = true
                }
                guard algorithm.next() == nil else { throw MalformedRequest("trailing elements in a hash algorithm") }
                return oid
            }
            let hashAlgorithm: HashAlgorithm
            switch oid {
            case sha1OID: hashAlgorithm = .sha1
            case sha256OID: hashAlgorithm = .sha256
            default: throw MalformedRequest("unsupported CertID hash algorithm \(oid) (SHA-1 and SHA-256 are)")
            }
            let nameHash = Array(try ASN1OctetString(derEncoded: nameNode).bytes)
            let keyHash = Array(try ASN1OctetString(derEncoded: keyNode).bytes)
            guard nameHash.count == hashAlgorithm.length, keyHash.count == hashAlgorithm.length else {
                throw MalformedRequest("a CertID's hashes do not have the length of its hash algorithm")
            }
            guard serialNode.identifier == .integer, case .primitive(let serialBytes) = serialNode.content else {
                throw MalformedRequest("a CertID's serialNumber is not an INTEGER")
            }
            // RFC 5280 §4.1.2.2: at most 20 octets (21 with the sign octet); positive.
            guard !serialBytes.isEmpty, serialBytes.count <= 21 else { throw MalformedRequest("a serial number of \(serialBytes.count) octets") }
            guard let first = serialBytes.first, first & 0x80 == 0 else { throw MalformedRequest("a negative serial number") }
            if serialBytes.count > 1, first == 0, let second = serialBytes.dropFirst().first, second & 0x80 == 0 {
                throw MalformedRequest("a serial number that is not minimally encoded")
            }
            var certID = CertID(hashAlgorithm: hashAlgorithm, issuerNameHash: nameHash, issuerKeyHash: keyHash, serial: Array(serialBytes))
            certID.nullParameters = nullParameters
            return certID
        }
    }

    /// Finds the nonce in requestExtensions; other extensions are ignored unless critical.
    static func parseNonce(_ node: ASN1Node) throws -> [UInt8]? {
        var nonce: [UInt8]?
        try DER.sequence(node, identifier: .sequence) { list in
          while let extensionNode = list.next() {
            try DER.sequence(extensionNode, identifier: .sequence) { ext in
                guard let oidNode = ext.next() else { throw MalformedRequest("an extension without an identifier") }
                let oid = try ASN1ObjectIdentifier(derEncoded: oidNode)
                guard var valueNode = ext.next() else { throw MalformedRequest("an extension without a value") }
                var critical = false
                if valueNode.identifier == .boolean {
                    critical = try Bool(derEncoded: valueNode)
                    guard let next = ext.next() else { throw MalformedRequest("an extension without a value") }
                    valueNode = next
                }
                let value = try ASN1OctetString(derEncoded: valueNode).bytes
                guard ext.next() == nil else { throw MalformedRequest("trailing elements in an extension") }
                if oid == nonceOID {
                    guard nonce == nil else { throw MalformedRequest("two nonce extensions") }
                    // RFC 8954: Nonce ::= OCTET STRING (SIZE(1..32)), inside extnValue; older
                    // clients put the bare bytes there. Either is echoed exactly as received.
                    guard !value.isEmpty, value.count <= maximumNonceBytes + 2 else {
                        throw MalformedRequest("a nonce of \(value.count) octets (1 to \(maximumNonceBytes) are accepted)")
                    }
                    nonce = Array(value)
                } else if critical {
                    throw MalformedRequest("unsupported critical request extension \(oid)")
                }
            }
          }
        }
        return nonce
    }

    // MARK: - Writing responses

    /// OCSPResponseStatus values other than successful.
    public enum ErrorStatus: Int, Sendable {
        case malformedRequest = 1, internalError = 2, tryLater = 3, sigRequired = 5, unauthorized = 6
    }

    /// An unsigned error response: `OCSPResponse { responseStatus }`.
    public static func errorResponse(_ status: ErrorStatus) -> [UInt8] {
        [0x30, 0x03, 0x0A, 0x01, UInt8(status.rawValue)]
    }

    /// True for what `errorResponse` makes (an unsigned answer with no responseBytes): it says
    /// nothing about a certificate and must not be cached.
    public static func isErrorResponse(_ bytes: [UInt8]) -> Bool {
        bytes.count == 5 && bytes[0] == 0x30 && bytes[1] == 0x03 && bytes[2] == 0x0A && bytes[3] == 0x01 && bytes[4] != 0
    }

    /// What the responder says about one certificate.
    public enum CertStatus: Sendable, Equatable {
        case good
        /// RFC 5280 CRLReason; 0 (unspecified) is written without the reason, as in the CRL.
        case revoked(at: Date, reasonCode: Int)
        case unknown
    }

    public struct SingleResponse: Sendable, Equatable {
        public var certID: CertID
        public var status: CertStatus
        public var thisUpdate: Date
        public var nextUpdate: Date

        public init(certID: CertID, status: CertStatus, thisUpdate: Date, nextUpdate: Date) {
            self.certID = certID
            self.status = status
            self.thisUpdate = thisUpdate
            self.nextUpdate = nextUpdate
        }
    }

    /// The issuer's identity as CertIDs name it, for each hash algorithm, and as a ResponderID.
    public struct IssuerHashes: Sendable, Equatable {
        public var nameHashes: [HashAlgorithm: [UInt8]]
        public var keyHashes: [HashAlgorithm: [UInt8]]

        public init(issuer: Certificate) throws {
            var serializer = DER.Serializer()
            try serializer.serialize(issuer.subject)
            let name = serializer.serializedBytes
            let key = try OCSP.subjectPublicKeyBits(of: issuer.publicKey)
            var names: [HashAlgorithm: [UInt8]] = [:]
            var keys: [HashAlgorithm: [UInt8]] = [:]
            for algorithm in HashAlgorithm.allCases {
                names[algorithm] = algorithm.hash(name)
                keys[algorithm] = algorithm.hash(key)
            }
            nameHashes = names
            keyHashes = keys
        }

        /// Whether `certID` names this issuer.
        public func matches(_ certID: CertID) -> Bool {
            nameHashes[certID.hashAlgorithm] == certID.issuerNameHash && keyHashes[certID.hashAlgorithm] == certID.issuerKeyHash
        }

        /// ResponderID byKey: the SHA-1 hash of the responder's public key bits (RFC 6960 §4.2.1).
        public var responderKeyHash: [UInt8] { keyHashes[.sha1] ?? [] }
    }

    /// The subjectPublicKey BIT STRING's bits (what CertID's issuerKeyHash and byKey hash).
    static func subjectPublicKeyBits(of key: Certificate.PublicKey) throws -> [UInt8] {
        let spki = try CertificateProfiles.subjectPublicKeyInfo(of: key)
        return try DER.sequence(try DER.parse(spki), identifier: .sequence) { nodes in
            _ = nodes.next()
            guard let bits = nodes.next() else { throw AutoSSLError.general("a SubjectPublicKeyInfo without a key") }
            return Array(try ASN1BitString(derEncoded: bits).bytes)
        }
    }

    /// A successful response: a BasicOCSPResponse signed by `signer` (the issuing CA itself, so no
    /// certificates are included), with the nonce echoed when given.
    public static func successfulResponse(
        responderKeyHash: [UInt8], signer: SigningKey, producedAt: Date, responses: [SingleResponse], nonce: [UInt8]?
    ) throws -> [UInt8] {
        var tbs = DER.Serializer()
        try tbs.appendConstructedNode(identifier: .sequence) { data in
            // version v1 is the DEFAULT: omitted.
            try data.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific)) { responder in
                try responder.serialize(ASN1OctetString(contentBytes: responderKeyHash[...]))
            }
            appendGeneralizedTime(producedAt, to: &data)
            try data.appendConstructedNode(identifier: .sequence) { list in
                for single in responses {
                    try list.appendConstructedNode(identifier: .sequence) { item in
                        try single.certID.serialize(into: &item)
                        switch single.status {
                        case .good:
                            item.appendPrimitiveNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { _ in }
                        case .revoked(let at, let reasonCode):
                            try item.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific)) { info in
                                appendGeneralizedTime(at, to: &info)
                                if reasonCode != 0 {
                                    try info.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) {
                                        try $0.serialize(EnumeratedValue(value: reasonCode))
                                    }
                                }
                            }
                        case .unknown:
                            item.appendPrimitiveNode(identifier: ASN1Identifier(tagWithNumber: 2, tagClass: .contextSpecific)) { _ in }
                        }
                        appendGeneralizedTime(single.thisUpdate, to: &item)
                        try item.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) {
                            appendGeneralizedTime(single.nextUpdate, to: &$0)
                        }
                    }
                }
            }
            if let nonce {
                try data.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 1, tagClass: .contextSpecific)) { wrapper in
                    try wrapper.appendConstructedNode(identifier: .sequence) { extensions in
                        try extensions.appendConstructedNode(identifier: .sequence) { ext in
                            try ext.serialize(nonceOID)
                            try ext.serialize(ASN1OctetString(contentBytes: nonce[...]))
                        }
                    }
                }
            }
        }
        let tbsBytes = tbs.serializedBytes
        let signature = try signer.signForX509(tbsBytes)
        var basic = DER.Serializer()
        try basic.appendConstructedNode(identifier: .sequence) { outer in
            outer.serializeRawBytes(tbsBytes)
            try CRLBuilder.appendAlgorithm(signer.algorithm, to: &outer)
            try outer.serialize(ASN1BitString(bytes: ArraySlice(signature)))
        }
        var response = DER.Serializer()
        try response.appendConstructedNode(identifier: .sequence) { outer in
            try outer.serialize(EnumeratedValue(value: 0))  // successful
            try outer.appendConstructedNode(identifier: ASN1Identifier(tagWithNumber: 0, tagClass: .contextSpecific)) { wrapper in
                try wrapper.appendConstructedNode(identifier: .sequence) { bytes in
                    try bytes.serialize(basicResponseOID)
                    try bytes.serialize(ASN1OctetString(contentBytes: basic.serializedBytes[...]))
                }
            }
        }
        return response.serializedBytes
    }

    /// GeneralizedTime in whole seconds, UTC (RFC 6960 and RFC 5280 §4.1.2.5.2: YYYYMMDDHHMMSSZ).
    static func appendGeneralizedTime(_ date: Date, to serializer: inout DER.Serializer) {
        let seconds = Int64(max(0, min(date.timeIntervalSince1970.rounded(.down), 253_402_300_799)))
        let days = seconds / 86_400
        let secondOfDay = Int(seconds % 86_400)
        let (year, month, day) = LeafEncoder.civilDate(daysSinceEpoch: days)
        var digits: [UInt8] = []
        func put(_ value: Int, _ width: Int) {
            var text = Array(String(value).utf8)
            while text.count < width { text.insert(0x30, at: 0) }
            digits += text
        }
        put(year, 4)
        put(month, 2)
        put(day, 2)
        put(secondOfDay / 3600, 2)
        put(secondOfDay / 60 % 60, 2)
        put(secondOfDay % 60, 2)
        digits.append(0x5A)
        serializer.appendPrimitiveNode(identifier: .generalizedTime) { $0.append(contentsOf: digits) }
    }
}
