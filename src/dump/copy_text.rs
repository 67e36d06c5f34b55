//! PostgreSQL COPY text format: one row a line, fields split by tabs, `\N` for NULL,
//! and backslash escapes (`\t \n \r \\ \b \f \v`, octal `\NNN`, hex `\xHH`).

/// Splits one COPY row line (without its `\n`) into raw, still-escaped fields.
pub fn split_fields(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|b| *b == b'\t')
}

/// True when a raw field is the NULL marker.
pub fn is_null(raw: &[u8]) -> bool {
    raw == b"\\N"
}

/// Decodes a raw field into its value; `None` for NULL.
pub fn decode_field(raw: &[u8]) -> Option<Vec<u8>> {
    if is_null(raw) {
        return None;
    }
    if !raw.contains(&b'\\') {
        return Some(raw.to_vec());
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(at) = memchr::memchr(b'\\', &raw[i..]) {
        // The run up to the backslash is copied whole.
        out.extend_from_slice(&raw[i..i + at]);
        i += at;
        if i + 1 == raw.len() {
            break; // a trailing lone backslash stays
        }
        let c = raw[i + 1];
        i += 2;
        match c {
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(c - b'0');
                let mut n = 1;
                while n < 3 && i < raw.len() && (b'0'..=b'7').contains(&raw[i]) {
                    v = v * 8 + u32::from(raw[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xff) as u8);
            }
            b'x' if i < raw.len() && raw[i].is_ascii_hexdigit() => {
                let mut v = hex_val(raw[i]);
                i += 1;
                if i < raw.len() && raw[i].is_ascii_hexdigit() {
                    v = v * 16 + hex_val(raw[i]);
                    i += 1;
                }
                out.push(v);
            }
            other => out.push(other),
        }
    }
    out.extend_from_slice(&raw[i..]);
    Some(out)
}

fn hex_val(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    }
}

/// Appends a value to `out` in COPY text form; `None` writes `\N`.
pub fn encode_field(value: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some(v) = value else {
        out.extend_from_slice(b"\\N");
        return;
    };
    // Most values hold no byte that needs escaping: copy them whole.
    if !v.iter().any(|&b| b == b'\\' || b < 0x20) {
        out.extend_from_slice(v);
        return;
    }
    out.reserve(v.len() + 8);
    super::push_escaped(v, out, |b| match b {
        b'\\' => Some(b"\\\\"),
        b'\t' => Some(b"\\t"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        0x08 => Some(b"\\b"),
        0x0c => Some(b"\\f"),
        0x0b => Some(b"\\v"),
        _ => None,
    });
}

/// Appends a whole row (fields joined by tabs, ended by `\n`).
pub fn encode_row<'a>(fields: impl IntoIterator<Item = Option<&'a [u8]>>, out: &mut Vec<u8>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b'\t');
        }
        encode_field(f, out);
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_traps() {
        let values: Vec<Option<&[u8]>> = vec![
            Some(b"tab\there"),
            Some(b"new\nline\r"),
            Some(b"back\\slash"),
            Some(b""),
            None,
            Some("\u{e9}t\u{e9} \u{1f600}".as_bytes()),
            Some(b"\\N"),
        ];
        let mut line = Vec::new();
        encode_row(values.iter().copied(), &mut line);
        assert_eq!(line.last(), Some(&b'\n'));
        let body = &line[..line.len() - 1];
        assert!(!body.contains(&b'\n'));
        let decoded: Vec<Option<Vec<u8>>> = split_fields(body).map(decode_field).collect();
        let expected: Vec<Option<Vec<u8>>> = values.iter().map(|v| v.map(<[u8]>::to_vec)).collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn decodes_octal_and_hex() {
        assert_eq!(decode_field(b"a\\101\\x42c"), Some(b"aABc".to_vec()));
        assert_eq!(decode_field(b"\\N"), None);
        assert_eq!(decode_field(b"\\\\N"), Some(b"\\N".to_vec()));
    }

    /// Every byte string survives encode then decode, whatever bytes it holds and
    /// wherever its escapes fall; a trailing lone backslash decodes as itself.
    #[test]
    fn arbitrary_bytes_round_trip() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..300 {
            let value: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Half of the bytes among the ones that need escaping.
                    let b = (x >> 24) as u8;
                    if x & 1 == 0 {
                        b"\\\t\n\r\x08\x0c\x0b\\"[(b % 8) as usize]
                    } else {
                        b
                    }
                })
                .collect();
            let mut line = Vec::new();
            encode_field(Some(&value), &mut line);
            assert!(!line.contains(&b'\t') && !line.contains(&b'\n'));
            assert_eq!(decode_field(&line), Some(value), "length {len}");
        }
        assert_eq!(decode_field(b"ab\\"), Some(b"ab\\".to_vec()));
        assert_eq!(decode_field(b"a\\tb\\"), Some(b"a\tb\\".to_vec()));
    }
}
