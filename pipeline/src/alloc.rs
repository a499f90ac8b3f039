//! The allocator's settings.
//!
//! The binary allocates with mimalloc (see `main.rs`). By default mimalloc
//! (v3) keeps freed memory for a second, and its arenas for ten times that,
//! before giving it back to the OS. Worker threads free page-sized buffers many
//! times a second, so resident memory followed the rate of allocation
//! rather than what was live: a 1,000,000-finding sync peaked at 166 MiB,
//! against 88 MiB when freed memory goes back at once, at the same speed.

use std::os::raw::c_int;

/// `mi_option_purge_delay` in `mimalloc.h` (v3, `enum mi_option_e`).
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Give freed memory back to the OS at once. Call before any thread starts
/// (mimalloc's options are not thread safe).
pub fn return_freed_memory_at_once() {
    // SAFETY: an option write, before other threads exist.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) }
}

/// The purge delay in force, in ms.
// `c_long` is 32 bits on some targets.
#[allow(clippy::useless_conversion)]
pub fn purge_delay_ms() -> i64 {
    // SAFETY: an option read.
    i64::from(unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_is_mimallocs_purge_delay() {
        // Its default (1000 ms, `options.c`) identifies the option: a
        // different index (a changed enum) would read another option's value.
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            assert_eq!(purge_delay_ms(), 1000);
        }
        return_freed_memory_at_once();
        assert_eq!(purge_delay_ms(), 0);
    }
}
