//! Human durations (`"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"`) as they appear in the API and in
//! the configuration. One parser for both, so a value that works in a config file works in a
//! request body too.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written with a unit. Serialises back to the shortest exact form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn from_millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    pub const fn from_secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub fn as_millis(&self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

/// The error names the value and the accepted shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration: use a whole number with a unit ms, s, m, h or d, e.g. \"250ms\", \"5s\", \"2m\", \"1h\"")]
pub struct DurError(pub String);

impl FromStr for Dur {
    type Err = DurError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num.parse().map_err(|_| DurError(s.to_string()))?;
        let ms_per = match unit.trim() {
            "ms" => 1u64,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(DurError(s.to_string())),
        };
        n.checked_mul(ms_per)
            .map(Dur::from_millis)
            .ok_or_else(|| DurError(s.to_string()))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, per) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms != 0 && ms.is_multiple_of(per) {
                return write!(f, "{}{}", ms / per, unit);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl serde::Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_unit() {
        for (s, ms) in [
            ("250ms", 250),
            ("5s", 5_000),
            ("2m", 120_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
        ] {
            let d: Dur = s.parse().unwrap();
            assert_eq!(d.as_millis(), ms);
            assert_eq!(d.to_string(), s);
        }
        assert_eq!(Dur::from_millis(1500).to_string(), "1500ms");
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for s in [
            "",
            "5",
            "s",
            "5 sec",
            "-5s",
            "1.5s",
            "99999999999999999999d",
        ] {
            assert!(s.parse::<Dur>().is_err(), "{s}");
        }
    }
}
