import AutoSSLHost
import Foundation
import FuzzSupport

/// The backup's tar reader, `TarReader.members(of:)` (ustar, GNU long names, pax), on the
/// uncompressed archive. Nothing may crash, and every member it accepts is one restore can write
/// safely: a relative path without `.`, `..` or empty components, its data inside the archive,
/// no data for a directory.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ start: UnsafeRawPointer, _ count: Int) -> CInt {
    let tar = Fuzz.bytes(start, count)
    guard let members = try? TarReader.members(of: tar) else { return 0 }
    Fuzz.require(members.count <= TarReader.defaultMaximumMembers, "\(members.count) members")
    for member in members {
        Fuzz.require(!member.path.isEmpty && !member.path.hasPrefix("/"), "path \(member.path.debugDescription)")
        Fuzz.require(!member.components.contains { $0 == ".." || $0 == "." || $0.isEmpty }, "path \(member.path.debugDescription)")
        Fuzz.require(member.path.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value != 0x7F }, "control character in \(member.path.debugDescription)")
        Fuzz.require(member.offset >= 512 && member.size >= 0 && member.offset + member.size <= tar.count,
                     "data \(member.offset)+\(member.size) outside \(tar.count) bytes")
        Fuzz.require(member.kind == .file || member.size == 0, "a directory with data")
        _ = TarReader.printable(member.path)
    }
    return 0
}
