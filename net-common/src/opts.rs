//! `-o KEY=VALUE` values, checked with messages that name the option.

use std::net::IpAddr;

use crate::invalid;
use crate::wit::{Error, Kv};

/// The smallest MTU Linux accepts on an IPv4 interface, and on one that carries IPv6.
pub const MIN_MTU: u32 = 68;
pub const MIN_MTU_IPV6: u32 = 1280;
pub const MAX_MTU: u32 = 65535;

/// Go's `strconv.ParseBool` spellings, which Docker accepts.
pub fn parse_bool(key: &str, value: &str) -> Result<bool, Error> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(invalid(format!(
            "invalid value \"{value}\" for option {key}: expected true or false"
        ))),
    }
}

pub fn parse_mtu(key: &str, value: &str) -> Result<u32, Error> {
    match value.parse::<u32>() {
        Ok(mtu) if (MIN_MTU..=MAX_MTU).contains(&mtu) => Ok(mtu),
        _ => Err(invalid(format!(
            "invalid value \"{value}\" for option {key}: expected a number from {MIN_MTU} to {MAX_MTU}"
        ))),
    }
}

pub fn parse_ip(key: &str, value: &str) -> Result<IpAddr, Error> {
    value.parse().map_err(|_| {
        invalid(format!(
            "invalid value \"{value}\" for option {key}: expected an IP address"
        ))
    })
}

/// Docker's shape for an option a driver does not know.
pub fn unknown(key: &str, driver: &str) -> Error {
    invalid(format!(
        "unknown option '{key}' for {driver} network driver"
    ))
}

/// For drivers that take no options at all.
pub fn refuse_any(opts: &[Kv], driver: &str) -> Result<(), Error> {
    match opts.first() {
        Some(kv) => Err(unknown(&kv.key, driver)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message;

    #[test]
    fn values_are_checked_with_the_option_named() {
        assert!(parse_bool("k", "True").unwrap());
        assert!(!parse_bool("k", "0").unwrap());
        assert_eq!(
            message(&parse_bool("com.docker.network.bridge.enable_icc", "yes").unwrap_err()),
            "invalid value \"yes\" for option com.docker.network.bridge.enable_icc: expected true or false"
        );
        assert_eq!(parse_mtu("k", "1400").unwrap(), 1400);
        for bad in ["67", "65536", "", "-1", "1e3"] {
            assert_eq!(
                message(&parse_mtu("com.docker.network.driver.mtu", bad).unwrap_err()),
                format!(
                    "invalid value \"{bad}\" for option com.docker.network.driver.mtu: expected a number from 68 to 65535"
                )
            );
        }
        assert!(parse_ip("k", "::1").is_ok());
        assert_eq!(
            message(&parse_ip("k", "localhost").unwrap_err()),
            "invalid value \"localhost\" for option k: expected an IP address"
        );
    }
}
