//! orca-etm runtime.
