import CYaml

/// How large a YAML text is once every alias is expanded, measured from libyaml's events before
/// Yams builds anything. An alias repeats its anchor's whole tree; aliases of aliases grow
/// exponentially ("billion laughs"), and Yams spends that time and memory merging them (`<<`,
/// once per level of nesting), hashing them as mapping keys while it composes, and decoding them.
/// One pass over the text: each alias adds its anchor's size and height, known when the anchored
/// value ended, and every count is checked as it grows, so a text cut off half-way is measured too.
enum YAMLExpansion {
    /// The limits a text is held to: values (scalars, sequences, mappings) and nesting, both with
    /// aliases expanded.
    struct Limits {
        var values: Int
        var depth: Int
    }

    /// The expanded number of values, or nil as soon as the values or the nesting pass `limits`
    /// (also when libyaml cannot start). A text libyaml cannot read to the end gives what was
    /// counted up to the error: Yams reports the error itself when it reads the text.
    static func values(_ text: String, limits: Limits) -> Int? {
        if text.isEmpty { return 0 }
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return nil }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBufferPointer { buffer -> Int? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            // Each anchor's expanded size and height (containers down to its deepest, 0 for a scalar).
            var anchors: [String: (size: Int, height: Int)] = [:]
            // Sequences and mappings being read: anchor, the running count when they started, height so far.
            var open: [(anchor: String?, start: Int, height: Int)] = []
            var seen = 0
            /// A value of `height` ended inside the innermost open container.
            func ended(height: Int) {
                if !open.isEmpty { open[open.count - 1].height = max(open[open.count - 1].height, height + 1) }
            }
            func name(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
                pointer.map { String(cString: $0) }
            }
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return seen }
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return seen
                case YAML_SCALAR_EVENT:
                    seen += 1
                    if let anchor = name(event.data.scalar.anchor) { anchors[anchor] = (1, 0) }
                    ended(height: 0)
                case YAML_ALIAS_EVENT:
                    let target = name(event.data.alias.anchor).flatMap { anchors[$0] } ?? (1, 0)
                    let (sum, overflow) = seen.addingReportingOverflow(target.size)
                    seen = overflow ? Int.max : sum
                    if open.count + target.height > limits.depth { return nil }
                    ended(height: target.height)
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    seen += 1
                    let anchor = event.type == YAML_SEQUENCE_START_EVENT
                        ? name(event.data.sequence_start.anchor) : name(event.data.mapping_start.anchor)
                    open.append((anchor, seen, 1))
                    if open.count > limits.depth { return nil }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    guard let value = open.popLast() else { return seen }
                    // The container and everything counted since it started.
                    if let anchor = value.anchor { anchors[anchor] = (seen - value.start + 1, value.height) }
                    ended(height: value.height)
                default:
                    break
                }
                if seen > limits.values { return nil }
            }
        }
    }
}
