//! Cuts the byte stream of a QMP client into JSON values.
//!
//! QMP has no framing: a client may send several commands in one write, one
//! command over several writes, with or without newlines. The splitter tracks
//! only what delimits a value (brackets outside strings, string escapes), so
//! it never needs to parse; serde_json parses each complete piece. A value that
//! grows past [`MAX_VALUE`] bytes or [`MAX_DEPTH`] levels is skipped to its end
//! and reported as one error, so the client stays in step.

/// Largest command accepted, in bytes.
pub const MAX_VALUE: usize = 64 * 1024;
/// Deepest nesting accepted.
pub const MAX_DEPTH: u32 = 64;

/// One piece of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece {
    /// A complete top-level object or array (not yet parsed).
    Value(Vec<u8>),
    /// Something that is not an object or array, or one too large or deep.
    Invalid(&'static str),
}

#[derive(Default)]
pub struct Splitter {
    buf: Vec<u8>,
    depth: u32,
    in_string: bool,
    escaped: bool,
    /// The current value exceeded a limit: track its end without storing it.
    oversized: Option<&'static str>,
    /// Bytes of a bare token at top level (`42`, `null`, junk) being skipped.
    in_token: bool,
}

impl Splitter {
    /// Feeds `bytes`, returning every piece they complete, in order.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Piece> {
        let mut out = Vec::new();
        for &b in bytes {
            if let Some(p) = self.step(b) {
                out.push(p);
            }
        }
        out
    }

    fn step(&mut self, b: u8) -> Option<Piece> {
        if self.depth == 0 {
            return self.top_level(b);
        }
        self.store(b);
        if self.in_string {
            match (self.escaped, b) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => self.in_string = false,
                _ => {}
            }
            return None;
        }
        match b {
            b'"' => self.in_string = true,
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    self.overflow("nesting too deep");
                }
            }
            b'}' | b']' => {
                self.depth -= 1;
                if self.depth == 0 {
                    return Some(self.finish());
                }
            }
            _ => {}
        }
        None
    }

    /// Between values: whitespace is skipped, `{`/`[` starts a value, and
    /// anything else is a bare token reported once when whitespace ends it.
    fn top_level(&mut self, b: u8) -> Option<Piece> {
        if b.is_ascii_whitespace() {
            return std::mem::take(&mut self.in_token).then_some(Piece::Invalid("expected a JSON object"));
        }
        if b == b'{' || b == b'[' {
            let bare = std::mem::take(&mut self.in_token);
            self.depth = 1;
            self.buf.clear();
            self.buf.push(b);
            return bare.then_some(Piece::Invalid("expected a JSON object"));
        }
        self.in_token = true;
        None
    }

    fn store(&mut self, b: u8) {
        if self.oversized.is_some() {
            return;
        }
        if self.buf.len() >= MAX_VALUE {
            self.overflow("command too long");
            return;
        }
        self.buf.push(b);
    }

    fn overflow(&mut self, why: &'static str) {
        self.oversized.get_or_insert(why);
        self.buf = Vec::new();
    }

    fn finish(&mut self) -> Piece {
        match self.oversized.take() {
            Some(why) => Piece::Invalid(why),
            None => Piece::Value(std::mem::take(&mut self.buf)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pieces: Vec<Piece>) -> Vec<String> {
        pieces
            .into_iter()
            .map(|p| match p {
                Piece::Value(v) => String::from_utf8(v).unwrap(),
                Piece::Invalid(why) => format!("!{why}"),
            })
            .collect()
    }

    #[test]
    fn splits_values_sent_together_and_apart() {
        let mut s = Splitter::default();
        assert_eq!(values(s.feed(b"{\"a\":1}{\"b\":[2]}\r\n {\"c\"")), ["{\"a\":1}", "{\"b\":[2]}"]);
        assert_eq!(values(s.feed(b":3}")), ["{\"c\":3}"]);
    }

    #[test]
    fn brackets_and_quotes_inside_strings_do_not_count() {
        let mut s = Splitter::default();
        let text = br#"{"x":"}{[\"\\"}"#;
        assert_eq!(values(s.feed(text)), [String::from_utf8(text.to_vec()).unwrap()]);
    }

    #[test]
    fn bare_tokens_are_reported_once_and_the_stream_continues() {
        let mut s = Splitter::default();
        assert_eq!(values(s.feed(b"42 null{\"ok\":1}")), ["!expected a JSON object", "!expected a JSON object", "{\"ok\":1}"]);
    }

    #[test]
    fn oversized_and_deep_values_are_skipped_whole() {
        let mut s = Splitter::default();
        let mut big = b"{\"x\":\"".to_vec();
        big.resize(MAX_VALUE + 10, b'a');
        big.extend_from_slice(b"\"}{\"next\":1}");
        assert_eq!(values(s.feed(&big)), ["!command too long", "{\"next\":1}"]);
        let deep = format!("{}{}{{}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(values(s.feed(deep.as_bytes())), ["!nesting too deep", "{}"]);
    }
}
