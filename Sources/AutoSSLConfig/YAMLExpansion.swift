import CYaml

/// How many values (scalars, sequences, mappings) a YAML text holds once every alias is expanded,
/// counted from libyaml's events before Yams builds anything. An alias repeats its anchor's whole
/// tree; aliases of aliases grow exponentially ("billion laughs"), and Yams spends that time and
/// memory merging them (`<<`), hashing them as mapping keys while it composes, and decoding them.
/// Counting events costs one pass over the text: each alias adds its anchor's size, known when
/// the anchored value ended.
enum YAMLExpansion {
    /// The expanded size, or nil as soon as it passes `limit`. A text libyaml cannot read gives
    /// what was counted up to the error (Yams reports the error when it reads the text).
    static func values(_ text: String, limit: Int) -> Int? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return 0 }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(text.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer -> Int? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            var anchors: [String: Int] = [:]
            // Sequences and mappings being read: their anchor and their size so far.
            var open: [(anchor: String?, size: Int)] = []
            var total = 0
            func add(_ a: Int, _ b: Int) -> Int {
                let (sum, overflow) = a.addingReportingOverflow(b)
                return overflow ? Int.max : sum
            }
            /// A value ended: its size counts for its parent (or the stream) and its anchor.
            func ended(_ size: Int, anchor: String?) -> Bool {
                if let anchor { anchors[anchor] = size }
                if open.isEmpty {
                    total = add(total, size)
                    return total <= limit
                }
                open[open.count - 1].size = add(open[open.count - 1].size, size)
                return add(total, open[open.count - 1].size) <= limit
            }
            func name(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
                pointer.map { String(cString: $0) }
            }
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return total }
                defer { yaml_event_delete(&event) }
                let within: Bool
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return total
                case YAML_SCALAR_EVENT:
                    within = ended(1, anchor: name(event.data.scalar.anchor))
                case YAML_ALIAS_EVENT:
                    within = ended(name(event.data.alias.anchor).flatMap { anchors[$0] } ?? 1, anchor: nil)
                case YAML_SEQUENCE_START_EVENT:
                    open.append((name(event.data.sequence_start.anchor), 1))
                    within = true
                case YAML_MAPPING_START_EVENT:
                    open.append((name(event.data.mapping_start.anchor), 1))
                    within = true
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    guard let value = open.popLast() else { return total }
                    within = ended(value.size, anchor: value.anchor)
                default:
                    within = true
                }
                if !within { return nil }
            }
        }
    }
}
