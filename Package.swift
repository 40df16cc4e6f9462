// swift-tools-version:6.2
import PackageDescription

// Each dependency must earn its place: a clean build of this set is the floor of every CI run.
let package = Package(
    name: "auto-ssl",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "auto-ssl", targets: ["auto-ssl"]),
        .executable(name: "auto-ssl-bench", targets: ["auto-ssl-bench"]),
        // For the fuzz package in Fuzz/, which depends on these lean modules only.
        .library(name: "AutoSSLCore", targets: ["AutoSSLCore"]),
        .library(name: "AutoSSLHost", targets: ["AutoSSLHost"]),
        .library(name: "AutoSSLWire", targets: ["AutoSSLWire"]),
        .library(name: "AutoSSLRemote", targets: ["AutoSSLRemote"]),
        .library(name: "AutoSSLConfig", targets: ["AutoSSLConfig"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // Pure PKI: keys, certificate profiles, CSRs, durations, fingerprints, encrypted PEM, JOSE. No I/O.
        .target(
            name: "AutoSSLCore",
            dependencies: [
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // Files and directories: atomic writes, permissions, the AUTO_SSL_* directory layout.
        .target(
            name: "AutoSSLIO",
            dependencies: ["AutoSSLCore"]
        ),
        // The configuration schema (config.yaml): the CA's settings, provisioners, policies, a server's
        // enrollment. Read by the CA and the agent alike; no behaviour beyond loading and saving.
        .target(
            name: "AutoSSLConfig",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLIO",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        // Persistence: the CA's database behind protocols; SQLite (WAL, group commit) by default,
        // PostgreSQL for replicas.
        .target(
            name: "AutoSSLStore",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLIO",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // Only to recognise the pool's "cannot connect" error (postgres-nio's own pool).
                .product(name: "_ConnectionPoolModule", package: "postgres-nio"),
                // TLS to PostgreSQL (sslmode, sslrootcert).
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // What the CA and the application servers report to Prometheus: the metric families (names,
        // labels, buckets) in one place, and their text exposition. No I/O.
        .target(
            name: "AutoSSLMetrics",
            dependencies: [
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // The authority: CA material, configuration, provisioners, tokens, policy, issuance, audit. No HTTP.
        .target(
            name: "AutoSSLCA",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLMetrics",
                "AutoSSLConfig",
                "AutoSSLIO",
                "AutoSSLStore",
                "AutoSSLHost",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Reading what hostile peers send during ACME validation: DNS messages and HTTP answers
        // (NIO's HTTP/1 decoder), bounded. No sockets of its own; small, so it can be fuzzed.
        .target(
            name: "AutoSSLWire",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // The ACME server's rules without HTTP (RFC 8555, 8737, 8738): typed state and wire objects,
        // the ACME authority (accounts, orders, finalize, revocation, key rollover, nonces), and
        // validation over a `ValidationNetwork` (NIO by default, a fake in tests). No Hummingbird, no GRDB.
        .target(
            name: "AutoSSLACME",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLConfig",
                "AutoSSLCA",
                "AutoSSLStore",
                "AutoSSLWire",
                "AutoSSLHost",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The HTTPS surface of the CA (Hummingbird + NIOSSL).
        .target(
            name: "AutoSSLServer",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLConfig",
                "AutoSSLACME",
                "AutoSSLCA",
                "AutoSSLHost",
                "AutoSSLStore",
                "AutoSSLWire",
                "AutoSSLMetrics",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Talking to a CA: fingerprint bootstrap, provisioner key, one-time tokens, issuance.
        .target(
            name: "AutoSSLClient",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLWire",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
            ]
        ),
        // The load generator of `auto-ssl-bench sign`: many concurrent HTTPS clients against `/sign`.
        // Kept out of the client library that servers use and out of the shipped binary.
        .target(
            name: "AutoSSLBench",
            dependencies: [
                "AutoSSLClient",
                "AutoSSLCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        // The application-server role: enroll, renew (timer or daemon), status, suspend, revoke, remove.
        .target(
            name: "AutoSSLAgent",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLMetrics",
                "AutoSSLConfig",
                "AutoSSLIO",
                "AutoSSLClient",
                "AutoSSLHost",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // Backups: the encrypted archive (create, verify, restore), destinations behind one protocol
        // (a directory, rsync over ssh, S3 with Signature V4), rotation and the last result for `ca status`.
        .target(
            name: "AutoSSLBackup",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLConfig",
                "AutoSSLIO",
                "AutoSSLStore",
                "AutoSSLCA",
                "AutoSSLHost",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        // The machine: OS detection, network addresses, firewall, external tools.
        .target(
            name: "AutoSSLHost",
            dependencies: [
                "AutoSSLCore",
                "CAutoSSLSpawn",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Enrolling and managing application servers over ssh from the CA host (`auto-ssl remote`):
        // ssh/scp command lines and their failures, the host inventory, the remote operations.
        .target(
            name: "AutoSSLRemote",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLIO",
                "AutoSSLHost",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // The CLI: argument parsing and output only.
        // The load generators (`auto-ssl-bench sign|stages`): a binary of their own, so the shipped
        // `auto-ssl` carries no benchmark code. It starts the `auto-ssl` built next to it.
        .executableTarget(
            name: "auto-ssl-bench",
            dependencies: [
                "AutoSSLBench",
                "AutoSSLBackup",
                "AutoSSLCA",
                "AutoSSLClient",
                "AutoSSLConfig",
                "AutoSSLCore",
                "AutoSSLHost",
                "AutoSSLIO",
                "AutoSSLStore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ]
        ),
        // Sends Swift's global-executor jobs to NIO's event loops in `ca serve` (see
        // Sources/auto-ssl/EventLoopExecutor.swift); C because the hook is a runtime variable.
        .target(name: "CAutoSSLExecutorHook"),
        // glibc's GNU-only process calls (close every inherited descriptor in a spawned child,
        // close-on-exec pipes), which Swift's Glibc module does not declare.
        .target(name: "CAutoSSLSpawn"),
        .executableTarget(
            name: "auto-ssl",
            dependencies: [
                "CAutoSSLExecutorHook",
                "AutoSSLCore",
                "AutoSSLConfig",
                "AutoSSLIO",
                "AutoSSLCA",
                "AutoSSLStore",
                "AutoSSLServer",
                "AutoSSLClient",
                "AutoSSLHost",
                "AutoSSLAgent",
                "AutoSSLBackup",
                "AutoSSLMetrics",
                "AutoSSLRemote",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ]
        ),
        // Helpers shared by the test targets: temporary directories, running processes (openssl, python).
        .target(name: "TestSupport", dependencies: ["AutoSSLCore", "AutoSSLHost", "CAutoSSLSpawn"], path: "Tests/TestSupport"),
        .testTarget(name: "AutoSSLCoreTests", dependencies: ["AutoSSLCore", "TestSupport"]),
        .testTarget(name: "AutoSSLWireTests", dependencies: ["AutoSSLWire"]),
        .testTarget(
            name: "AutoSSLClientTests",
            dependencies: [
                "AutoSSLClient", "AutoSSLCore", "TestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
            ]),
        // The store's own tests and the contract every CertificateDatabase must pass.
        .testTarget(
            name: "AutoSSLStoreTests",
            dependencies: [
                "AutoSSLStore", "AutoSSLCore", "TestSupport",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "AutoSSLACMETests",
            dependencies: [
                "AutoSSLACME", "AutoSSLConfig", "AutoSSLCA", "AutoSSLStore", "AutoSSLCore", "AutoSSLWire", "AutoSSLIO", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "AutoSSLServerTests",
            dependencies: [
                "AutoSSLServer", "AutoSSLACME", "AutoSSLConfig", "AutoSSLCA", "AutoSSLCore", "AutoSSLIO", "AutoSSLStore", "TestSupport",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "X509", package: "swift-certificates"),
            ]),
        .testTarget(
            name: "AutoSSLCATests",
            dependencies: ["AutoSSLCA", "AutoSSLConfig", "AutoSSLStore", "AutoSSLIO", "AutoSSLCore", "AutoSSLMetrics", "TestSupport"]),
        .testTarget(
            name: "AutoSSLAgentTests",
            dependencies: ["AutoSSLAgent", "AutoSSLClient", "AutoSSLMetrics", "AutoSSLConfig", "AutoSSLCA", "AutoSSLHost", "AutoSSLIO", "AutoSSLCore", "TestSupport",
                           .product(name: "X509", package: "swift-certificates")]),
        .testTarget(
            name: "AutoSSLBackupTests",
            dependencies: ["AutoSSLBackup", "AutoSSLCore", "AutoSSLHost", "AutoSSLIO", "TestSupport"]),
        .testTarget(name: "AutoSSLRemoteTests", dependencies: ["AutoSSLRemote", "AutoSSLHost", "AutoSSLCore", "AutoSSLIO", "TestSupport"]),
        .testTarget(
            name: "AutoSSLHostTests",
            dependencies: ["AutoSSLHost", "AutoSSLCore", .product(name: "X509", package: "swift-certificates")]),
        // Runs the built binary; depending on the executable makes `swift test` build it first.
        .testTarget(
            name: "EndToEndTests", dependencies: ["auto-ssl", "AutoSSLCore", "TestSupport"],
            exclude: ["Resources"]),  // scripts for independent implementations, run from the source tree
    ]
)
