import ArgumentParser

/// "Did you mean status?" for a mistyped subcommand (`auto-ssl ca stauts`), as ArgumentParser
/// already says for a mistyped option.
enum SubcommandSuggestion {
    /// What the walk needs of one command (read through a generic function: the compiler is
    /// happier with a concrete type than with closures over an existential metatype).
    struct Node {
        var name: String
        var aliases: [String]
        var subcommands: [any ParsableCommand.Type]
        var hasDefaultSubcommand: Bool
    }

    static func node<C: ParsableCommand>(_ type: C.Type) -> Node {
        let configuration = C.configuration
        return Node(
            name: C._commandName, aliases: configuration.aliases, subcommands: configuration.subcommands,
            hasDefaultSubcommand: configuration.defaultSubcommand != nil)
    }

    /// The error text for `arguments` when one of them is not a subcommand of the group it follows;
    /// nil when the subcommands are all known (the error is then ArgumentParser's own).
    static func message(for arguments: [String]) -> String? {
        var current = node(AutoSSLCommand.self)
        var path = [current.name]
        for argument in arguments {
            // Options and what follows them are ArgumentParser's to judge; `help` is its pseudo-command.
            if argument.hasPrefix("-") || argument == "help" { return nil }
            guard !current.subcommands.isEmpty else { return nil }
            var children: [Node] = []
            for type in current.subcommands { children.append(node(type)) }
            if let next = children.first(where: { $0.name == argument || $0.aliases.contains(argument) }) {
                current = next
                path.append(next.name)
                continue
            }
            let names = children.map(\.name)
            let close = closest(to: argument, in: names)
            // A group with a default subcommand (`ca backup`) may be given that subcommand's own
            // arguments: only a near miss is worth a word there.
            if current.hasDefaultSubcommand && close.isEmpty { return nil }
            let group = path.joined(separator: " ")
            var text = "Error: Unknown subcommand '\(argument)' of '\(group)'."
            if !close.isEmpty {
                text += " Did you mean " + close.map { "'\($0)'" }.joined(separator: " or ") + "?"
            }
            text += "\nSubcommands: \(names.joined(separator: ", "))"
            text += "\n  See '\(group) --help' for more information."
            return text
        }
        return nil
    }

    /// ArgumentParser's "Unknown option '--ca-ur'" with the command's nearest options suggested
    /// ("Did you mean '--ca-url'?"); nil when the message is another one or nothing is near.
    static func optionMessage(for arguments: [String], message: String) -> String? {
        let prefix = "Error: Unknown option '"
        guard message.hasPrefix(prefix), !message.contains("Did you mean"), let end = message.dropFirst(prefix.count).firstIndex(of: "'") else { return nil }
        let unknown = String(message[message.index(message.startIndex, offsetBy: prefix.count)..<end])
        guard unknown.hasPrefix("--"), unknown.count > 3 else { return nil }
        // The command the arguments name: its subcommands followed as far as they go.
        var command: any ParsableCommand.Type = AutoSSLCommand.self
        for argument in arguments where !argument.hasPrefix("-") {
            guard let next = command.configuration.subcommands.first(where: {
                $0._commandName == argument || $0.configuration.aliases.contains(argument)
            }) else { break }
            command = next
        }
        let help = AutoSSLCommand.helpMessage(for: command, columns: 1_000)
        var options = Set<String>()
        for word in help.split(whereSeparator: { " ,|[]<>()\n".contains($0) }) where word.hasPrefix("--") && word.count > 3 {
            let name = word.prefix { $0.isLetter || $0.isNumber || $0 == "-" }
            if name.count > 3 { options.insert(String(name)) }
        }
        let close = closest(to: unknown, in: options.sorted())
        guard !close.isEmpty else { return nil }
        var lines = message.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines[0] += " Did you mean " + close.map { "'\($0)'" }.joined(separator: " or ") + "?"
        return lines.joined(separator: "\n")
    }

    /// The names within a small edit distance of `typo` (transpositions count once), best first;
    /// a unique prefix counts too (`ca prov` for provisioner).
    static func closest(to typo: String, in names: [String]) -> [String] {
        let lower = typo.lowercased()
        let scored = names.map { ($0, distance(lower, $0)) }
        let limit = max(1, min(3, lower.count / 3))
        let best = scored.filter { $0.1 <= limit }.sorted { $0.1 < $1.1 }
        if let first = best.first { return best.filter { $0.1 == first.1 }.map(\.0) }
        let prefixed = names.filter { lower.count >= 2 && $0.hasPrefix(lower) }
        return prefixed.count == 1 ? prefixed : []
    }

    /// Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
                }
            }
        }
        return d[a.count][b.count]
    }
}
