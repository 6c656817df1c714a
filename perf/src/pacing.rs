//! Rate control for the generator: how many packets may leave by now.

/// A packet budget that grows at `rate` packets per second of elapsed time, capped at one
/// burst so that a stall is not followed by a flood.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Packets per second; `None` sends as fast as the device takes them.
    rate: Option<f64>,
    burst: u32,
    sent: u64,
    /// Packets owed to the rate but not sent, beyond the cap (forgiven).
    forgiven: f64,
}

impl Pacer {
    pub fn new(rate: Option<f64>, burst: u32) -> Pacer {
        Pacer {
            rate,
            burst: burst.max(1),
            sent: 0,
            forgiven: 0.0,
        }
    }

    /// How many packets may be sent now, `elapsed_s` seconds after the start.
    #[inline]
    pub fn allowance(&mut self, elapsed_s: f64) -> u32 {
        let Some(rate) = self.rate else {
            return self.burst;
        };
        let due = rate * elapsed_s - self.forgiven - self.sent as f64;
        if due <= 0.0 {
            return 0;
        }
        if due > f64::from(self.burst) {
            self.forgiven += due - f64::from(self.burst);
            return self.burst;
        }
        due as u32
    }

    /// Records that `n` packets left.
    #[inline]
    pub fn sent(&mut self, n: u32) {
        self.sent += u64::from(n);
    }
}

/// An offered rate: packets per second, or `None` for as fast as the device goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate(pub Option<f64>);

/// Parses `max` or a packets-per-second figure with an optional k/M suffix.
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    parse_rate_value(s).map(Rate)
}

fn parse_rate_value(s: &str) -> Result<Option<f64>, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(None);
    }
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1e3),
        Some('m' | 'M') => (&s[..s.len() - 1], 1e6),
        _ => (s, 1.0),
    };
    match num.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v * mult)),
        _ => Err(format!(
            "bad rate {s:?}: want `max` or packets per second such as 1000000, 500k or 2M"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_always_allows_a_burst() {
        let mut p = Pacer::new(None, 32);
        assert_eq!(p.allowance(0.0), 32);
        p.sent(32);
        assert_eq!(p.allowance(0.0), 32);
    }

    #[test]
    fn paces_to_the_rate() {
        let mut p = Pacer::new(Some(1000.0), 32);
        let mut total = 0u64;
        for ms in 0..=1000 {
            let n = p.allowance(f64::from(ms) / 1000.0);
            p.sent(n);
            total += u64::from(n);
        }
        assert!((999..=1001).contains(&total), "{total}");
    }

    #[test]
    fn a_stall_is_not_followed_by_a_flood() {
        let mut p = Pacer::new(Some(1000.0), 32);
        assert_eq!(p.allowance(10.0), 32);
        p.sent(32);
        assert_eq!(p.allowance(10.0), 0);
        assert_eq!(p.allowance(10.010), 10);
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("max"), Ok(Rate(None)));
        assert_eq!(parse_rate("2M"), Ok(Rate(Some(2e6))));
        assert_eq!(parse_rate("500k"), Ok(Rate(Some(5e5))));
        assert_eq!(parse_rate("1000"), Ok(Rate(Some(1000.0))));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-5").is_err());
        assert!(parse_rate("fast").is_err());
        assert!(parse_rate("").is_err());
    }
}
