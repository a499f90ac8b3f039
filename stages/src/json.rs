//! Read access to a parsed JSON value, whatever holds it.
//!
//! The pipeline reads Orca items straight off simd-json's tape (a flat
//! array of nodes borrowing strings from the page buffer): building an
//! owned tree per item cost nine times the tape's parse time and about ten
//! times the page's size in memory. Values decoded from inside a string (a
//! map sent as a JSON-encoded string) and values built by tests are owned
//! trees. The transform is written once against [`Json`] and serves both.
//!
//! Where an object carries a key twice, the first occurrence wins, on both
//! kinds of value.

use simd_json::prelude::*;
use simd_json::{OwnedValue, ValueType};

/// A value of a parsed item, tied to the input by `'a`.
pub trait Json<'a>: Copy + 'a {
    /// The value under `key`, if this is an object that has it.
    fn get(self, key: &str) -> Option<Self>;
    /// Element `i`, if this is an array that long.
    fn index(self, i: usize) -> Option<Self>;
    /// The elements, if this is an array.
    fn elements(self) -> Option<impl Iterator<Item = Self> + 'a>;
    /// The entries in input order, if this is an object.
    fn entries(self) -> Option<impl Iterator<Item = (&'a str, Self)> + 'a>;
    fn as_str(self) -> Option<&'a str>;
    fn as_bool(self) -> Option<bool>;
    fn as_i64(self) -> Option<i64>;
    fn as_u64(self) -> Option<u64>;
    fn as_f64(self) -> Option<f64>;
    fn value_type(self) -> ValueType;
    /// Append the value as compact JSON.
    fn write_json(self, out: &mut Vec<u8>);

    fn is_null(self) -> bool {
        self.value_type() == ValueType::Null
    }
    fn is_array(self) -> bool {
        self.value_type() == ValueType::Array
    }
    fn is_object(self) -> bool {
        self.value_type() == ValueType::Object
    }
    /// Any number as a float.
    fn cast_f64(self) -> Option<f64> {
        self.as_f64()
            .or_else(|| self.as_i64().map(|i| i as f64))
            .or_else(|| self.as_u64().map(|u| u as f64))
    }
    /// The value as compact JSON text.
    fn to_json_vec(self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_json(&mut out);
        out
    }
}

/// A value on a simd-json tape.
pub type TapeValue<'a> = simd_json::tape::Value<'a, 'a>;

// Implemented for every `'a` the value outlives, so a caller can tie what
// it reads to a shorter borrow (the transform ties it to its map's).
impl<'a, 't: 'a, 'i: 't> Json<'a> for simd_json::tape::Value<'t, 'i> {
    fn get(self, key: &str) -> Option<Self> {
        simd_json::tape::Value::get(&self, key)
    }
    fn index(self, i: usize) -> Option<Self> {
        self.get_idx(i)
    }
    fn elements(self) -> Option<impl Iterator<Item = Self> + 'a> {
        self.as_array().map(|a| a.iter())
    }
    fn entries(self) -> Option<impl Iterator<Item = (&'a str, Self)> + 'a> {
        self.as_object()
            .map(|o| o.iter().map(|(k, v)| (k as &'a str, v)))
    }
    fn as_str(self) -> Option<&'a str> {
        ValueIntoString::into_string(self).map(|s| s as &'a str)
    }
    fn as_bool(self) -> Option<bool> {
        ValueAsScalar::as_bool(&self)
    }
    fn as_i64(self) -> Option<i64> {
        ValueAsScalar::as_i64(&self)
    }
    fn as_u64(self) -> Option<u64> {
        ValueAsScalar::as_u64(&self)
    }
    fn as_f64(self) -> Option<f64> {
        ValueAsScalar::as_f64(&self)
    }
    fn value_type(self) -> ValueType {
        TypedValue::value_type(&self)
    }
    fn write_json(self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = Writable::write(&self, out);
    }
}

impl<'a, 'x: 'a> Json<'a> for &'x OwnedValue {
    fn get(self, key: &str) -> Option<Self> {
        ValueAsObject::as_object(self)?.get(key)
    }
    fn index(self, i: usize) -> Option<Self> {
        ValueAsArray::as_array(self)?.get(i)
    }
    fn elements(self) -> Option<impl Iterator<Item = Self> + 'a> {
        ValueAsArray::as_array(self).map(|a| a.iter())
    }
    fn entries(self) -> Option<impl Iterator<Item = (&'a str, Self)> + 'a> {
        ValueAsObject::as_object(self).map(|o| o.iter().map(|(k, v)| (k.as_str() as &'a str, v)))
    }
    fn as_str(self) -> Option<&'a str> {
        ValueAsScalar::as_str(self)
    }
    fn as_bool(self) -> Option<bool> {
        ValueAsScalar::as_bool(self)
    }
    fn as_i64(self) -> Option<i64> {
        ValueAsScalar::as_i64(self)
    }
    fn as_u64(self) -> Option<u64> {
        ValueAsScalar::as_u64(self)
    }
    fn as_f64(self) -> Option<f64> {
        ValueAsScalar::as_f64(self)
    }
    fn value_type(self) -> ValueType {
        TypedValue::value_type(self)
    }
    fn write_json(self, out: &mut Vec<u8>) {
        let _ = Writable::write(self, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"a":{"value":[1,"x",null,true,2.5,{"k":"v"}]},"n":-3,"u":18446744073709551615,"s":"é\n"}"#;

    #[test]
    fn tape_and_owned_read_alike() {
        let mut b1 = DOC.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut b1).unwrap();
        let t = tape.as_value();
        let mut b2 = DOC.as_bytes().to_vec();
        let owned = simd_json::to_owned_value(&mut b2).unwrap();
        let o = &owned;
        fn read<'a, J: Json<'a>>(v: J) -> Vec<String> {
            let list = v.get("a").and_then(|a| a.get("value")).unwrap();
            let mut out: Vec<String> = list
                .elements()
                .unwrap()
                .map(|e| format!("{:?}", e.value_type()))
                .collect();
            out.push(list.index(1).and_then(|x| x.as_str()).unwrap().into());
            out.push(format!("{:?}", list.index(4).and_then(|x| x.cast_f64())));
            out.push(format!("{:?}", v.get("n").and_then(|x| x.as_i64())));
            out.push(format!("{:?}", v.get("u").and_then(|x| x.as_u64())));
            out.push(v.get("s").and_then(|x| x.as_str()).unwrap().into());
            out.push(String::from_utf8(list.index(5).unwrap().to_json_vec()).unwrap());
            let mut keys: Vec<&str> = v.entries().unwrap().map(|(k, _)| k).collect();
            keys.sort();
            out.push(keys.join(","));
            out.push(format!(
                "{}",
                v.get("missing").is_none() && list.index(9).is_none()
            ));
            out
        }
        assert_eq!(read(t), read(o));
        assert_eq!(read(t)[7], "Some(2.5)");
        assert_eq!(read(t)[11], r#"{"k":"v"}"#);
        assert_eq!(read(t)[12], "a,n,s,u");
    }

    #[test]
    fn first_key_wins_on_the_tape() {
        let mut b = br#"{"k":1,"k":2}"#.to_vec();
        let tape = simd_json::to_tape(&mut b).unwrap();
        assert_eq!(tape.as_value().get("k").and_then(|v| v.as_i64()), Some(1));
    }
}
