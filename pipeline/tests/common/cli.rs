//! Running the `orca-etm` binary as a person at the command line would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::TOKEN;

/// `orca-etm ARGS` with `token` as ORCA_API_TOKEN, logs at info, stdout and
/// stderr piped (so no bar and no colour).
pub fn orca_etm_as(args: &[&str], token: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_orca-etm"))
        .args(args)
        .env("ORCA_API_TOKEN", token)
        .env("ORCA_ETM_LOG", "info")
        .env_remove("NO_COLOR")
        .env_remove("ORCA_ETM_FAILPOINT")
        .output()
        .unwrap()
}

/// `orca-etm ARGS` with the tests' token.
pub fn orca_etm(args: &[&str]) -> Output {
    orca_etm_as(args, TOKEN)
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `text` as `dir/orca-etm.toml`.
pub fn config_file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("orca-etm.toml");
    std::fs::write(&p, text).unwrap();
    p
}
