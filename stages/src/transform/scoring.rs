//! Severity (1–5) to Qualys Detection Score, as configured by the user.

use serde::{Deserialize, Serialize};

use super::map::MapError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    /// QDS for severity 1..=5 (index 0 is severity 1).
    #[serde(default = "default_qds")]
    pub qds: [u8; 5],
    /// Severity for values the severity table does not know.
    #[serde(default = "default_severity")]
    pub default_severity: u8,
}

fn default_qds() -> [u8; 5] {
    // Inside ETM's published bands: Low 1–39, Medium 40–69, High 70–89, Critical 90–100.
    [5, 25, 55, 80, 95]
}

fn default_severity() -> u8 {
    3
}

impl Default for ScoringConfig {
    fn default() -> Self {
        ScoringConfig {
            qds: default_qds(),
            default_severity: default_severity(),
        }
    }
}

impl ScoringConfig {
    pub fn validate(&self) -> Result<(), MapError> {
        if let Some(bad) = self.qds.iter().find(|q| **q > 100) {
            return Err(MapError::Scoring(format!(
                "qds value {bad} is outside 0..=100"
            )));
        }
        if !(1..=5).contains(&self.default_severity) {
            return Err(MapError::Scoring(format!(
                "default_severity {} is outside 1..=5",
                self.default_severity
            )));
        }
        Ok(())
    }

    /// QDS of a severity already known to be in 1..=5.
    pub fn qds_of(&self, severity: u8) -> u8 {
        let i = usize::from(severity.clamp(1, 5)) - 1;
        self.qds[i]
    }
}
