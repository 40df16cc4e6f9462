// swift-tools-version:6.2
import PackageDescription

// Each dependency must earn its place: a clean build of this set is the floor of every CI run.
let package = Package(
    name: "auto-ssl",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "auto-ssl", targets: ["auto-ssl"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
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
        // The authority: CA material, configuration, provisioners.
        .target(
            name: "AutoSSLCA",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLIO",
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The machine: OS detection, network addresses, firewall, external tools.
        .target(
            name: "AutoSSLHost",
            dependencies: [
                "AutoSSLCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The CLI: argument parsing and output only.
        .executableTarget(
            name: "auto-ssl",
            dependencies: [
                "AutoSSLCore",
                "AutoSSLIO",
                "AutoSSLCA",
                "AutoSSLHost",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Helpers shared by the test targets: temporary directories, running processes (openssl, python).
        .target(name: "TestSupport", dependencies: ["AutoSSLCore"], path: "Tests/TestSupport"),
        .testTarget(name: "AutoSSLCoreTests", dependencies: ["AutoSSLCore", "TestSupport"]),
        .testTarget(name: "AutoSSLCATests", dependencies: ["AutoSSLCA", "AutoSSLIO", "AutoSSLCore", "TestSupport"]),
        .testTarget(name: "AutoSSLHostTests", dependencies: ["AutoSSLHost"]),
        // Runs the built binary; depending on the executable makes `swift test` build it first.
        .testTarget(name: "EndToEndTests", dependencies: ["auto-ssl", "AutoSSLCore", "TestSupport"]),
    ]
)
