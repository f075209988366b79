//! Streaming JSON-RPC framing: ovsdb-server writes JSON values back to back with no
//! separator (RFC 7047 section 4), and a read may hold half a message or several.
//!
//! Owns splitting the byte stream into whole JSON texts and bounding their size. It does not
//! interpret the messages (that is `rpc`). A small scanner tracks nesting depth and string
//! state incrementally across reads, so a large message arriving in many reads is scanned
//! once (linear), and only a complete message is handed to serde_json for the real parse.
use std::ops::Range;

use serde_json::Value as Json;

use super::error::Error;

/// Default bound on one message: a full NB snapshot of a big cluster is tens of MB.
pub const DEFAULT_MAX_MESSAGE: usize = 256 * 1024 * 1024;

/// Incremental decoder: feed it bytes with [`Decoder::extend`], take messages with
/// [`Decoder::next_message`] until it returns `Ok(None)`.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the unconsumed data in `buf`.
    start: usize,
    /// How far the scanner got (absolute index into `buf`).
    pos: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// Index where the current message began, once its first byte was seen.
    msg_start: Option<usize>,
    max: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(DEFAULT_MAX_MESSAGE)
    }
}

impl Decoder {
    pub fn new(max_message: usize) -> Decoder {
        Decoder {
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            pos: 0,
            depth: 0,
            in_string: false,
            escaped: false,
            msg_start: None,
            max: max_message,
        }
    }

    /// Append bytes read from the socket.
    pub fn extend(&mut self, data: &[u8]) {
        // Reclaim consumed space before growing, so the buffer stays near one message.
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            // One huge message (a full snapshot) must not pin its buffer for the
            // connection's lifetime.
            if self.buf.capacity() > 4 * 1024 * 1024 {
                self.buf.shrink_to(256 * 1024);
            }
            self.pos = 0;
            self.start = 0;
            self.msg_start = None;
        } else if self.start > 64 * 1024 && self.start * 2 > self.buf.len() {
            self.buf.drain(..self.start);
            self.pos -= self.start;
            self.msg_start = self.msg_start.map(|m| m - self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` if more bytes are needed. After an error the
    /// stream is unusable (there is no way to resynchronise on a JSON stream).
    pub fn next_message(&mut self) -> Result<Option<Json>, Error> {
        match self.next_frame()? {
            Some(r) => serde_json::from_slice(&self.buf[r])
                .map(Some)
                .map_err(|e| Error::Protocol(format!("invalid JSON message: {e}"))),
            None => Ok(None),
        }
    }

    /// The text of a frame returned by [`Decoder::next_frame`] (valid until the next
    /// [`Decoder::extend`]).
    pub fn frame(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }

    /// Like [`Decoder::next_message`], but returns where the complete message's text is,
    /// unparsed (balanced brackets and strings only), so a caller can parse a large one its
    /// own way.
    pub fn next_frame(&mut self) -> Result<Option<Range<usize>>, Error> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            self.pos += 1;
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                // Whitespace between messages (msg_start is None whenever depth is 0).
                b' ' | b'\t' | b'\r' | b'\n' if self.depth == 0 => self.start = self.pos,
                b'{' | b'[' => {
                    if self.depth == 0 {
                        self.msg_start = Some(self.pos - 1);
                    }
                    self.depth += 1;
                }
                b'}' | b']' => {
                    if self.depth == 0 {
                        return Err(Error::Protocol(format!(
                            "unbalanced {:?} in the stream",
                            b as char
                        )));
                    }
                    self.depth -= 1;
                    if self.depth == 0 {
                        let begin = self.msg_start.take().unwrap_or(self.start);
                        if self.pos - begin > self.max {
                            return Err(Error::MessageTooLarge { limit: self.max });
                        }
                        self.start = self.pos;
                        return Ok(Some(begin..self.pos));
                    }
                }
                b'"' if self.depth > 0 => self.in_string = true,
                _ if self.depth == 0 => {
                    // JSON-RPC messages are objects; a bare scalar is garbage.
                    return Err(Error::Protocol(format!(
                        "unexpected byte {:?} between messages",
                        b as char
                    )));
                }
                _ => {}
            }
        }
        // An incomplete message is bounded too, at most one read past the limit.
        if let Some(m) = self.msg_start
            && self.pos - m > self.max
        {
            return Err(Error::MessageTooLarge { limit: self.max });
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<Json>, Error> {
        let mut d = Decoder::default();
        let mut out = vec![];
        for c in chunks {
            d.extend(c);
            while let Some(m) = d.next_message()? {
                out.push(m);
            }
        }
        Ok(out)
    }

    fn samples() -> Vec<Json> {
        vec![
            json!({"id": "echo", "method": "echo", "params": []}),
            json!({"id": 7, "result": [{"uuid": ["uuid", "0b7c0c2e-7b3a-4d55-9f6e-0123456789ab"]}], "error": null}),
            json!({"id": null, "method": "update2", "params": ["m1", {"ACL": {"0b7c0c2e-7b3a-4d55-9f6e-0123456789ab": {"modify": {"match": "ip4.src == {1.2.3.4} && \"}\\\"{\" ]", "external_ids": ["map", [["k", "v}"]]]}}}}]}),
            json!({"id": 18446744073709551615u64, "result": [i64::MIN, 1.5e-3, -0.0, 12345678901234567i64], "error": null}),
            json!({"id": 9, "error": {"error": "unknown database", "details": "x\u{1F600}\n\t\\"}}),
            json!({"id": 1, "result": ["set", [["set", []], ["map", [[1, ["set", [true, false]]]]]]], "error": null}),
        ]
    }

    #[test]
    fn every_split_point_gives_the_same_messages() {
        let msgs = samples();
        let text: Vec<u8> = msgs
            .iter()
            .flat_map(|m| serde_json::to_vec(m).unwrap())
            .collect();
        for cut in 0..=text.len() {
            let got = decode_all(&[&text[..cut], &text[cut..]]).unwrap();
            assert_eq!(got, msgs, "split at {cut}");
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(decode_all(&bytes).unwrap(), msgs);
    }

    #[test]
    fn merged_messages_with_whitespace_between() {
        let raw = b" {\"id\":1,\"result\":[],\"error\":null}\n{\"id\":\"echo\",\"method\":\"echo\",\"params\":[\"a{\"]}  ";
        let got = decode_all(&[raw]).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1]["params"][0], json!("a{"));
    }

    #[test]
    fn escapes_and_large_numbers_survive() {
        let raw =
            br#"{"s":"\\\"{[","n":-9223372036854775808,"r":3.25e10,"u":"\u00e9\ud83d\ude00"}"#;
        let got = decode_all(&[raw]).unwrap();
        assert_eq!(got[0]["s"], json!("\\\"{["));
        assert_eq!(got[0]["n"].as_i64(), Some(i64::MIN));
        assert_eq!(got[0]["r"].as_f64(), Some(3.25e10));
        assert_eq!(got[0]["u"], json!("é😀"));
    }

    #[test]
    fn partial_data_is_kept() {
        let mut d = Decoder::default();
        d.extend(br#"{"id":1,"res"#);
        assert!(d.next_message().unwrap().is_none());
        assert_eq!(d.buffered(), 12);
        d.extend(br#"ult":[],"error":null}{"id""#);
        assert_eq!(d.next_message().unwrap().unwrap()["id"], json!(1));
        assert!(d.next_message().unwrap().is_none());
        assert_eq!(d.buffered(), 5);
    }

    #[test]
    fn garbage_and_oversize_are_clear_errors() {
        assert!(matches!(decode_all(&[b"hello"]), Err(Error::Protocol(_))));
        assert!(matches!(decode_all(&[b"}"]), Err(Error::Protocol(_))));
        assert!(matches!(
            decode_all(&[b"{\"a\":tru}"]),
            Err(Error::Protocol(_))
        ));
        let mut d = Decoder::new(16);
        d.extend(b"{\"a\":\"0123456789abcdef\"}");
        assert!(matches!(
            d.next_message(),
            Err(Error::MessageTooLarge { limit: 16 })
        ));
        // Detected while still incomplete, before buffering without bound.
        let mut d = Decoder::new(16);
        d.extend(b"{\"a\":[1,2,3,4,5,6,7,8,9,");
        assert!(matches!(
            d.next_message(),
            Err(Error::MessageTooLarge { .. })
        ));
    }

    fn arb_json() -> impl Strategy<Value = Json> {
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            any::<u64>().prop_map(|i| json!(i)),
            // Reals with a short exact decimal form: serde_json (without its float_roundtrip
            // feature) may be one ULP off on 17-digit reals, which OVSDB never sends.
            (any::<i16>(), 0u32..8).prop_map(|(m, e)| json!(f64::from(m) / f64::from(1u32 << e))),
            "[ -~\\\\\"{}\\[\\]é😀\n\t]{0,12}".prop_map(Json::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
                prop::collection::btree_map("[a-z{}\"\\\\]{0,6}", inner, 0..6)
                    .prop_map(|m| Json::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_messages_any_splits(
            msgs in prop::collection::vec(
                prop::collection::btree_map("[a-z]{1,5}", arb_json(), 0..5)
                    .prop_map(|m| Json::Object(m.into_iter().collect())), 1..6),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let text: Vec<u8> = msgs.iter().flat_map(|m| serde_json::to_vec(m).unwrap()).collect();
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(text.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = vec![];
            let mut last = 0;
            for p in points {
                chunks.push(&text[last..p]);
                last = p;
            }
            chunks.push(&text[last..]);
            prop_assert_eq!(decode_all(&chunks).unwrap(), msgs);
        }
    }
}
