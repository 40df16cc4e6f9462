// swift-tools-version:5.4
import PackageDescription

// Tools version 5.4 on purpose: from 5.5 on, SwiftPM renames an executable's entry point to
// `<Target>_main` and links `main` to it, which leaves no room for libFuzzer's own `main`.

// libFuzzer targets for the parsers that read network or file bytes, one executable each. A
// package of its own so the main build never carries `-sanitize=fuzzer`; it depends only on the
// lean modules (no server, no database), which keeps a clean fuzz build small.
// Build and run with `scripts/fuzz TARGET SECONDS` (see docs/reliability.md).
// Each target and the modules it reads from the main package (none needs the server or database).
let targets: [(name: String, modules: [String])] = [
    ("FlatJSONFuzz", ["AutoSSLCore"]),
    ("JWTFuzz", ["AutoSSLCore"]),
    ("X5CTokenFuzz", ["AutoSSLCore"]),
    ("PEMFuzz", ["AutoSSLCore"]),
    ("CSRFuzz", ["AutoSSLCore"]),
    ("ACMEJWSFuzz", ["AutoSSLCore"]),
    ("OpenSSLEncFuzz", ["AutoSSLCore"]),
    ("PostgresSettingsFuzz", ["AutoSSLCore"]),
    ("OCSPRequestFuzz", ["AutoSSLCore"]),
    ("StepCAImportFuzz", ["AutoSSLCore"]),
    ("TimestampFuzz", ["AutoSSLCore"]),
    ("NonceFuzz", ["AutoSSLCore"]),
    ("TarListFuzz", ["AutoSSLHost"]),
    ("DNSMessageFuzz", ["AutoSSLWire"]),
    ("HTTPResponseFuzz", ["AutoSSLWire"]),
    ("RemoteReplyFuzz", ["AutoSSLRemote"]),
    ("ConfigFuzz", ["AutoSSLConfig"]),
]

let package = Package(
    name: "auto-ssl-fuzz",
    products: targets.map { .executable(name: $0.name, targets: [$0.name]) },
    dependencies: [
        .package(name: "auto-ssl", path: ".."),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        .target(name: "FuzzSupport"),
    ] + targets.map { target in
        .executableTarget(
            name: target.name,
            dependencies: ["FuzzSupport"] + target.modules.map { .product(name: $0, package: "auto-ssl") }
                + (target.modules == ["AutoSSLCore"] ? [
                    .product(name: "Crypto", package: "swift-crypto"),
                    .product(name: "X509", package: "swift-certificates"),
                    .product(name: "SwiftASN1", package: "swift-asn1"),
                ] : [])
        )
    }
)
