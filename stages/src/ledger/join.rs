//! The sorted join of this run's findings with the ledger's, one asset at a
//! time, as the publish phase walks its documents in `externalAssetId`
//! order.
//!
//! Memory is one asset's known findings at a time (the documents being
//! assembled hold an asset's findings anyway), never the whole ledger.

use std::iter::Peekable;

use super::{FixPolicy, Known, LedgerError, MissingOutcome, Status};

/// The known-findings stream, grouped by asset.
#[derive(Debug)]
pub struct KnownByAsset<I: Iterator<Item = Result<Known, LedgerError>>> {
    inner: Peekable<I>,
}

impl<I: Iterator<Item = Result<Known, LedgerError>>> KnownByAsset<I> {
    pub fn new(known: I) -> Self {
        KnownByAsset {
            inner: known.peekable(),
        }
    }

    /// The asset id of the next known finding; a stream error is returned
    /// (and so consumed) here.
    fn peek_asset(&mut self) -> Result<Option<&str>, LedgerError> {
        if let Some(Err(_)) = self.inner.peek() {
            if let Some(Err(e)) = self.inner.next() {
                return Err(e);
            }
        }
        Ok(match self.inner.peek() {
            Some(Ok(k)) => Some(k.asset_id.as_str()),
            _ => None,
        })
    }

    /// All known findings of the next known asset, with its id.
    fn take_next(&mut self) -> Result<Option<(String, Vec<Known>)>, LedgerError> {
        let Some(asset_id) = self.peek_asset()?.map(str::to_owned) else {
            return Ok(None);
        };
        let found = self.take(&asset_id)?;
        Ok(Some((asset_id, found)))
    }

    /// The next known asset that sorts before `bound` (any, for `None`),
    /// with its known findings: an asset of the ledger that this run did not
    /// publish before reaching `bound`. Call it until `None` before each
    /// asset the run publishes, and with `None` at the end of the run.
    pub fn next_before(
        &mut self,
        bound: Option<&str>,
    ) -> Result<Option<(String, Vec<Known>)>, LedgerError> {
        match (self.peek_asset()?, bound) {
            (None, _) => Ok(None),
            (Some(next), Some(b)) if next >= b => Ok(None),
            _ => self.take_next(),
        }
    }

    /// The known findings of `asset_id`, sorted by vendor id (empty if the
    /// ledger has none). Assets before it must have been taken already.
    pub fn take(&mut self, asset_id: &str) -> Result<Vec<Known>, LedgerError> {
        if let Some(next) = self.peek_asset()? {
            if next < asset_id {
                return Err(LedgerError::OutOfOrder {
                    what: "known asset skipped",
                    previous: next.to_owned(),
                    next: asset_id.to_owned(),
                });
            }
        }
        let mut out = Vec::new();
        while self.peek_asset()? == Some(asset_id) {
            match self.inner.next() {
                Some(Ok(k)) => out.push(k),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        }
        Ok(out)
    }
}

/// The status of one finding of an asset in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub vendor_id: String,
    /// Its status in the ledger before this run (`None`: new).
    pub previous: Option<Status>,
    /// Its status now: published with it if `emit`, stored if `write`.
    pub status: Status,
    /// This run's fingerprint if seen, else the ledger's.
    pub fingerprint: u64,
    /// The `externalFindingId` the ledger remembers for it (`None` when new
    /// or never recorded): what a `FIXED` finding is published under.
    pub known_external_id: Option<String>,
    /// Publish the finding under its asset with `status` (seen, or being
    /// fixed).
    pub emit: bool,
    /// Pass it to [`super::RunWriter::finding`]; `false` for findings kept
    /// as they were, which need no write.
    pub write: bool,
}

/// Decide every finding of one asset: `known` from [`KnownByAsset`],
/// `seen` this run's findings of the asset as (`vendor_id`, fingerprint)
/// sorted by vendor id with no repeats, `unreadable(vendor_id)` true for a
/// known finding whose record this run could not read. Decisions come out
/// in vendor id order.
pub fn decide_asset<'s>(
    known: Vec<Known>,
    seen: impl IntoIterator<Item = (&'s str, u64)>,
    policy: FixPolicy,
    unreadable: impl Fn(&str) -> bool,
) -> Result<Vec<Decision>, LedgerError> {
    let mut out = Vec::with_capacity(known.len());
    let mut known = known.into_iter().peekable();
    let mut last: Option<&str> = None;
    let missing = |k: Known, out: &mut Vec<Decision>| {
        let outcome = policy.missing(k.status, unreadable(&k.vendor_id));
        let fix = outcome == MissingOutcome::Fix;
        out.push(Decision {
            previous: Some(k.status),
            status: if fix { Status::Fixed } else { k.status },
            fingerprint: k.fingerprint,
            known_external_id: k.external_id,
            emit: fix,
            write: fix,
            vendor_id: k.vendor_id,
        });
    };
    for (vendor_id, fingerprint) in seen {
        if let Some(prev) = last {
            if vendor_id <= prev {
                return Err(LedgerError::OutOfOrder {
                    what: "finding",
                    previous: prev.to_owned(),
                    next: vendor_id.to_owned(),
                });
            }
        }
        last = Some(vendor_id);
        while let Some(k) = known.next_if(|k| k.vendor_id.as_str() < vendor_id) {
            missing(k, &mut out);
        }
        let (previous, known_external_id) = match known.next_if(|k| k.vendor_id == vendor_id) {
            Some(k) => (Some(k.status), k.external_id),
            None => (None, None),
        };
        out.push(Decision {
            vendor_id: vendor_id.to_owned(),
            previous,
            status: super::status_seen(previous),
            fingerprint,
            known_external_id,
            emit: true,
            write: true,
        });
    }
    for k in known {
        missing(k, &mut out);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(asset: &str, vendor: &str, status: Status) -> Known {
        Known {
            asset_id: asset.into(),
            vendor_id: vendor.into(),
            status,
            fingerprint: 7,
            external_id: None,
            first_seen_run: "r1".into(),
            last_seen_run: "r1".into(),
        }
    }

    const FIX: FixPolicy = FixPolicy {
        preserve_missing: false,
        run_complete: true,
    };

    #[test]
    fn groups_by_asset_and_reports_skipped_ones() {
        let known = vec![
            k("a", "1", Status::New),
            k("a", "2", Status::New),
            k("b", "1", Status::Active),
            k("d", "1", Status::Fixed),
        ];
        let mut g = KnownByAsset::new(known.into_iter().map(Ok));
        assert_eq!(g.next_before(Some("a")).unwrap(), None);
        assert_eq!(g.take("a").unwrap().len(), 2);
        // "b" was not published: it comes out before "c".
        let (id, b) = g.next_before(Some("c")).unwrap().unwrap();
        assert_eq!((id.as_str(), b.len()), ("b", 1));
        assert_eq!(g.next_before(Some("c")).unwrap(), None);
        assert!(g.take("c").unwrap().is_empty());
        assert_eq!(g.next_before(None).unwrap().unwrap().0, "d");
        assert_eq!(g.next_before(None).unwrap(), None);
    }

    #[test]
    fn taking_past_a_known_asset_is_an_error() {
        let known = vec![k("a", "1", Status::New)];
        let mut g = KnownByAsset::new(known.into_iter().map(Ok));
        assert!(matches!(g.take("b"), Err(LedgerError::OutOfOrder { .. })));
    }

    #[test]
    fn decides_seen_missing_and_unreadable() {
        let known = vec![
            k("a", "1", Status::New),
            k("a", "2", Status::Fixed),
            k("a", "3", Status::Active),
            k("a", "4", Status::Reopened),
        ];
        let seen = [("0", 1), ("2", 2)];
        let d = decide_asset(known, seen, FIX, |v| v == "4").unwrap();
        let got: Vec<_> = d
            .iter()
            .map(|d| (d.vendor_id.as_str(), d.status, d.emit, d.write))
            .collect();
        assert_eq!(
            got,
            [
                ("0", Status::New, true, true),
                ("1", Status::Fixed, true, true),
                ("2", Status::Reopened, true, true),
                ("3", Status::Fixed, true, true),
                ("4", Status::Reopened, false, false),
            ]
        );
    }

    #[test]
    fn unsorted_seen_is_an_error() {
        let r = decide_asset(vec![], [("b", 1), ("a", 1)], FIX, |_| false);
        assert!(matches!(r, Err(LedgerError::OutOfOrder { .. })));
    }
}
