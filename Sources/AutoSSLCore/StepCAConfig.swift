import Foundation

/// step-ca's `config/ca.json` (https://smallstep.com/docs/step-ca/configuration), read for
/// `ca import`: what auto-ssl can carry over, and a plain list of everything else it found so that
/// nothing is dropped silently. The file is hostile input: bounded size, every field type-checked,
/// never a crash; secrets it may hold (a database DSN, KMS URIs) are never repeated in messages.
public struct StepCAConfig: Sendable, Equatable {
    public static let maximumBytes = 1 << 20
    public static let maximumProvisioners = 1_000

    /// `root`: one path or several.
    public var roots: [String]
    /// `crt` and `key`: the intermediate's certificate and key.
    public var intermediateCertificate: String
    public var intermediateKey: String
    /// `address`, e.g. ":9000" or "10.0.0.5:9000".
    public var address: String?
    public var dnsNames: [String]
    /// `db.type` (badgerv2, bbolt, mysql, postgresql, ...), never its data source.
    public var databaseType: String?
    /// `authority.claims`: the CA-wide durations.
    public var claims: Claims
    public var provisioners: [Provisioner]
    /// Settings found in the file that `ca import` does not carry over, in words.
    public var notCarried: [String]

    /// The TLS durations of a claims object, in seconds; nil = not set there.
    public struct Claims: Sendable, Equatable {
        public var minimum: Int64?
        public var maximum: Int64?
        public var defaultDuration: Int64?
        /// Claims present that have no auto-ssl equivalent (SSH durations, renewal switches, ...).
        public var others: [String]

        public init(minimum: Int64? = nil, maximum: Int64? = nil, defaultDuration: Int64? = nil, others: [String] = []) {
            self.minimum = minimum
            self.maximum = maximum
            self.defaultDuration = defaultDuration
            self.others = others
        }

        /// step-ca's built-in TLS durations when neither the provisioner nor the authority sets one.
        public static let stepCADefaults = Claims(minimum: 300, maximum: 86_400, defaultDuration: 86_400)
    }

    public struct JWK: Sendable, Equatable {
        public var name: String
        /// The public key, as given (kty, crv, x, y, kid, use, alg).
        public var key: JWKPublicKey
        /// The compact JWE of the private key; nil when ca.json has none.
        public var encryptedKey: String?
        public var claims: Claims
        /// Other settings of this provisioner that are not carried over (templates, options).
        public var notCarried: [String]
    }

    /// The members of a public JWK that matter; anything but an EC P-256 key is kept for the message.
    public struct JWKPublicKey: Sendable, Equatable {
        public var kty: String
        public var crv: String?
        public var x: String?
        public var y: String?
        public var kid: String?
        public var use: String?
        public var alg: String?
    }

    public struct ACME: Sendable, Equatable {
        public var name: String
        /// nil = step-ca's default (http-01, dns-01, tls-alpn-01).
        public var challenges: [String]?
        public var requireEAB: Bool
        public var claims: Claims
        public var notCarried: [String]
    }

    public enum Provisioner: Sendable, Equatable {
        case jwk(JWK)
        case acme(ACME)
        /// Any other type (OIDC, X5C, SSHPOP, K8sSA, AWS, GCP, Azure, SCEP, Nebula, ...).
        case other(type: String, name: String)

        public var name: String {
            switch self {
            case .jwk(let jwk): jwk.name
            case .acme(let acme): acme.name
            case .other(_, let name): name
            }
        }
    }

    // MARK: - Parsing

    public static func parse(_ bytes: [UInt8]) throws -> StepCAConfig {
        guard bytes.count <= maximumBytes else { throw invalid("is larger than \(maximumBytes >> 20) MiB") }
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes), options: [])
        } catch {
            throw invalid("is not valid JSON")
        }
        guard let top = object as? [String: Any] else { throw invalid("is not a JSON object") }
        var notCarried: [String] = []

        let roots: [String]
        switch top["root"] {
        case let single as String: roots = [single]
        case let several as [Any]:
            roots = try several.enumerated().map { index, value in
                guard let path = value as? String else { throw invalid("root[\(index)] is not a string") }
                return path
            }
        case nil: throw invalid("has no \"root\" (the root certificate's path)")
        default: throw invalid("\"root\" is neither a path nor a list of paths")
        }
        guard !roots.isEmpty, roots.count <= 16, roots.allSatisfy(isSanePath) else { throw invalid("\"root\" names no usable path") }
        guard let crt = top["crt"] as? String, isSanePath(crt) else { throw invalid("has no usable \"crt\" (the intermediate certificate's path)") }
        guard let key = top["key"] as? String, isSanePath(key) else {
            if top["kms"] != nil { throw invalid("keeps the intermediate key in a KMS (\"kms\"), which auto-ssl cannot read", hint: kmsHint) }
            throw invalid("has no usable \"key\" (the intermediate key's path)")
        }
        if key.contains("://") || key.hasPrefix("pkcs11:") || key.hasPrefix("yubikey:") || key.hasPrefix("awskms:") || key.hasPrefix("cloudkms:") {
            throw invalid("keeps the intermediate key in a KMS or token, which auto-ssl cannot read", hint: kmsHint)
        }
        let address = try optionalString(top, "address")
        var dnsNames: [String] = []
        if let names = top["dnsNames"] {
            guard let list = names as? [Any], list.count <= 100 else { throw invalid("\"dnsNames\" is not a list of at most 100 names") }
            dnsNames = try list.enumerated().map { index, value in
                guard let name = value as? String, (1...253).contains(name.utf8.count) else { throw invalid("dnsNames[\(index)] is not a name") }
                return name
            }
        }
        var databaseType: String?
        if let db = top["db"] {
            if let db = db as? [String: Any] {
                databaseType = (db["type"] as? String).map { printable($0) } ?? "unknown type"
            } else if !(db is NSNull) {
                throw invalid("\"db\" is not an object")
            }
        }
        if let federated = top["federatedRoots"] as? [Any], !federated.isEmpty { notCarried.append("federatedRoots (\(federated.count) federated root(s))") }
        if top["kms"] != nil, !(top["kms"] is NSNull) { notCarried.append("kms (a key management system setting)") }
        if let ssh = top["ssh"] as? [String: Any], !ssh.isEmpty { notCarried.append("ssh (the SSH CA: its host and user keys)") }
        if let insecure = top["insecureAddress"] as? String, !insecure.isEmpty { notCarried.append("insecureAddress \(printable(insecure)) (the plain-HTTP SSH/SCEP listener)") }
        if let crl = top["crl"] as? [String: Any], !crl.isEmpty { notCarried.append("crl (step-ca's CRL settings; auto-ssl always publishes a CRL, see `ca.revocation` in docs/ca.md)") }
        if let tls = top["tls"] as? [String: Any], !tls.isEmpty { notCarried.append("tls (cipher suites and versions; auto-ssl serves TLS 1.2 and 1.3 with its own choice)") }

        var claims = Claims()
        var provisioners: [Provisioner] = []
        if let authorityValue = top["authority"] {
            guard let authority = authorityValue as? [String: Any] else { throw invalid("\"authority\" is not an object") }
            if let value = authority["claims"] { claims = try parseClaims(value, where: "authority.claims") }
            if let list = authority["provisioners"] {
                guard let list = list as? [Any] else { throw invalid("authority.provisioners is not a list") }
                guard list.count <= maximumProvisioners else { throw invalid("authority.provisioners has more than \(maximumProvisioners) entries") }
                for (index, value) in list.enumerated() {
                    provisioners.append(try parseProvisioner(value, where: "authority.provisioners[\(index)]"))
                }
            }
            if authority["enableAdmin"] as? Bool == true {
                notCarried.append("enableAdmin (remote provisioner management: provisioners and admins kept in step-ca's database, not in ca.json, are not carried over)")
            }
            if let policy = authority["policy"] as? [String: Any], !policy.isEmpty {
                notCarried.append("authority.policy (step-ca's name policy; set auto-ssl's with `ca.policy` or `ca provisioner update --allow-dns`)")
            }
            if let template = authority["template"] as? [String: Any], !template.isEmpty { notCarried.append("authority.template (certificate template)") }
            if authority["backdate"] != nil { notCarried.append("authority.backdate (auto-ssl backdates by 60 seconds)") }
            if !claims.others.isEmpty {
                notCarried.append("authority.claims " + claims.others.joined(separator: ", "))
            }
        }
        let names = provisioners.map(\.name)
        if let duplicate = names.enumerated().first(where: { names[..<$0.offset].contains($0.element) }) {
            throw invalid("names the provisioner \"\(printable(duplicate.element))\" twice")
        }
        return StepCAConfig(
            roots: roots, intermediateCertificate: crt, intermediateKey: key, address: address, dnsNames: dnsNames,
            databaseType: databaseType, claims: claims, provisioners: provisioners, notCarried: notCarried)
    }

    static let kmsHint = "export the key to a file encrypted with a password first, point \"key\" at it, and import again"

    static func parseProvisioner(_ value: Any, where path: String) throws -> Provisioner {
        guard let object = value as? [String: Any] else { throw invalid("\(path) is not an object") }
        guard let type = object["type"] as? String, (1...64).contains(type.count) else { throw invalid("\(path) has no \"type\"") }
        guard let name = object["name"] as? String, (1...256).contains(name.count) else { throw invalid("\(path) has no \"name\"") }
        let claims = try object["claims"].map { try parseClaims($0, where: path + ".claims") } ?? Claims()
        var notCarried: [String] = []
        if let options = object["options"] as? [String: Any], !options.isEmpty {
            notCarried.append("options (certificate templates: \(options.keys.sorted().map { printable($0) }.joined(separator: ", ")))")
        }
        if !claims.others.isEmpty { notCarried.append("claims " + claims.others.joined(separator: ", ")) }
        switch type.uppercased() {
        case "JWK":
            guard let keyObject = object["key"] as? [String: Any] else { throw invalid("\(path) (JWK) has no public \"key\" object") }
            func member(_ name: String) throws -> String? {
                guard let value = keyObject[name] else { return nil }
                guard let text = value as? String, text.utf8.count <= 2_048 else { throw invalid("\(path).key.\(name) is not a short string") }
                return text
            }
            guard let kty = try member("kty") else { throw invalid("\(path).key has no \"kty\"") }
            let key = JWKPublicKey(
                kty: kty, crv: try member("crv"), x: try member("x"), y: try member("y"), kid: try member("kid"),
                use: try member("use"), alg: try member("alg"))
            var encryptedKey: String?
            if let value = object["encryptedKey"] {
                guard let text = value as? String, (1...65_536).contains(text.utf8.count) else {
                    throw invalid("\(path).encryptedKey is not a compact JWE string")
                }
                encryptedKey = text
            }
            return .jwk(JWK(name: name, key: key, encryptedKey: encryptedKey, claims: claims, notCarried: notCarried))
        case "ACME":
            var challenges: [String]?
            if let value = object["challenges"] {
                guard let list = value as? [Any], list.count <= 16 else { throw invalid("\(path).challenges is not a list") }
                challenges = try list.map { item in
                    guard let text = item as? String, (1...64).contains(text.count) else { throw invalid("\(path).challenges holds a non-string") }
                    return text
                }
            }
            let requireEAB = object["requireEAB"] as? Bool ?? false
            for key in ["forceCN", "termsOfService", "website", "caaIdentities", "attestationFormats", "attestationRoots"] {
                if let value = object[key], !(value is NSNull), (value as? Bool) != false {
                    notCarried.append(key)
                }
            }
            return .acme(ACME(name: name, challenges: challenges, requireEAB: requireEAB, claims: claims, notCarried: notCarried))
        default:
            return .other(type: printable(type), name: name)
        }
    }

    static func parseClaims(_ value: Any, where path: String) throws -> Claims {
        if value is NSNull { return Claims() }
        guard let object = value as? [String: Any] else { throw invalid("\(path) is not an object") }
        var claims = Claims()
        for key in object.keys.sorted() {
            guard let value = object[key] else { continue }
            if ["minTLSCertDuration", "maxTLSCertDuration", "defaultTLSCertDuration"].contains(key) {
                guard let text = value as? String else { throw invalid("\(path).\(key) is not a duration string") }
                let seconds = try GoDuration.seconds(text, field: "\(path).\(key)")
                switch key {
                case "minTLSCertDuration": claims.minimum = seconds
                case "maxTLSCertDuration": claims.maximum = seconds
                default: claims.defaultDuration = seconds
                }
            } else if !(value is NSNull), (value as? Bool) != false {
                claims.others.append(printable(key))
            }
        }
        return claims
    }

    /// The protected header of a compact JWE (alg, enc, p2c), read without a password; nil when the
    /// string is not a compact JWE with a JSON header.
    public static func jweParameters(_ compact: String) -> (alg: String, enc: String, p2c: Int?)? {
        let parts = compact.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, let header = Base64URL.decode(parts[0]),
              let object = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any],
              let alg = object["alg"] as? String, let enc = object["enc"] as? String else { return nil }
        return (printable(alg), printable(enc), object["p2c"] as? Int)
    }

    static func optionalString(_ object: [String: Any], _ key: String) throws -> String? {
        guard let value = object[key], !(value is NSNull) else { return nil }
        guard let text = value as? String, text.utf8.count <= 300 else { throw invalid("\"\(key)\" is not a short string") }
        return text.isEmpty ? nil : text
    }

    static func isSanePath(_ path: String) -> Bool {
        !path.isEmpty && path.utf8.count <= 4_096 && !path.utf8.contains(0)
    }

    static func invalid(_ what: String, hint: String? = nil) -> AutoSSLError {
        AutoSSLError.general("step-ca's config/ca.json \(what)", hint: hint ?? "check the file against step-ca's documented schema; nothing was changed")
    }

    /// At most 60 printable ASCII characters of a value from the file.
    public static func printable(_ text: String) -> String {
        let scalars = text.unicodeScalars
        let cleaned = String(String.UnicodeScalarView(scalars.prefix(60).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? $0 : "?" }))
        return scalars.count > 60 ? cleaned + "..." : cleaned
    }
}

/// Go's `time.ParseDuration` syntax ("24h", "5m0s", "1h30m", "1.5h", "300ms"), as step-ca writes
/// durations, to whole seconds. Negative values and anything over 100 years are refused.
public enum GoDuration {
    public static let maximumSeconds: Double = 100 * 366 * 86_400

    public static func seconds(_ text: String, field: String) throws -> Int64 {
        let bad = AutoSSLError.general(
            "step-ca's config/ca.json \(field) is not a duration: \"\(StepCAConfig.printable(text))\"",
            hint: "step-ca durations look like 24h, 5m0s or 720h; nothing was changed")
        let bytes = Array(text.utf8)
        guard !bytes.isEmpty, bytes.count <= 64 else { throw bad }
        if bytes == Array("0".utf8) { return 0 }
        var index = 0
        if bytes[0] == UInt8(ascii: "+") { index = 1 }
        guard index < bytes.count else { throw bad }
        var total: Double = 0
        while index < bytes.count {
            let numberStart = index
            while index < bytes.count, (bytes[index] >= 0x30 && bytes[index] <= 0x39) || bytes[index] == UInt8(ascii: ".") { index += 1 }
            guard index > numberStart, let value = Double(String(decoding: bytes[numberStart..<index], as: UTF8.self)), value.isFinite else { throw bad }
            let unitStart = index
            while index < bytes.count, !((bytes[index] >= 0x30 && bytes[index] <= 0x39) || bytes[index] == UInt8(ascii: ".")) { index += 1 }
            let unit: Double
            switch String(decoding: bytes[unitStart..<index], as: UTF8.self) {
            case "ns": unit = 1e-9
            case "us", "µs", "μs": unit = 1e-6
            case "ms": unit = 1e-3
            case "s": unit = 1
            case "m": unit = 60
            case "h": unit = 3_600
            default: throw bad
            }
            total += value * unit
            guard total <= maximumSeconds else { throw bad }
        }
        return Int64(total.rounded(.down))
    }
}
