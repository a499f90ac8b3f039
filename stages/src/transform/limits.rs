//! Deterministic order and the per-asset caps on list sizes.

use std::cmp::Ordering;

use super::out::Out;
use super::stats::{Counter, TransformStats};

/// Sort `items` by the `keys` fields, then by the whole element, so that
/// the order (and what a cut keeps) never depends on Orca's row order.
pub fn sort(items: &mut [Out<'_>], keys: &[Box<str>]) {
    items.sort_by(|a, b| {
        keys.iter()
            .map(|k| {
                cmp(
                    a.get(k).unwrap_or(&Out::Null),
                    b.get(k).unwrap_or(&Out::Null),
                )
            })
            .find(|o| o.is_ne())
            .unwrap_or_else(|| a.to_json().cmp(&b.to_json()))
    });
}

/// Keep at most `limit` items, counting a cut once per list.
pub fn cap(
    items: &mut Vec<Out<'_>>,
    limit: Option<usize>,
    counter: Counter,
    stats: &mut TransformStats,
) {
    if let Some(limit) = limit {
        if items.len() > limit {
            items.truncate(limit);
            stats.bump(counter);
        }
    }
}

fn rank(v: &Out<'_>) -> u8 {
    match v {
        Out::Null => 0,
        Out::Bool(_) => 1,
        Out::I64(_) | Out::U64(_) | Out::F64(_) => 2,
        Out::Str(_) => 3,
        Out::List(_) => 4,
        Out::Obj(_) => 5,
    }
}

fn num(v: &Out<'_>) -> f64 {
    match v {
        Out::I64(i) => *i as f64,
        Out::U64(u) => *u as f64,
        Out::F64(f) => *f,
        _ => 0.0,
    }
}

/// A total order on output values: null first, then by type, then by value.
fn cmp(a: &Out<'_>, b: &Out<'_>) -> Ordering {
    rank(a).cmp(&rank(b)).then_with(|| match (a, b) {
        (Out::Bool(x), Out::Bool(y)) => x.cmp(y),
        (Out::I64(x), Out::I64(y)) => x.cmp(y),
        (Out::U64(x), Out::U64(y)) => x.cmp(y),
        (Out::Str(x), Out::Str(y)) => x.cmp(y),
        (Out::Null, Out::Null) => Ordering::Equal,
        _ if rank(a) == 2 => num(a).total_cmp(&num(b)),
        _ => a.to_json().cmp(&b.to_json()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(name: &str, version: &str) -> Out<'static> {
        Out::Obj(vec![
            ("name".into(), Out::Str(name.to_owned().into())),
            ("version".into(), Out::Str(version.to_owned().into())),
        ])
    }

    #[test]
    fn sorts_by_keys_then_whole_element() {
        let mut a = vec![sw("b", "1"), sw("a", "2"), Out::Obj(vec![]), sw("a", "1")];
        sort(&mut a, &["name".into(), "version".into()]);
        assert_eq!(
            a,
            vec![Out::Obj(vec![]), sw("a", "1"), sw("a", "2"), sw("b", "1")]
        );
        let mut stats = TransformStats::default();
        cap(&mut a, Some(2), Counter::truncated_softwares, &mut stats);
        assert_eq!(a.len(), 2);
        assert_eq!(stats.truncated_softwares, 1);
    }
}
