//! Quoting values from input in messages, bounded: an error must name what is wrong without
//! echoing a 32 MiB field back (to a terminal, a log line or a status condition).

/// Characters of a quoted value shown before it is cut.
pub const QUOTE_CHARS: usize = 64;
/// Bytes of a whole message (e.g. a parser's, which may quote input) before it is cut.
pub const MESSAGE_BYTES: usize = 512;

/// `s` in double quotes with escapes (as `{:?}` prints it), cut after [`QUOTE_CHARS`]
/// characters with the full size appended: `"aaaa…" (33554432 bytes)`.
pub fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_CHARS) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
    }
}

/// `message` cut after about [`MESSAGE_BYTES`] bytes (on a character boundary).
pub fn bounded(message: String) -> String {
    if message.len() <= MESSAGE_BYTES {
        return message;
    }
    let mut cut = MESSAGE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… ({} bytes in all)", &message[..cut], message.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_cut_with_their_size() {
        assert_eq!(quote("eth1"), "\"eth1\"");
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "é".repeat(1000);
        let q = quote(&long);
        assert!(q.starts_with(&format!("\"{}\"…", "é".repeat(64))), "{q}");
        assert!(q.ends_with("(2000 bytes)"), "{q}");
        let m = bounded("x".repeat(10_000));
        assert!(m.len() < MESSAGE_BYTES + 40, "{}", m.len());
        assert!(m.ends_with("(10000 bytes in all)"));
        assert_eq!(bounded("short".into()), "short");
    }
}
