@testable import AutoSSLCore
import Foundation
import SwiftASN1
import Testing
import X509

/// Inputs the fuzz targets in Fuzz/ found, each held to the property it broke (the same inputs
/// are in the targets' seed corpora, Fuzz/Corpus/<Target>/regression-*).
@Suite struct FuzzFindingsTests {
    static func decoderReads(_ document: Data) -> Bool {
        (try? JSONDecoder().decode([String: Double].self, from: document)) != nil
    }

    /// FlatJSONFuzz: FlatJSON read `-2E-444…2` as -0.0, where JSONDecoder (the fallback it must
    /// never contradict) refuses a nonzero number that underflows to zero.
    @Test func numbersThatUnderflowToZeroAreLeftToJSONDecoder() throws {
        let found = #"{"n":1.5e3,"E":-2E-444444444444444444444444444444442,"":-2E-2,"p":1e+2}"#
        #expect(FlatJSON.object(Array(found.utf8)) == nil)
        #expect(!Self.decoderReads(Data(found.utf8)))
        for text in ["1e-400", "2.4e-324", "100e-402", "0.00001e-320", "-0.0000000001e-400"] {
            let document = Data(#"{"n":\#(text)}"#.utf8)
            #expect(FlatJSON.object(document) == nil, "\(text)")
            #expect(!Self.decoderReads(document), "\(text)")
        }
        // The smallest numbers that do not underflow still read, to the same value.
        for (text, value) in [("4.9e-324", 5e-324), ("2.5e-324", 5e-324), ("1e-320", 1e-320), ("-0", -0.0), ("0.000", 0.0)] {
            let document = Data(#"{"n":\#(text)}"#.utf8)
            #expect(FlatJSON.object(document) == ["n": .number(value)], "\(text)")
            #expect(try JSONDecoder().decode([String: Double].self, from: document) == ["n": value], "\(text)")
        }
        // A token's claims: the fast path no longer takes nbf 1e-400 as 0 where JSONDecoder refuses.
        let claims = Data(#"{"iss":"admin","aud":"x","nbf":1e-400,"exp":3,"jti":"j"}"#.utf8)
        #expect((try? ProvisionerTokenClaims.decode(claims)) == nil)
    }

    /// FlatJSONFuzz: FlatJSON read `0e3` as 0, which JSONDecoder refuses (it refuses some zeros
    /// written with an exponent, depending on their length), so every such zero is left to it.
    @Test func zerosWrittenWithAnExponentAreLeftToJSONDecoder() throws {
        let found = "{\"n\":0,\"m\":-0,\"iryFl\":0e3,\"E\":-3E-2,\"p\":1e0,\"!\":\r0,\"i\":796002}"
        #expect(FlatJSON.object(Array(found.utf8)) == nil)
        #expect(!Self.decoderReads(Data(found.utf8)))
        for text in ["0e1", "0E5", "0.00e1", "-0.0e5", "0.000e1", "0e0", "0e12", "-0e3", "0.0e-1"] {
            let document = Data(#"{"n":\#(text)}"#.utf8)
            #expect(FlatJSON.object(document) == nil, "\(text)")
            let claims = Data(#"{"iss":"admin","aud":"x","nbf":\#(text),"exp":3,"jti":"j"}"#.utf8)
            #expect((try? ProvisionerTokenClaims.decode(claims)) == (try? JSONDecoder().decode(ProvisionerTokenClaims.self, from: claims)), "\(text)")
        }
    }

    /// CSRFuzz: FastCSR read the CN "svc.i+ternal" as it is, where the library path reads a CN
    /// through swift-certificates' RFC 4514 description ("svc.i\+ternal"). With a leading space
    /// the two readings even name different hosts: " web.test" trims to web.test on the fast path
    /// and stays an invalid name on the library's, so such CNs now go to the library.
    @Test func commonNamesTheLibraryEscapesAreReadByTheLibrary() throws {
        let found: [UInt8] = [
            0x30, 0x82, 0x01, 0x0F, 0x30, 0x81, 0xB5, 0x02, 0x01, 0x00, 0x30, 0x17, 0x31, 0x15, 0x30, 0x13,
            0x06, 0x03, 0x55, 0x04, 0x03, 0x0C, 0x0C, 0x73, 0x76, 0x63, 0x2E, 0x69, 0x2B, 0x74, 0x65, 0x72,
            0x6E, 0x61, 0x6C, 0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01,
            0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04, 0xA8, 0xF9,
            0x64, 0xF5, 0x88, 0x7D, 0x82, 0x22, 0xAE, 0x31, 0x0D, 0x34, 0xF8, 0xE8, 0xF1, 0x4E, 0x6E, 0xB8,
            0x44, 0xCC, 0xD4, 0x41, 0xAE, 0xDE, 0x1B, 0xDF, 0xB6, 0x9D, 0x91, 0xA8, 0xF0, 0xCA, 0x31, 0x57,
            0xA3, 0xCA, 0x49, 0xD4, 0x64, 0x25, 0xC3, 0x3B, 0x68, 0x4A, 0xF5, 0xC1, 0x44, 0x4A, 0x87, 0x25,
            0x90, 0x5B, 0x4F, 0x58, 0x5A, 0xD1, 0x28, 0x52, 0x10, 0x99, 0x03, 0x02, 0x89, 0x03, 0xA0, 0x3C,
            0x30, 0x3A, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x0E, 0x31, 0x2D, 0x30,
            0x2B, 0x30, 0x29, 0x06, 0x03, 0x55, 0x1D, 0x11, 0x04, 0x22, 0x30, 0x20, 0x82, 0x0C, 0x73, 0x76,
            0x63, 0x2E, 0x69, 0x6E, 0x74, 0x65, 0x72, 0x6E, 0x61, 0x6C, 0x87, 0x10, 0xFD, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x30, 0x0A, 0x06, 0x08,
            0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03, 0x03, 0x49, 0x00, 0x30, 0x46, 0x02, 0x21, 0x00,
            0x94, 0x04, 0xE1, 0x29, 0x94, 0xF5, 0xDB, 0x11, 0x40, 0x0B, 0xBC, 0x8A, 0x1D, 0x5C, 0x0A, 0xEE,
            0xBC, 0x90, 0xE2, 0xFF, 0xF5, 0x24, 0xBB, 0x6A, 0xF6, 0x93, 0x86, 0xE3, 0x73, 0x9A, 0x78, 0x0B,
            0x02, 0x21, 0x00, 0xF9, 0x53, 0x32, 0x70, 0xC8, 0x3A, 0xBE, 0x58, 0x86, 0xEA, 0xFD, 0x23, 0x28,
            0x2C, 0xC1, 0xEF, 0xA1, 0xA4, 0x7A, 0xCB, 0x41, 0xD9, 0x39, 0x23, 0xE3, 0xAC, 0x00, 0x93, 0xA1,
            0x1D, 0xEF, 0x87,
        ]
        #expect(FastCSR.read(found) == nil)
        let library = try CertificateSigningRequest(derEncoded: found)
        #expect(library.subject.description == #"CN=svc.i\+ternal"#)

        // Correctly signed CSRs with such CNs read the same on both paths.
        let san = FastCSRTests.extensionRequest([FastCSRTests.subjectAltName([FastCSRTests.dns("other.test")])])
        for value in [" web.test", "web.test ", "#web.test", "web,test", "a+b.test", "a;b", "a\\b", "a\"b", "<a>"] {
            for attributes in [san, [0xA0, 0x00]] {
                let der = try FastCSRTests.signed(subject: FastCSRTests.commonName(0x0C, Array(value.utf8)), attributes: attributes)
                #expect(FastCSR.read(der) == nil, "\(value)")
                FastCSRTests.expectSameReading(der, "\(value)")
            }
        }
        // A CN the library leaves as it is still takes the fast path.
        let plain = try FastCSRTests.signed(subject: FastCSRTests.commonName(0x0C, Array("web test.x".utf8)), attributes: san)
        #expect(FastCSR.read(plain)?.commonName == "web test.x")
        FastCSRTests.expectSameReading(plain)
    }
}
