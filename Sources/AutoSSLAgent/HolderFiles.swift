import AutoSSLCore
import AutoSSLIO
import Foundation
import SwiftASN1
import X509

/// Reading the certificate chain and key files an app or web server uses (`cert renew|revoke`,
/// `server renew|revoke`): PEM, the key unencrypted and belonging to the first certificate. A file
/// that is not what it should be is a wrong argument (exit 2) where the command line named it;
/// `ServerAgent.holder` reports the files recorded at enrollment as damaged (exit 1), with how to
/// repair them there.
public enum HolderFiles {
    static let repair = "give the certificate (PEM, the chain the CA issued) and its own private key"

    public static func chain(_ path: String) throws -> [Certificate] {
        let absolute = Directories.absolute(path)
        guard FileOperations.exists(absolute) else {
            throw AutoSSLError.general("\(path) does not exist")
        }
        let text = try FileOperations.readText(absolute)
        let documents = ((try? PEMDocument.parseMultiple(pemString: text)) ?? []).filter { $0.discriminator == "CERTIFICATE" }
        guard !documents.isEmpty else { throw AutoSSLError.invalidArgument("\(path) holds no PEM certificate", hint: repair) }
        return try documents.map { try Certificate(derEncoded: $0.derBytes) }
    }

    public static func key(_ path: String, matching certificate: Certificate) throws -> SigningKey {
        let text = try FileOperations.readText(Directories.absolute(path))
        guard let document = try? PEMDocument(pemString: text) else {
            throw AutoSSLError.invalidArgument("\(path) is not a PEM private key", hint: repair)
        }
        if document.discriminator == "ENCRYPTED PRIVATE KEY" {
            throw AutoSSLError.invalidArgument(
                "\(path) is encrypted; renewal needs the key the web server uses (unencrypted, mode 0600)",
                hint: "write it unencrypted (openssl pkey -in \(path) -out \(path).new, then chmod 0600 \(path).new and move it over \(path))")
        }
        let key = try SigningKey(derRepresentation: document.derBytes)
        guard key.publicKey == certificate.publicKey else {
            throw AutoSSLError.invalidArgument("the key in \(path) does not belong to the certificate", hint: repair)
        }
        return key
    }
}
