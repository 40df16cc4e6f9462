import AutoSSLWire
import Testing

@Suite struct HTTPAnswerTests {
    func decode(_ text: String, limits: HTTPAnswer.Limits = .init()) -> Result<HTTPAnswer, HTTPAnswerFailure> {
        HTTPAnswer.decode(Array(text.utf8), limits: limits)
    }

    @Test func readsAContentLengthAnswerAndAChunkedOne() throws {
        let plain = try decode("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhello").get()
        #expect(plain == HTTPAnswer(status: 200, headers: ["content-length": "5", "x-a": "1"], body: Array("hello".utf8)))
        let chunked = try decode("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").get()
        #expect(chunked.body == Array("abcde".utf8))
        let untilClose = try decode("HTTP/1.1 302 Found\r\nLocation: /x\r\nConnection: close\r\n\r\nbody").get()
        #expect(untilClose.status == 302 && untilClose.headers["location"] == "/x" && untilClose.body == Array("body".utf8))
    }

    @Test func hostileLengthsAreRefusedNotTrapped() {
        for text in [
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nabc",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            "HTTP/1.1 999999999999 OK\r\n\r\n",
            "garbage\r\n\r\n",
            "",
        ] {
            switch decode(text) {
            case .success(let answer): Issue.record("accepted \(text.debugDescription) as \(answer)")
            case .failure: break
            }
        }
    }

    @Test func sizesAreCapped() {
        var limits = HTTPAnswer.Limits()
        limits.maximumBodyBytes = 100
        let big = "HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n" + String(repeating: "a", count: 101)
        #expect(decode(big, limits: limits) == .failure(.tooLarge(limit: 100)))
        let manyHeaders = "HTTP/1.1 200 OK\r\n" + String(repeating: "X-A: b\r\n", count: 200) + "Content-Length: 0\r\n\r\n"
        #expect(throws: HTTPAnswerFailure.self) { try decode(manyHeaders).get() }
        let total = "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + String(repeating: "a", count: 200_000)
        #expect(decode(total) == .failure(.tooLarge(limit: HTTPAnswer.Limits().maximumBytes)))
    }

    @Test func anIncompleteAnswerIsNotAnAnswer() {
        #expect(decode("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc") == .failure(.closedBeforeAnswer))
        #expect(throws: HTTPAnswerFailure.self) { try decode("HTTP/1.1 200 OK\r\nContent-Le").get() }
    }
}

@Suite struct DNSMessageTests {
    /// An answer as a server would send it, with the question echoed and the name compressed.
    static func answer(
        id: UInt16 = 0x1234, flags: UInt16 = 0x8180, name: String = "_acme-challenge.example.test", type: UInt16 = 16,
        records: [[UInt8]]
    ) throws -> [UInt8] {
        var bytes: [UInt8] = [UInt8(id >> 8), UInt8(id & 0xFF), UInt8(flags >> 8), UInt8(flags & 0xFF), 0, 1, 0, UInt8(records.count), 0, 0, 0, 0]
        let query = try DNSMessage.query(id: id, name: name, type: .txt)
        bytes += query[12..<(query.count - 4)]
        bytes += [UInt8(type >> 8), UInt8(type & 0xFF), 0, 1]
        for data in records {
            bytes += [0xC0, 12, UInt8(type >> 8), UInt8(type & 0xFF), 0, 1, 0, 0, 0, 60, UInt8(data.count >> 8), UInt8(data.count & 0xFF)]
            bytes += data
        }
        return bytes
    }

    @Test func readsTXTRecordsOfTheQuestionAsked() throws {
        let message = try Self.answer(records: [[3] + Array("abc".utf8) + [2] + Array("de".utf8), [1, 0x41]])
        let parsed = try DNSMessage.parseResponse(message, id: 0x1234, name: "_acme-challenge.EXAMPLE.test", type: .txt)
        #expect(parsed.records == [Array("abcde".utf8), [0x41]] && !parsed.truncated)
    }

    @Test func refusesSpoofedOrMismatchedAnswers() throws {
        let good = try Self.answer(records: [[1, 0x41]])
        #expect(throws: DNSMessage.Failure.self) { try DNSMessage.parseResponse(good, id: 0x1235, name: "_acme-challenge.example.test", type: .txt) }
        #expect(throws: DNSMessage.Failure.self) { try DNSMessage.parseResponse(good, id: 0x1234, name: "other.test", type: .txt) }
        #expect(throws: DNSMessage.Failure.self) { try DNSMessage.parseResponse(good, id: 0x1234, name: "_acme-challenge.example.test", type: .a) }
        let query = try Self.answer(flags: 0x0100, records: [[1, 0x41]])
        #expect(throws: DNSMessage.Failure.self) { try DNSMessage.parseResponse(query, id: 0x1234, name: "_acme-challenge.example.test", type: .txt) }
    }

    @Test func notesTruncationSoTheCallerRetriesOverTCP() throws {
        var message = try Self.answer(flags: 0x8380, records: [[5] + Array("abcde".utf8)])
        message.removeLast(3)
        let parsed = try DNSMessage.parseResponse(message, id: 0x1234, name: "_acme-challenge.example.test", type: .txt)
        #expect(parsed.truncated && parsed.records.isEmpty)
    }

    @Test func hostileLengthsAndPointersAreRefusedNotTrapped() throws {
        let good = try Self.answer(records: [[3] + Array("abc".utf8)])
        // Every truncation and every single-byte change must end in a value or an error.
        for cut in 0..<good.count {
            _ = try? DNSMessage.parseResponse(Array(good.prefix(cut)), id: 0x1234, name: "_acme-challenge.example.test", type: .txt)
        }
        for index in good.indices {
            for value: UInt8 in [0, 1, 0x3F, 0x40, 0x7F, 0xC0, 0xFF] {
                var damaged = good
                damaged[index] = value
                _ = try? DNSMessage.parseResponse(damaged, id: 0x1234, name: "_acme-challenge.example.test", type: .txt)
            }
        }
        // A compression pointer to itself or forwards.
        var loop = try Self.answer(records: [[1, 0x41]])
        let pointer = loop.count - 14
        loop[pointer + 1] = UInt8(pointer & 0xFF)
        #expect(throws: DNSMessage.Failure.self) { try DNSMessage.parseResponse(loop, id: 0x1234, name: "_acme-challenge.example.test", type: .txt) }
        // A TXT string longer than its record.
        let long = try Self.answer(records: [[200, 0x41]])
        #expect(throws: DNSMessage.Failure.self) { try DNSMessage.parseResponse(long, id: 0x1234, name: "_acme-challenge.example.test", type: .txt) }
    }
}
