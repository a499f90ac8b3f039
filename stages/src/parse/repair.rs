//! Mend the faults of a record that public Orca answers have been seen to
//! carry, so that one bad value costs a `null` or a U+FFFD, not the record.
//!
//! Only called on a record that failed to parse. Each kind of fault is
//! mended the same way wherever it stands, and counted by kind:
//!
//! | fault | mended as |
//! |---|---|
//! | invalid UTF-8 | U+FFFD |
//! | unpaired surrogate escape (`\udc00`) | `\ufffd` |
//! | raw control character inside a string | its `\u00XX` escape |
//! | unknown escape (`\x`) | the backslash kept as a literal |
//! | number beyond f64 (`1e400`) or not a number (`NaN`, `Infinity`) | `null` |
//! | integer beyond 64 bits | the nearest f64 |
//! | a bare word that is no JSON literal (`None`, `undefined`) | `null` |
//! | trailing comma before `}` or `]` | removed |

/// The kinds of fault mended, as counted in metrics and the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Repair {
    InvalidUtf8,
    LoneSurrogate,
    ControlCharacter,
    InvalidEscape,
    NumberOutOfRange,
    InvalidLiteral,
    TrailingComma,
}

impl Repair {
    pub const ALL: [Repair; 7] = [
        Repair::InvalidUtf8,
        Repair::LoneSurrogate,
        Repair::ControlCharacter,
        Repair::InvalidEscape,
        Repair::NumberOutOfRange,
        Repair::InvalidLiteral,
        Repair::TrailingComma,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Repair::InvalidUtf8 => "invalid_utf8",
            Repair::LoneSurrogate => "lone_surrogate",
            Repair::ControlCharacter => "control_character",
            Repair::InvalidEscape => "invalid_escape",
            Repair::NumberOutOfRange => "number_out_of_range",
            Repair::InvalidLiteral => "invalid_literal",
            Repair::TrailingComma => "trailing_comma",
        }
    }
}

/// Rewrite `raw` with every fault of the table mended; `repairs` receives one
/// entry per value mended.
pub fn repair(raw: &[u8], repairs: &mut Vec<Repair>) -> Vec<u8> {
    let text = match std::str::from_utf8(raw) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => {
            repairs.push(Repair::InvalidUtf8);
            String::from_utf8_lossy(raw)
        }
    };
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() + 16);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => i = string(b, i, &mut out, repairs),
            b',' => {
                let mut j = i + 1;
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if matches!(b.get(j), Some(b'}' | b']')) {
                    repairs.push(Repair::TrailingComma);
                } else {
                    out.push(b',');
                }
                i += 1;
            }
            c if c == b'-' || c.is_ascii_alphanumeric() || c == b'+' || c == b'.' => {
                let start = i;
                while i < b.len()
                    && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'-' | b'+' | b'.'))
                {
                    i += 1;
                }
                scalar(&text[start..i], &mut out, repairs);
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Copy a bare token, mending numbers JSON or f64 cannot hold.
fn scalar(tok: &str, out: &mut Vec<u8>, repairs: &mut Vec<Repair>) {
    if matches!(tok, "true" | "false" | "null") {
        out.extend_from_slice(tok.as_bytes());
        return;
    }
    let numeric = tok.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'))
        || matches!(tok, "NaN" | "Infinity");
    if !numeric {
        repairs.push(Repair::InvalidLiteral);
        out.extend_from_slice(b"null");
        return;
    }
    let integer = tok.bytes().all(|c| c.is_ascii_digit() || c == b'-');
    if integer && (tok.parse::<i64>().is_ok() || tok.parse::<u64>().is_ok()) {
        out.extend_from_slice(tok.as_bytes());
        return;
    }
    match tok.parse::<f64>() {
        Ok(f) if f.is_finite() && !integer => {
            // A finite float JSON allows: keep it unless its spelling is one
            // JSON forbids (`.5`, `+1`, `Infinity` parse in Rust, not JSON).
            if tok.starts_with(['.', '+']) || tok.contains("inf") || tok.contains("Inf") {
                repairs.push(Repair::NumberOutOfRange);
                out.extend_from_slice(format!("{f:?}").as_bytes());
            } else {
                out.extend_from_slice(tok.as_bytes());
            }
        }
        Ok(f) if f.is_finite() => {
            repairs.push(Repair::NumberOutOfRange);
            out.extend_from_slice(format!("{f:?}").as_bytes());
        }
        _ => {
            repairs.push(Repair::NumberOutOfRange);
            out.extend_from_slice(b"null");
        }
    }
}

/// Copy the string starting at `b[start] == '"'`; returns the index after it.
fn string(b: &[u8], start: usize, out: &mut Vec<u8>, repairs: &mut Vec<Repair>) -> usize {
    out.push(b'"');
    let mut i = start + 1;
    while i < b.len() {
        let c = b[i];
        match c {
            b'"' => {
                out.push(b'"');
                return i + 1;
            }
            b'\\' => match b.get(i + 1) {
                Some(b'u') => {
                    let (n, used) = escape_u(b, i, repairs);
                    out.extend_from_slice(n.as_bytes());
                    i += used;
                }
                Some(e @ (b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't')) => {
                    out.push(b'\\');
                    out.push(*e);
                    i += 2;
                }
                _ => {
                    repairs.push(Repair::InvalidEscape);
                    out.extend_from_slice(b"\\\\");
                    i += 1;
                }
            },
            c if c < 0x20 => {
                repairs.push(Repair::ControlCharacter);
                out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    // Unterminated: close it so the error, if any, is reported by the parser.
    out.push(b'"');
    i
}

fn hex4(b: &[u8], at: usize) -> Option<u16> {
    let s = std::str::from_utf8(b.get(at..at + 4)?).ok()?;
    u16::from_str_radix(s, 16).ok()
}

/// Mend one `\uXXXX` escape at `b[i]`; returns the text to write and the bytes consumed.
fn escape_u(b: &[u8], i: usize, repairs: &mut Vec<Repair>) -> (String, usize) {
    let Some(u) = hex4(b, i + 2) else {
        repairs.push(Repair::InvalidEscape);
        return ("\\\\".to_string(), 1);
    };
    match u {
        0xD800..=0xDBFF => {
            let low = (b.get(i + 6) == Some(&b'\\') && b.get(i + 7) == Some(&b'u'))
                .then(|| hex4(b, i + 8))
                .flatten();
            match low {
                Some(l @ 0xDC00..=0xDFFF) => (format!("\\u{u:04x}\\u{l:04x}"), 12),
                _ => {
                    repairs.push(Repair::LoneSurrogate);
                    ("\\ufffd".to_string(), 6)
                }
            }
        }
        0xDC00..=0xDFFF => {
            repairs.push(Repair::LoneSurrogate);
            ("\\ufffd".to_string(), 6)
        }
        _ => (format!("\\u{u:04x}"), 6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(s: &str) -> (String, Vec<Repair>) {
        let mut r = Vec::new();
        let out = repair(s.as_bytes(), &mut r);
        (String::from_utf8(out).unwrap(), r)
    }

    fn parses(s: &str) -> simd_json::OwnedValue {
        let mut v = s.as_bytes().to_vec();
        simd_json::to_owned_value(&mut v).unwrap()
    }

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        let (s, r) = fix(r#"{"a":"bad \udc00 name","b":"\ud800x","c":"ok \ud83d\ude00"}"#);
        assert_eq!(r, vec![Repair::LoneSurrogate, Repair::LoneSurrogate]);
        let v = parses(&s);
        use simd_json::prelude::*;
        assert_eq!(v.get_str("a"), Some("bad \u{fffd} name"));
        assert_eq!(v.get_str("b"), Some("\u{fffd}x"));
        assert_eq!(v.get_str("c"), Some("ok 😀"));
    }

    #[test]
    fn numbers_out_of_range_become_null() {
        let (s, r) =
            fix(r#"{"a":1e400,"b":-1e400,"c":NaN,"d":Infinity,"e":-Infinity,"f":2.5,"g":7}"#);
        assert_eq!(r.len(), 5);
        assert!(r.iter().all(|x| *x == Repair::NumberOutOfRange));
        assert_eq!(
            s,
            r#"{"a":null,"b":null,"c":null,"d":null,"e":null,"f":2.5,"g":7}"#
        );
        parses(&s);
    }

    #[test]
    fn bare_words_become_null() {
        let (s, r) = fix(r#"{"a":None,"b":undefined,"c":true}"#);
        assert_eq!(r, vec![Repair::InvalidLiteral, Repair::InvalidLiteral]);
        assert_eq!(s, r#"{"a":null,"b":null,"c":true}"#);
    }

    #[test]
    fn huge_integers_become_floats() {
        let (s, r) = fix(r#"{"a":18446744073709551616}"#);
        assert_eq!(r, vec![Repair::NumberOutOfRange]);
        assert_eq!(s, r#"{"a":1.8446744073709552e19}"#);
        parses(&s);
    }

    #[test]
    fn control_characters_escapes_commas_utf8() {
        let mut raw = b"{\"a\":\"line\nbreak\",\"b\":\"\\x\",\"c\":[1,2,],}".to_vec();
        raw.extend_from_slice(b"");
        let (s, r) = fix(std::str::from_utf8(&raw).unwrap());
        assert_eq!(
            r,
            vec![
                Repair::ControlCharacter,
                Repair::InvalidEscape,
                Repair::TrailingComma,
                Repair::TrailingComma
            ]
        );
        parses(&s);
        let mut r = Vec::new();
        let out = repair(b"{\"a\":\"\xff\xfe\"}", &mut r);
        assert_eq!(r, vec![Repair::InvalidUtf8]);
        let mut out2 = out.clone();
        simd_json::to_owned_value(&mut out2).unwrap();
    }

    #[test]
    fn valid_json_is_left_alone() {
        let s = r#"{"a":"x \"q\" \u00e9 \ud83d\ude00","b":[1,-2,3.5e10,true,false,null],"c":{}}"#;
        let (out, r) = fix(s);
        assert!(r.is_empty());
        assert_eq!(out, s);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut r = Vec::new();
            let _ = repair(&bytes, &mut r);
        }

        #[test]
        fn repaired_strings_always_parse(s in "[^\"]{0,40}") {
            // String content with arbitrary escapes and control characters
            // (no bare quote, which would end the string) mends into a
            // parseable string.
            proptest::prop_assume!(!s.ends_with('\\'));
            let body = format!("{{\"k\":\"{s}\"}}");
            let mut r = Vec::new();
            let mut out = repair(body.as_bytes(), &mut r);
            proptest::prop_assert!(simd_json::to_owned_value(&mut out).is_ok(), "{}", body);
        }
    }
}
