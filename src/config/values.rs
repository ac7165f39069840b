//! Config values that check themselves while being read, so a bad one is reported with the line
//! it is on (toml attaches the span of the value being deserialized to the error).

use crate::tuning::{Rebar, ResetMethod};
use crate::vm::VmName;
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// A whole number of seconds within `MIN..=MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds<const MIN: u64, const MAX: u64>(pub u64);

impl<const MIN: u64, const MAX: u64> Seconds<MIN, MAX> {
    pub fn duration(self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl<'de, const MIN: u64, const MAX: u64> Deserialize<'de> for Seconds<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = i64::deserialize(d)?;
        if value < MIN as i64 || value > MAX as i64 {
            return Err(serde::de::Error::custom(format!(
                "{value} is out of range: expected a number of seconds from {MIN} to {MAX}"
            )));
        }
        Ok(Seconds(value as u64))
    }
}

/// A `[vm."name"]` table key: the same rules as a name libvirt passes the hook.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct VmKey(pub VmName);

impl<'de> Deserialize<'de> for VmKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        VmName::parse(&text)
            .map(VmKey)
            .map_err(serde::de::Error::custom)
    }
}

/// `rebar = "keep" | "smallest" | "<size>"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RebarValue(pub Rebar);

impl<'de> Deserialize<'de> for RebarValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Rebar::parse(&text)
            .map(RebarValue)
            .map_err(serde::de::Error::custom)
    }
}

/// `reset_method = "keep" | "<methods>"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetValue(pub ResetMethod);

impl<'de> Deserialize<'de> for ResetValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        ResetMethod::parse(&text)
            .map(ResetValue)
            .map_err(serde::de::Error::custom)
    }
}
