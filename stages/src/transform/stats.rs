//! Counters of everything the transform repaired, defaulted or dropped.

/// Declares the counters once, so the struct, the iterator, the merge and
/// the names a map may use as `counter` cannot drift apart.
macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// Per-reason counts; merge the workers' copies with `+=`.
        #[derive(Default, Clone, Debug, PartialEq, Eq, serde::Serialize)]
        pub struct TransformStats {
            $(pub $name: u64,)*
        }

        impl TransformStats {
            /// `(reason, count)` for every counter, in a fixed order, for
            /// metrics and the run manifest.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> {
                [$((stringify!($name), self.$name),)*].into_iter()
            }

            pub fn merge(&mut self, other: &TransformStats) {
                $(self.$name += other.$name;)*
            }

            /// The slot of a counter a map chose by name.
            pub(crate) fn slot(&mut self, which: Counter) -> &mut u64 {
                match which {
                    $(Counter::$name => &mut self.$name,)*
                }
            }
        }

        /// A counter, by name.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Counter {
            $($name,)*
        }

        impl Counter {
            pub(crate) fn from_name(s: &str) -> Option<Counter> {
                match s {
                    $(stringify!($name) => Some(Counter::$name),)*
                    _ => None,
                }
            }
        }
    };
}

counters!(
    unparseable_dates,
    unmapped_severity,
    unmapped_patch,
    undecodable_tags,
    mended_encoded_json,
    invalid_numbers,
    invalid_strings,
    invalid_bools,
    invalid_ips,
    unknown_cloud_provider,
    truncated_tags,
    truncated_services,
    truncated_softwares,
    truncated_other,
    missing_asset_id,
    missing_vendor_id,
    ambiguous_id,
);

impl TransformStats {
    pub(crate) fn bump(&mut self, which: Counter) {
        *self.slot(which) += 1;
    }
}

impl std::ops::AddAssign<&TransformStats> for TransformStats {
    fn add_assign(&mut self, other: &TransformStats) {
        self.merge(other);
    }
}

impl std::ops::AddAssign for TransformStats {
    fn add_assign(&mut self, other: TransformStats) {
        self.merge(&other);
    }
}
