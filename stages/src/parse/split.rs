//! Find the elements of the top-level `data` array without parsing them.
//!
//! Used only when a page does not parse as a whole: one broken record must
//! not cost the page, so the page is cut into its records along the JSON
//! structure (strings and escapes respected, nothing else validated) and each
//! record is parsed on its own.

use std::ops::Range;

/// Where the parts of an answer body lie.
#[derive(Debug, PartialEq, Eq)]
pub struct Layout {
    /// Byte range of each element of `data` (trimmed).
    pub rows: Vec<Range<usize>>,
    /// Byte range of the whole `data` array value, brackets included.
    pub data: Range<usize>,
}

/// Cut a body into its `data` rows. `None` when the body's structure is
/// broken (unbalanced, truncated, no `data` array): then no row can be
/// trusted and the page as a whole is malformed.
pub fn layout(body: &[u8]) -> Option<Layout> {
    let mut s = Scanner { b: body, i: 0 };
    s.ws();
    match s.peek()? {
        b'[' => {
            // A bare array of rows (the datasets API answers this way).
            let start = s.i;
            let rows = s.array_elements()?;
            s.ws();
            (s.i == body.len()).then_some(Layout {
                rows,
                data: start..s.i,
            })
        }
        b'{' => {
            s.i += 1;
            let mut found = None;
            loop {
                s.ws();
                match s.peek()? {
                    b'}' => {
                        s.i += 1;
                        break;
                    }
                    b',' => {
                        s.i += 1;
                        continue;
                    }
                    b'"' => {}
                    _ => return None,
                }
                let key = s.string()?;
                s.ws();
                if s.peek()? != b':' {
                    return None;
                }
                s.i += 1;
                s.ws();
                if &body[key.start + 1..key.end - 1] == b"data" && s.peek()? == b'[' {
                    let start = s.i;
                    let rows = s.array_elements()?;
                    found = Some(Layout {
                        rows,
                        data: start..s.i,
                    });
                } else {
                    s.value()?;
                }
            }
            s.ws();
            if s.i != body.len() {
                return None;
            }
            found
        }
        _ => None,
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\n' | b'\r' | b'\t')) {
            self.i += 1;
        }
    }

    /// A string token; returns its range including quotes.
    fn string(&mut self) -> Option<Range<usize>> {
        let start = self.i;
        self.i += 1;
        loop {
            let rest = self.b.get(self.i..)?;
            let at = memchr2(b'"', b'\\', rest)?;
            self.i += at;
            if self.b[self.i] == b'\\' {
                self.i += 2;
            } else {
                self.i += 1;
                return Some(start..self.i);
            }
        }
    }

    /// Skip any value (containers by depth, strings by their quotes, scalars to a delimiter).
    fn value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'{' | b'[' => {
                let mut depth = 0usize;
                loop {
                    // Jump to the next byte that matters; most bytes of a row
                    // are inside strings or between structural characters.
                    let rest = self.b.get(self.i..)?;
                    self.i += rest.iter().position(|&c| STRUCTURAL[c as usize])?;
                    match self.b[self.i] {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        _ => {
                            depth = depth.checked_sub(1)?;
                            if depth == 0 {
                                self.i += 1;
                                return Some(());
                            }
                        }
                    }
                    self.i += 1;
                }
            }
            _ => {
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                        break;
                    }
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }

    fn array_elements(&mut self) -> Option<Vec<Range<usize>>> {
        self.i += 1; // '['
        let mut rows = Vec::new();
        loop {
            self.ws();
            match self.peek()? {
                b']' => {
                    self.i += 1;
                    return Some(rows);
                }
                b',' => {
                    self.i += 1;
                    continue;
                }
                _ => {
                    let start = self.i;
                    self.value()?;
                    rows.push(start..self.i);
                }
            }
        }
    }
}

fn memchr2(a: u8, b: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr2(a, b, hay)
}

/// The bytes a container scan stops at: quotes and brackets.
const STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'[' as usize] = true;
    t[b'}' as usize] = true;
    t[b']' as usize] = true;
    t
};

#[cfg(test)]
mod tests {
    use super::*;

    fn rows<'a>(body: &'a str, l: &Layout) -> Vec<&'a str> {
        l.rows.iter().map(|r| &body[r.clone()]).collect()
    }

    #[test]
    fn finds_rows_of_an_answer() {
        let body = r#"{"status":"success","data":[{"id":"a","s":"x]}\"{"} , {"id":"b"},3,"s,t"],"total_items":2}"#;
        let l = layout(body.as_bytes()).unwrap();
        assert_eq!(
            rows(body, &l),
            vec![
                r#"{"id":"a","s":"x]}\"{"}"#,
                r#"{"id":"b"}"#,
                "3",
                r#""s,t""#
            ]
        );
        assert!(body[l.data.clone()].starts_with('[') && body[l.data.clone()].ends_with(']'));
    }

    #[test]
    fn bare_array() {
        let body = r#" [ {"id":1} , {"id":2} ] "#;
        let l = layout(body.as_bytes()).unwrap();
        assert_eq!(rows(body, &l), vec![r#"{"id":1}"#, r#"{"id":2}"#]);
    }

    #[test]
    fn invalid_escapes_inside_rows_do_not_matter() {
        let body = r#"{"data":[{"n":"bad \udc00 x"},{"n":1e400}]}"#;
        assert_eq!(layout(body.as_bytes()).unwrap().rows.len(), 2);
    }

    #[test]
    fn truncated_or_shapeless_bodies_have_no_layout() {
        for body in [
            r#"{"status":"success","data":[{"id":"a"},{"id":"#,
            r#"{"status":"success","data":[{"id":"a"}"#,
            r#"{"status":"success"}"#,
            r#"{"data":[1]} trailing"#,
            "",
            "null",
            r#"{"data":[{"a":"unterminated}]}"#,
        ] {
            assert_eq!(layout(body.as_bytes()), None, "{body}");
        }
    }
}
