import AutoSSLCore
import Foundation

/// dns-01 (RFC 8555 §8.4): a TXT record at `_acme-challenge.NAME` holding base64url(SHA-256(key
/// authorization)), looked up at the provisioner's resolver (or the system's first nameserver).
/// The only challenge that proves a wildcard; it cannot validate an IP address.
extension ChallengeValidator {
    func dns01(_ identifier: ACMEIdentifierValue, keyAuthorization: String, deadline: ValidationDeadline) async throws {
        guard case .dns(let name) = identifier else {
            throw ACMEProblem(.malformed, "dns-01 cannot validate an IP address")
        }
        let expected = ACMEChallengeValues.dnsTXT(keyAuthorization)
        let records: [String]
        do {
            records = try await network.txtRecords("_acme-challenge." + name, resolver: resolver, deadline: deadline)
        } catch let problem as ACMEProblem {
            throw problem
        } catch {
            throw ACMEProblem(.dns, "TXT look-up of _acme-challenge.\(name) failed: \(ValidationWords.plain(error))")
        }
        guard records.contains(expected) else {
            throw ACMEProblem(
                .incorrectResponse,
                records.isEmpty
                    ? "no TXT record at _acme-challenge.\(name)"
                    : "wrong content: the TXT records at _acme-challenge.\(name) do not hold the expected value")
        }
    }
}
