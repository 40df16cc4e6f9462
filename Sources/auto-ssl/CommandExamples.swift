/// The EXAMPLES section of `--help`, one entry per command a person runs (keyed by the command
/// path after `auto-ssl`). ArgumentParser has no such section: `withExamples` appends it to the
/// help text it generated, after OPTIONS. Lines stay within 80 columns so nothing wraps.
enum CommandExamples {
    static let table: [String: [String]] = [
        "": [
            "auto-ssl ca init                       # on the CA host",
            "auto-ssl ca install-service --now",
            "auto-ssl server enroll --ca-url https://ca.internal:9000 --fingerprint FP",
            "auto-ssl client trust --ca-url https://ca.internal:9000 --fingerprint FP",
        ],
        "ca": ["auto-ssl ca init", "auto-ssl ca status", "auto-ssl ca certs list --expiring 48h"],
        "ca init": [
            "auto-ssl ca init --name \"Example Corp\" --address 10.0.0.5:9000 \\",
            "    --dns ca.internal",
            "auto-ssl ca init --non-interactive --address 127.0.0.1:9443 -q",
            "auto-ssl ca init --password-file ca.pass \\",
            "    --provisioner-password-file enroll.pass --key-type rsa",
            "auto-ssl ca init --address 10.0.0.5:9000 --dns ca.internal \\",
            "    --database postgres://autossl@db.internal/autossl \\",
            "    --database-password-file /etc/auto-ssl/database-password",
        ],
        "ca serve": [
            "auto-ssl ca serve",
            "auto-ssl ca serve --password-file /etc/auto-ssl/ca-password",
            "auto-ssl ca serve --replica-name ca2   # a replica of a CA on PostgreSQL",
        ],
        "ca database": ["auto-ssl ca database migrate --to postgres://autossl@db.internal/autossl"],
        "ca database migrate": [
            "auto-ssl ca database migrate --to postgres://autossl@db.internal/autossl \\",
            "    --database-password-file /etc/auto-ssl/database-password",
            "auto-ssl ca database migrate --to sqlite",
        ],
        "ca replica": ["auto-ssl ca replica add --output replica.bundle --address 10.0.0.6:9000", "auto-ssl ca replica list"],
        "ca replica add": [
            "auto-ssl ca replica add --output replica.bundle --address 10.0.0.6:9000 \\",
            "    --passphrase-file /root/bundle-passphrase",
        ],
        "ca replica list": ["auto-ssl ca replica list", "auto-ssl ca replica list --json"],
        "ca status": ["auto-ssl ca status", "auto-ssl ca status --json | jq -r .fingerprint"],
        "ca certs": ["auto-ssl ca certs list", "auto-ssl ca certs show 3a:f1:09:..."],
        "ca certs list": [
            "auto-ssl ca certs list",
            "auto-ssl ca certs list --expiring 48h",
            "auto-ssl ca certs list --revoked --json",
            "auto-ssl ca certs list --provisioner ops",
        ],
        "ca import": [
            "auto-ssl ca import --step-ca /root/.step --password-file ca.pass \\",
            "    --provisioner-password-file admin.pass",
            "auto-ssl ca import --auto-ssl-backup ca-backup.enc \\",
            "    --passphrase-file backup.pass",
        ],
        "ca token": ["auto-ssl ca token create --san web1.internal --san 10.0.0.5"],
        "ca token create": [
            "auto-ssl ca token create --san web1.internal --san 10.0.0.5",
            "auto-ssl ca token create --san web1.internal --ttl 30m --json",
        ],
        "ca fleet": [
            "auto-ssl ca fleet",
            "auto-ssl ca fleet --state renewal_overdue",
            "auto-ssl ca fleet --name web --json",
        ],
        "ca certs show": ["auto-ssl ca certs show 3a:f1:09:c2", "auto-ssl ca certs show 123456789 --pem > cert.pem"],
        "ca revoke": [
            "auto-ssl ca revoke 3a:f1:09:c2",
            "auto-ssl ca revoke 123456789 --reason-code 1 --reason \"key compromised\"",
        ],
        "ca provisioner": ["auto-ssl ca provisioner list", "auto-ssl ca provisioner add ops"],
        "ca provisioner list": ["auto-ssl ca provisioner list", "auto-ssl ca provisioner list --json"],
        "ca provisioner add": [
            "auto-ssl ca provisioner add ops --allow-dns .ops.internal \\",
            "    --max-duration 72h",
            "auto-ssl ca provisioner add ci --non-interactive --allow-ip 10.20.0.0/16",
            "auto-ssl ca provisioner add acme-int --type acme \\",
            "    --challenges http-01,dns-01 --require-eab",
        ],
        "ca provisioner update": [
            "auto-ssl ca provisioner update acme --challenges dns-01",
            "auto-ssl ca provisioner update acme --no-require-eab",
        ],
        "ca provisioner remove": ["auto-ssl ca provisioner remove ops", "auto-ssl ca provisioner remove ops --yes"],
        "ca provisioner password": [
            "auto-ssl ca provisioner password admin",
            "auto-ssl ca provisioner password admin --new-password-file new.pass",
        ],
        "ca provisioner eab": ["auto-ssl ca provisioner eab add acme", "auto-ssl ca provisioner eab list acme"],
        "ca provisioner eab add": ["auto-ssl ca provisioner eab add acme", "auto-ssl ca provisioner eab add acme --json"],
        "ca provisioner eab list": ["auto-ssl ca provisioner eab list acme"],
        "ca provisioner eab remove": ["auto-ssl ca provisioner eab remove KID"],
        "ca rotate-intermediate": [
            "auto-ssl ca rotate-intermediate",
            "auto-ssl ca rotate-intermediate --password-file ca.pass --yes",
            "auto-ssl ca rotate-intermediate --compromised 4f1c0e2a9b --yes",
        ],
        "ca backup": [
            "auto-ssl ca backup --output /var/backups/auto-ssl/ --retention 7",
            "auto-ssl ca backup verify /var/backups/auto-ssl/auto-ssl-backup-...",
        ],
        "ca backup create": [
            "auto-ssl ca backup --output /var/backups/auto-ssl/ --retention 7",
            "auto-ssl ca backup --output ca.backup --passphrase-file backup.pass -q",
            "auto-ssl ca backup --dest-type rsync \\",
            "    --rsync-target backup@vault:/srv/ca-backups/ --passphrase-file bp",
            "auto-ssl ca backup --dest-type s3 --s3-bucket ca-backups --s3-prefix ca/",
        ],
        "ca backup verify": ["auto-ssl ca backup verify ca.backup --passphrase-file backup.pass"],
        "ca restore": [
            "auto-ssl ca restore --input ca.backup --passphrase-file backup.pass",
            "auto-ssl ca restore --input ca.backup --new-address 10.0.0.6:9000 --force",
            "auto-ssl ca restore --input s3://ca-backups/ca/auto-ssl-backup-... \\",
            "    --s3-region eu-west-1",
            "auto-ssl ca restore --as-replica --input replica.bundle \\",
            "    --new-address 10.0.0.6:9000 --passphrase-file bundle.pass",
        ],
        "ca backup-schedule": [
            "auto-ssl ca backup-schedule",
            "auto-ssl ca backup-schedule --enable --schedule daily \\",
            "    --output /var/backups/auto-ssl --passphrase-file /etc/auto-ssl/bp",
            "auto-ssl ca backup-schedule --disable",
        ],
        "ca install-service": ["auto-ssl ca install-service", "auto-ssl ca install-service --now"],
        "ca reset": ["auto-ssl ca reset", "auto-ssl ca reset --yes"],
        "server": ["auto-ssl server enroll --ca-url https://ca.internal:9000 --fingerprint FP", "auto-ssl server status"],
        "server enroll": [
            "auto-ssl server enroll --ca-url https://ca.internal:9000 --fingerprint FP",
            "auto-ssl server enroll --ca-url https://ca.internal:9000 --fingerprint FP \\",
            "    --san web01.internal --san 10.0.0.21 --reload nginx",
            "auto-ssl server enroll --ca-url https://ca.internal:9000 --fingerprint FP \\",
            "    --password-file /run/enroll.pass --non-interactive -q",
            "auto-ssl server enroll --ca-url https://ca.internal:9000 --fingerprint FP \\",
            "    --token-file token.txt",
            "auto-ssl server enroll --ca-url https://ca1.internal:9000 \\",
            "    --ca-url https://ca2.internal:9000 --fingerprint FP",
        ],
        "server renew": ["auto-ssl server renew", "auto-ssl server renew --force -q", "auto-ssl server renew --daemon"],
        "server status": ["auto-ssl server status", "auto-ssl server status --json"],
        "server suspend": ["auto-ssl server suspend --reason \"web server migration\""],
        "server resume": ["auto-ssl server resume"],
        "server revoke": [
            "auto-ssl server revoke --reason \"decommissioned\"",
            "auto-ssl server revoke --serial 3a:f1:09:c2 --password-file enroll.pass",
        ],
        "server remove": ["auto-ssl server remove", "auto-ssl server remove --keep-certs --yes"],
        "server set-ca-url": ["auto-ssl server set-ca-url --ca-url https://ca2.internal:9000 --fingerprint FP"],
        "remote": ["auto-ssl remote enroll web1.internal --user admin", "auto-ssl remote status"],
        "remote enroll": [
            "auto-ssl remote enroll web1.internal --user admin --reload nginx",
            "auto-ssl remote enroll 10.0.0.7 --san app.internal --san 10.0.0.7 \\",
            "    --user deploy --port 2222 --identity ~/.ssh/fleet_ed25519",
            "auto-ssl remote enroll new1.internal --accept-new-host-key",
        ],
        "remote list": ["auto-ssl remote list", "auto-ssl remote list --json"],
        "remote status": ["auto-ssl remote status", "auto-ssl remote status --json", "auto-ssl remote status web1.internal"],
        "remote renew": ["auto-ssl remote renew", "auto-ssl remote renew web1.internal --force"],
        "remote remove": ["auto-ssl remote remove web1.internal", "auto-ssl remote remove old1.internal --forget-only"],
        "remote update": ["auto-ssl remote update", "auto-ssl remote update web1.internal"],
        "remote update-ca-url": [
            "auto-ssl remote update-ca-url --ca-url https://ca2.internal:9000",
            "auto-ssl remote update-ca-url --ca-url https://10.0.0.9:9000 \\",
            "    --fingerprint FP web1.internal",
        ],
        "cert": ["auto-ssl cert issue --ca-url URL --fingerprint FP --san app.internal \\", "    --out-cert app.crt --out-key app.key"],
        "cert issue": [
            "auto-ssl cert issue --ca-url https://ca.internal:9000 --fingerprint FP \\",
            "    --san app.internal --san 10.0.0.30 --out-cert app.crt --out-key app.key",
            "auto-ssl cert issue --ca-url https://ca.internal:9000 --fingerprint FP \\",
            "    --san job.internal --duration 24h --out-cert j.crt --out-key j.key \\",
            "    --password-file enroll.pass -q",
        ],
        "cert renew": [
            "auto-ssl cert renew --ca-url https://ca.internal:9000 --fingerprint FP \\",
            "    --cert app.crt --key app.key",
        ],
        "cert revoke": [
            "auto-ssl cert revoke --ca-url https://ca.internal:9000 --fingerprint FP \\",
            "    --cert app.crt --key app.key",
            "auto-ssl cert revoke --ca-url https://ca.internal:9000 --fingerprint FP \\",
            "    --serial 3a:f1:09:c2 --password-file enroll.pass",
        ],
        "client": ["auto-ssl client trust --ca-url https://ca.internal:9000 --fingerprint FP", "auto-ssl client status"],
        "client trust": [
            "auto-ssl client trust --ca-url https://ca.internal:9000 --fingerprint FP",
            "auto-ssl client trust --cert-file root_ca.crt --nss --java",
            "auto-ssl client trust --cert-file root_ca.crt --print-script macos > t.sh",
        ],
        "client status": ["auto-ssl client status", "auto-ssl client status --ca-url https://ca.internal:9000"],
        "client untrust": ["auto-ssl client untrust", "auto-ssl client untrust --fingerprint FP"],
        "info": ["auto-ssl info", "auto-ssl info --json"],
        "version": ["auto-ssl version"],
    ]

    /// `help` (ArgumentParser's text for one command) with that command's EXAMPLES appended. The
    /// command is read from the USAGE line; any other text (a completion script) is left alone.
    static func withExamples(_ help: String) -> String {
        guard let path = commandPath(inHelp: help), let examples = table[path], !examples.isEmpty else { return help }
        var text = help
        while text.hasSuffix("\n") { text.removeLast() }
        return text + "\n\nEXAMPLES:\n" + examples.map { "  " + $0 }.joined(separator: "\n")
    }

    /// "ca init" from "USAGE: auto-ssl ca init [--name <name>] ...": the words up to the first
    /// option, argument or placeholder.
    static func commandPath(inHelp help: String) -> String? {
        guard let usage = help.split(separator: "\n").first(where: { $0.hasPrefix("USAGE: auto-ssl") }) else { return nil }
        var words: [Substring] = []
        for word in usage.split(separator: " ").dropFirst(2) {
            guard let first = word.first, first.isLetter else { break }
            words.append(word)
        }
        return words.joined(separator: " ")
    }
}
