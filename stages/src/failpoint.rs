//! Named points where the crash-safety tests stop the process.
//!
//! With `ORCA_ETM_FAILPOINT=<name>` (or `<name>@<n>` for its n-th pass) the
//! process says `failpoint <name>@<n> reached` on stderr and waits there to
//! be killed (the tests send SIGKILL). Without the variable a point costs
//! one atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The armed point and the pass it fires on, read once.
fn armed() -> Option<&'static (String, u64)> {
    static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            let v = std::env::var("ORCA_ETM_FAILPOINT").ok()?;
            match v.split_once('@') {
                Some((n, at)) => Some((n.to_string(), at.parse().ok()?)),
                None => Some((v, 1)),
            }
        })
        .as_ref()
}

/// Pass point `name`: stop here if it is the armed point's armed pass.
pub fn hit(name: &str) {
    static PASSES: AtomicU64 = AtomicU64::new(0);
    let Some((want, at)) = armed() else {
        return;
    };
    if want != name {
        return;
    }
    let pass = PASSES.fetch_add(1, Ordering::SeqCst) + 1;
    if pass != *at {
        return;
    }
    eprintln!("orca-etm: failpoint {name}@{pass} reached");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
