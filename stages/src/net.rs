//! Network facts shared by the Orca client and the Qualys sink.

/// Whether `host` (a URL's host: a name, an IPv4 or a bracketed IPv6
/// address) is this machine. Plain http is allowed only there: a token or
/// password sent anywhere else would cross a network in clear.
pub fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_hosts() {
        for h in [
            "127.0.0.1",
            "127.8.9.1",
            "[::1]",
            "::1",
            "localhost",
            "LOCALHOST",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "10.0.0.5",
            "0.0.0.0",
            "[::]",
            "localhost.example",
            "example.com",
            "",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
