//! Finding status across runs, as pure rules (`shared/spec/etm-model.md`,
//! "Finding status across runs").
//!
//! The pipeline applies these during its sorted join of this run's findings
//! with the ledger's; the ledger only stores what they decide. Kept free of
//! I/O so the rules can be read, and property-tested, on their own.

use serde::{Deserialize, Serialize};

/// The status of a finding, as published in ETM `finding[].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// First time seen.
    New,
    /// Seen before and seen again.
    Active,
    /// Was `FIXED`, seen again.
    Reopened,
    /// Seen in an earlier run, not in a complete later one.
    Fixed,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::New, Status::Active, Status::Reopened, Status::Fixed];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Active => "ACTIVE",
            Status::Reopened => "REOPENED",
            Status::Fixed => "FIXED",
        }
    }

    /// Whether the finding is still open (anything but `FIXED`).
    pub fn is_open(self) -> bool {
        self != Status::Fixed
    }

    /// The code stored in the ledger. `ACTIVE`, by far the most common
    /// status, is 1: SQLite stores the integers 0 and 1 in no payload bytes.
    pub(crate) fn code(self) -> i64 {
        match self {
            Status::New => 0,
            Status::Active => 1,
            Status::Reopened => 2,
            Status::Fixed => 3,
        }
    }

    pub(crate) fn from_code(code: i64) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of a finding this run saw, given its status in the ledger
/// (`None`: the ledger never saw it).
///
/// `None` → `NEW`; `NEW`/`ACTIVE`/`REOPENED` → `ACTIVE`; `FIXED` → `REOPENED`.
pub fn status_seen(previous: Option<Status>) -> Status {
    match previous {
        None => Status::New,
        Some(Status::Fixed) => Status::Reopened,
        Some(Status::New | Status::Active | Status::Reopened) => Status::Active,
    }
}

/// What happens to a finding the ledger knows and this run did not see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingOutcome {
    /// Leave it as it is: not re-emitted, not written to the ledger.
    Keep,
    /// Mark it `FIXED`: emit it as `FIXED` under its asset and write
    /// `FIXED` to the ledger.
    Fix,
}

/// A finding the ledger knows (with status `previous`) that this run did
/// not see.
///
/// - already `FIXED` → [`MissingOutcome::Keep`]: it was emitted as `FIXED`
///   when it was fixed, and stays so.
/// - open, `preserve_missing` ("Preserve Findings Missing in Latest Sync")
///   → `Keep`: it keeps its status and is not re-emitted.
/// - open, the run is not complete (`partial` or `failed`: some query was
///   not read to the end) → `Keep`: a run that did not read everything can
///   not tell "gone" from "not read", so it never fixes anything.
/// - open, complete run, not preserving → [`MissingOutcome::Fix`].
pub fn status_missing(
    previous: Status,
    preserve_missing: bool,
    run_complete: bool,
) -> MissingOutcome {
    if previous.is_open() && run_complete && !preserve_missing {
        MissingOutcome::Fix
    } else {
        MissingOutcome::Keep
    }
}

/// A finding the ledger knows whose record this run could not read (a dead
/// letter that still named its asset and vendor id, or an asset whose
/// findings failed to parse): always [`MissingOutcome::Keep`], whatever the
/// run and the settings. Not having read it is not evidence it is gone
/// (`shared/cases/README.md`: such a finding must never be marked FIXED).
pub fn status_unreadable(_previous: Status) -> MissingOutcome {
    MissingOutcome::Keep
}

/// The run-wide inputs of the rules: a setting and a fact about the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixPolicy {
    /// The "Preserve Findings Missing in Latest Sync" setting.
    pub preserve_missing: bool,
    /// Every query of the run was read to the end (the run will be recorded
    /// `complete`).
    pub run_complete: bool,
}

impl FixPolicy {
    /// The outcome for a known finding this run did not see; `unreadable`
    /// when its record was there but could not be read.
    pub fn missing(self, previous: Status, unreadable: bool) -> MissingOutcome {
        if unreadable {
            status_unreadable(previous)
        } else {
            status_missing(previous, self.preserve_missing, self.run_complete)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_status() -> impl Strategy<Value = Status> {
        prop::sample::select(Status::ALL.to_vec())
    }

    #[test]
    fn seen_table() {
        assert_eq!(status_seen(None), Status::New);
        assert_eq!(status_seen(Some(Status::New)), Status::Active);
        assert_eq!(status_seen(Some(Status::Active)), Status::Active);
        assert_eq!(status_seen(Some(Status::Reopened)), Status::Active);
        assert_eq!(status_seen(Some(Status::Fixed)), Status::Reopened);
    }

    #[test]
    fn codes_and_names_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::from_code(s.code()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), s);
        }
        assert_eq!(Status::from_code(4), None);
    }

    proptest! {
        #[test]
        fn seen_is_never_fixed(prev in prop::option::of(any_status())) {
            prop_assert!(status_seen(prev).is_open());
        }

        #[test]
        fn seen_is_new_only_without_history(prev in prop::option::of(any_status())) {
            prop_assert_eq!(status_seen(prev) == Status::New, prev.is_none());
        }

        #[test]
        fn seen_reopens_exactly_the_fixed(prev in any_status()) {
            prop_assert_eq!(status_seen(Some(prev)) == Status::Reopened, prev == Status::Fixed);
        }

        #[test]
        fn only_a_complete_unpreserving_run_fixes(
            prev in any_status(), preserve in any::<bool>(), complete in any::<bool>()
        ) {
            let out = status_missing(prev, preserve, complete);
            prop_assert_eq!(out == MissingOutcome::Fix, prev.is_open() && complete && !preserve);
        }

        #[test]
        fn incomplete_runs_never_fix(prev in any_status(), preserve in any::<bool>()) {
            prop_assert_eq!(status_missing(prev, preserve, false), MissingOutcome::Keep);
        }

        #[test]
        fn unreadable_never_fixes(
            prev in any_status(), preserve in any::<bool>(), complete in any::<bool>()
        ) {
            let policy = FixPolicy { preserve_missing: preserve, run_complete: complete };
            prop_assert_eq!(policy.missing(prev, true), MissingOutcome::Keep);
            prop_assert_eq!(status_unreadable(prev), MissingOutcome::Keep);
        }

        #[test]
        fn fixed_is_absorbing_while_missing(preserve in any::<bool>(), complete in any::<bool>()) {
            prop_assert_eq!(status_missing(Status::Fixed, preserve, complete), MissingOutcome::Keep);
        }
    }
}
