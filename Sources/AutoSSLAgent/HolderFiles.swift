import AutoSSLCore
import AutoSSLIO
import Foundation
import SwiftASN1
import X509

/// Reading the certificate chain and key files an app or web server uses (`cert renew|revoke`,
/// `server renew|revoke`): PEM, the key unencrypted and belonging to the first certificate. A file
/// that is not what it should be is a wrong argument (exit 2) where the command line named it;
/// `ServerAgent.holder` reports the files recorded at enrollment as damaged (exit 1). `repair` is
/// the hint for a file that is missing or not what it should be: how to put it right.
public enum HolderFiles {
    public static let repair = "give the certificate (PEM, the chain the CA issued) and its own private key"

    public static func chain(_ path: String, repair: String = repair) throws -> [Certificate] {
        let absolute = Directories.absolute(path)
        guard FileOperations.exists(absolute) else {
            throw AutoSSLError.general("\(path) does not exist", hint: repair)
        }
        let text = try FileOperations.readText(absolute)
        let documents = ((try? PEMDocument.parseMultiple(pemString: text)) ?? []).filter { $0.discriminator == "CERTIFICATE" }
        guard !documents.isEmpty else { throw AutoSSLError.invalidArgument("\(path) holds no PEM certificate", hint: repair) }
        return try documents.enumerated().map { index, document in
            do {
                return try Certificate(derEncoded: document.derBytes)
            } catch {
                throw AutoSSLError.invalidArgument("certificate \(index + 1) in \(path) is a PEM block that is not an X.509 certificate", hint: repair)
            }
        }
    }

    public static func key(_ path: String, matching certificate: Certificate, repair: String = repair) throws -> SigningKey {
        let absolute = Directories.absolute(path)
        guard FileOperations.exists(absolute) else {
            throw AutoSSLError.general("\(path) does not exist", hint: repair)
        }
        let text = try FileOperations.readText(absolute)
        guard let document = try? PEMDocument(pemString: text) else {
            throw AutoSSLError.invalidArgument("\(path) is not a PEM private key", hint: repair)
        }
        if document.discriminator == "ENCRYPTED PRIVATE KEY" {
            throw AutoSSLError.invalidArgument(
                "\(path) is encrypted; renewal needs the key the web server uses (unencrypted, mode 0600)",
                hint: "write it unencrypted: (umask 077; openssl pkey -in \(path) -out \(path).new) && mv \(path).new \(path)")
        }
        let key: SigningKey
        do {
            key = try SigningKey(derRepresentation: document.derBytes)
        } catch let error as AutoSSLError {
            throw AutoSSLError.invalidArgument("\(path): \(error.message)", hint: repair)
        } catch {
            throw AutoSSLError.invalidArgument("\(path): the private key could not be parsed", hint: repair)
        }
        guard key.publicKey == certificate.publicKey else {
            throw AutoSSLError.invalidArgument("the key in \(path) does not belong to the certificate", hint: repair)
        }
        return key
    }
}
