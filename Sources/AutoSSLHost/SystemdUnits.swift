import Foundation

/// systemd unit files the product installs, and their verification.
public enum SystemdUnits {
    /// One word of a unit file setting as systemd reads it back: `%` doubled (specifiers), `$`
    /// doubled where `exec` (ExecStart= expands variables), backslash and double quote escaped,
    /// control characters as `\xNN`, and the whole quoted when it holds a space, a quote, a
    /// backslash or a control character. A directory with a space or a `%` in its name stays one
    /// path instead of breaking the unit.
    public static func word(_ text: String, exec: Bool = false) -> String {
        var escaped = ""
        var quote = false
        for scalar in text.unicodeScalars {
            switch scalar {
            case "%": escaped += "%%"
            case "$" where exec: escaped += "$$"
            case "\\", "\"":
                escaped += "\\" + String(scalar)
                quote = true
            case " ", "\t", "'":
                escaped.unicodeScalars.append(scalar)
                quote = true
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    escaped += "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
                    quote = true
                } else {
                    escaped.unicodeScalars.append(scalar)
                }
            }
        }
        return quote ? "\"" + escaped + "\"" : escaped
    }

    /// `Environment=NAME=value`, the value kept whole (see `word`).
    static func environment(_ name: String, _ value: String) -> String {
        "Environment=" + word(name + "=" + value)
    }

    /// A hardened unit for `auto-ssl ca serve`: no new privileges, read-only system, private /tmp,
    /// write access only to the data directory, restart on failure. The CA password arrives as a
    /// systemd credential when a password file exists. With a `user` (and `group`) the service runs
    /// as that account instead of root; the only capability it may hold is binding a port below 1024,
    /// and only when `lowPort`.
    public static func caService(
        executable: String, configDir: String, dataDir: String, passwordFile: String?, lowPort: Bool,
        user: String? = nil, group: String? = nil
    ) -> String {
        var lines = [
            "# Written by auto-ssl ca install-service. Help: man auto-ssl-ca-serve, or auto-ssl ca serve --help.",
            "[Unit]",
            "Description=auto-ssl Certificate Authority",
            "Wants=network-online.target",
            "After=network-online.target",
            "",
            "[Service]",
            "Type=simple",
        ]
        if let user {
            lines.append("User=\(user)")
        }
        if let group {
            lines.append("Group=\(group)")
        }
        lines += [
            "ExecStart=\(word(executable, exec: true)) ca serve",
            environment("AUTO_SSL_CONFIG_DIR", configDir),
            environment("AUTO_SSL_DATA_DIR", dataDir),
            "Restart=on-failure",
            "RestartSec=5",
            "TimeoutStopSec=30",
            "UMask=0077",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "PrivateDevices=yes",
            "ProtectKernelTunables=yes",
            "ProtectKernelModules=yes",
            "ProtectKernelLogs=yes",
            "ProtectControlGroups=yes",
            "ProtectClock=yes",
            "ProtectHostname=yes",
            "RestrictNamespaces=yes",
            "RestrictRealtime=yes",
            // Lets the database writer thread raise its own priority to nice -10 without any
            // capability (RLIMIT_NICE); see WriterOptions.servingNice.
            "LimitNICE=-10",
            // Room for many clients: `ca serve` caps connections itself (4,096 in all, 128 per source).
            "LimitNOFILE=65536",
            "RestrictSUIDSGID=yes",
            "LockPersonality=yes",
            "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK",
            "ReadWritePaths=\(word(dataDir))",
            "ReadOnlyPaths=\(word(configDir))",
        ]
        if let passwordFile {
            // The path is the rest of the line (not a quoted word): only specifiers are escaped.
            lines.append("LoadCredential=ca-password:" + passwordFile.replacingOccurrences(of: "%", with: "%%"))
        }
        if lowPort {
            lines += ["AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"]
        } else {
            lines.append("CapabilityBoundingSet=")
        }
        lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
        return lines.joined(separator: "\n")
    }

    public enum Verification: Equatable, Sendable {
        case passed
        case failed(String)
        case unavailable
    }

    /// `systemd-analyze verify` where the tool exists.
    public static func verify(_ path: String, runner: CommandRunning = SystemCommandRunner()) -> Verification {
        guard runner.which("systemd-analyze") != nil else { return .unavailable }
        guard let result = runner.run("systemd-analyze", ["verify", path], timeout: 30) else { return .unavailable }
        // Warnings about the rest of the system (other units) are not about this file.
        let relevant = result.output.split(separator: "\n").filter { $0.contains((path as NSString).lastPathComponent) }
        if result.status == 0 && relevant.isEmpty { return .passed }
        return .failed(relevant.isEmpty ? result.output : relevant.joined(separator: "\n"))
    }

    public static var systemdIsRunning: Bool {
        FileManager.default.fileExists(atPath: "/run/systemd/system")
    }
}

extension SystemdUnits {
    public static let backupCalendars = ["daily": "daily", "weekly": "weekly", "monthly": "monthly"]

    /// The oneshot service the backup timer starts.
    public static func backupService(
        executable: String, configDir: String, dataDir: String, outputDirectory: String, retention: Int, passphraseFile: String
    ) -> String {
        """
        # Written by auto-ssl ca backup-schedule
        [Unit]
        Description=auto-ssl CA backup
        Wants=network-online.target
        After=network-online.target

        [Service]
        Type=oneshot
        ExecStart=\(word(executable, exec: true)) ca backup --output \(word(outputDirectory, exec: true)) --retention \(retention) --passphrase-file \(word(passphraseFile, exec: true))
        \(environment("AUTO_SSL_CONFIG_DIR", configDir))
        \(environment("AUTO_SSL_DATA_DIR", dataDir))
        UMask=0077
        NoNewPrivileges=yes
        ProtectSystem=strict
        PrivateTmp=yes
        PrivateDevices=yes
        ProtectKernelTunables=yes
        ProtectKernelModules=yes
        ProtectControlGroups=yes
        ReadWritePaths=\(word(dataDir)) \(word(outputDirectory))
        ReadOnlyPaths=\(word(configDir))

        """
    }

    public static func backupTimer(calendar: String) -> String {
        """
        # Written by auto-ssl ca backup-schedule
        [Unit]
        Description=auto-ssl CA backup (\(calendar))

        [Timer]
        OnCalendar=\(calendar)
        RandomizedDelaySec=15min
        Persistent=true

        [Install]
        WantedBy=timers.target

        """
    }
}

extension SystemdUnits {
    public static let renewServiceName = "auto-ssl-renew.service"
    public static let renewTimerName = "auto-ssl-renew.timer"

    /// The oneshot service the renewal timer starts. It must be able to write the certificate
    /// files and run the web server's reload command, so it is not sandboxed like the CA.
    public static func renewService(executable: String, configDir: String, dataDir: String, certDir: String) -> String {
        """
        # Written by auto-ssl server enroll
        [Unit]
        Description=auto-ssl certificate renewal
        Wants=network-online.target
        After=network-online.target

        [Service]
        Type=oneshot
        ExecStart=\(word(executable, exec: true)) server renew
        \(environment("AUTO_SSL_CONFIG_DIR", configDir))
        \(environment("AUTO_SSL_DATA_DIR", dataDir))
        \(environment("AUTO_SSL_CERT_DIR", certDir))
        UMask=0022
        TimeoutStartSec=5min

        """
    }

    /// Every 15 minutes, spread over 5 minutes so a fleet does not renew in lockstep; a tick missed
    /// while the machine was off runs at boot.
    public static func renewTimer() -> String {
        """
        # Written by auto-ssl server enroll
        [Unit]
        Description=auto-ssl certificate renewal check (every 15 minutes)

        [Timer]
        OnCalendar=*:0/15
        RandomizedDelaySec=5min
        Persistent=true

        [Install]
        WantedBy=timers.target

        """
    }
}
