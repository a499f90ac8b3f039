//! Dotted Orca paths, compiled once and evaluated by reference.

use crate::json::Json;

/// One step of a path. A segment made of digits indexes a list, but still
/// looks up a key when it meets an object, since Orca keys may be numeric.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(Box<str>),
    Index(usize, Box<str>),
}

/// A compiled path such as `data.CloudAccount.data.CloudProvider.value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    segs: Vec<Seg>,
}

impl Path {
    pub fn parse(s: &str) -> Result<Path, String> {
        if s.is_empty() {
            return Err("empty path".into());
        }
        let mut segs = Vec::new();
        for part in s.split('.') {
            if part.is_empty() {
                return Err(format!("path `{s}` has an empty segment"));
            }
            let key: Box<str> = part.into();
            match part.parse::<usize>() {
                Ok(i) if part.bytes().all(|b| b.is_ascii_digit()) => segs.push(Seg::Index(i, key)),
                _ => segs.push(Seg::Key(key)),
            }
        }
        Ok(Path { segs })
    }

    /// The value at this path, if every step exists. A path ending in
    /// `value` also finds a scalar or list sent without its wrapper
    /// (`"Hostname": "web-1"` for `{"value": "web-1"}`): it can mean
    /// nothing else. An object is never taken for its own value.
    pub fn get<'a, J: Json<'a>>(&self, root: J) -> Option<J> {
        let mut cur = root;
        let last = self.segs.len().saturating_sub(1);
        for (i, seg) in self.segs.iter().enumerate() {
            cur = match seg {
                Seg::Key(k) if i == last && &**k == "value" && !cur.is_object() => {
                    (!cur.is_null()).then_some(cur)?
                }
                Seg::Key(k) => cur.get(k)?,
                Seg::Index(i, _) if cur.is_array() => cur.index(*i)?,
                Seg::Index(_, k) => cur.get(k)?,
            };
        }
        Some(cur)
    }
}

/// Alternatives tried in order: the first that yields a value wins. Null
/// and a blank string (`""`, `"  "`) are both missing: the next path is
/// tried (`CVE.data.Id` blank, then `CveId`; a blank `CloudProvider`, then
/// the model), and a field with nothing else is null, never `""`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources(Vec<Path>);

/// Whether a value carries nothing: null or a blank string.
pub fn is_missing<'a, J: Json<'a>>(v: J) -> bool {
    v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty())
}

impl Sources {
    pub fn parse(list: &[String]) -> Result<Sources, String> {
        list.iter()
            .map(|s| Path::parse(s))
            .collect::<Result<_, _>>()
            .map(Sources)
    }

    pub fn first<'a, J: Json<'a>>(&self, root: J) -> Option<J> {
        self.0
            .iter()
            .filter_map(|p| p.get(root))
            .find(|v| !is_missing(*v))
    }
}

/// The elements of a to-many relation, whichever of Orca's shapes it came
/// in: `{"count":N,"value":[…]}`, `{"value":[…]}` or a bare list. Anything
/// else has no elements.
pub fn elements<'a, J: Json<'a>>(v: Option<J>) -> Vec<J> {
    relation(v)
        .and_then(|list| list.elements())
        .map_or_else(Vec::new, |e| e.collect())
}

/// The list value of a to-many relation (see [`elements`]).
pub fn relation<'a, J: Json<'a>>(v: Option<J>) -> Option<J> {
    let mut cur = v;
    // Two levels cover `{"value":{"count":N,"value":[…]}}`; more is not a relation.
    for _ in 0..3 {
        let v = cur?;
        if v.is_array() {
            return Some(v);
        }
        cur = v.get("value");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use simd_json::OwnedValue;

    fn v(s: &str) -> OwnedValue {
        let mut b = s.as_bytes().to_vec();
        simd_json::to_owned_value(&mut b).unwrap()
    }

    #[test]
    fn paths_walk_objects_and_lists() {
        let doc = v(r#"{"data":{"T":{"value":["a","b"]},"0":{"x":1}}}"#);
        let p = Path::parse("data.T.value.1").unwrap();
        assert_eq!(p.get(&doc).and_then(|x| x.as_str()), Some("b"));
        let p = Path::parse("data.0.x").unwrap();
        assert_eq!(p.get(&doc).and_then(|x| x.as_i64()), Some(1));
        assert!(Path::parse("data..x").is_err());
        assert!(Path::parse("").is_err());
    }

    #[test]
    fn first_non_null_wins() {
        let doc = v(r#"{"a":{"value":null},"b":{"value":"x"}}"#);
        let s = Sources::parse(&["a.value".into(), "z".into(), "b.value".into()]).unwrap();
        assert_eq!(s.first(&doc).and_then(|x| x.as_str()), Some("x"));
    }

    #[test]
    fn a_value_sent_without_its_wrapper_is_found() {
        let doc = v(r#"{"a":"x","b":[1],"c":{"k":1},"d":null,"e":{"value":"y"}}"#);
        let get = |p: &str| Path::parse(p).unwrap().get(&doc).cloned();
        assert_eq!(get("a.value"), Some(v(r#""x""#)));
        assert_eq!(get("b.value"), Some(v("[1]")));
        assert_eq!(get("c.value"), None, "an object is not its own value");
        assert_eq!(get("d.value"), None);
        assert_eq!(get("e.value"), Some(v(r#""y""#)));
        assert_eq!(get("a.value.x"), None, "only as the last step");
    }

    #[test]
    fn blank_strings_are_missing() {
        let doc = v(r#"{"a":{"value":""},"b":{"value":" \t"},"c":{"value":"x"}}"#);
        let s = Sources::parse(&["a.value".into(), "b.value".into(), "c.value".into()]).unwrap();
        assert_eq!(s.first(&doc).and_then(|x| x.as_str()), Some("x"));
        let s = Sources::parse(&["a.value".into(), "b.value".into()]).unwrap();
        assert!(s.first(&doc).is_none());
    }

    #[test]
    fn relation_shapes() {
        for s in [
            r#"{"count":2,"value":[1,2]}"#,
            r#"[1,2]"#,
            r#"{"value":[1,2]}"#,
        ] {
            assert_eq!(elements(Some(&v(s))).len(), 2, "{s}");
        }
        assert!(elements(Some(&v(r#""x""#))).is_empty());
        assert!(elements::<&OwnedValue>(None).is_empty());
    }
}
