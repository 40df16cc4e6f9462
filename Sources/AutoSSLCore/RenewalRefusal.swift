/// The words with which the CA refuses to renew a certificate because of a revocation, and by
/// which its clients (`server renew`, `server adopt`) tell such a refusal from any other. The
/// test is on these whole phrases, never on the word "revoked" alone: a refusal for another
/// reason may quote names or text (a host called `unrevoked-api.example.com`), and a client that
/// took it for a revocation would stop renewing for good.
public enum RenewalRefusal {
    /// Starts the refusal of a revoked certificate (first: a client keeps only the start of a
    /// message, and the revocation's reason that follows is free text of any length).
    public static let revokedCertificate = "revoked certificates are never renewed"
    /// The refusal of a key that a revocation cut off.
    public static let revokedKey =
        "a certificate with the same key was revoked, so this key is no longer trusted; enroll again with a new key (`auto-ssl server enroll`)"

    /// Whether a refusal's message is one of the two above.
    public static func isRevocation(_ message: String) -> Bool {
        message.contains(revokedCertificate) || message.contains(revokedKey)
    }
}
