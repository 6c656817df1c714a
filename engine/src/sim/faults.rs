//! What can go wrong on a simulated link: the fault configuration and its validation.
//!
//! Owns: [`Faults`], a plain description. May not: draw random numbers or touch frames
//! (the link applies a configuration, see `link.rs`).
use crate::time::Duration;

/// The faults and shape of one direction of a link (or of every link, as the network's
/// default). All probabilities are per frame, in `[0, 1]`.
///
/// Per frame, in this order:
/// 1. **MTU**: a frame whose IP part (length minus the 14-byte Ethernet header) exceeds
///    `mtu` is dropped and counted as oversize.
/// 2. **Bandwidth**: the frame occupies the link for `len * 8 / bandwidth` seconds after
///    the previous one (an unbounded queue in front of the wire).
/// 3. **Loss** with probability `loss`.
/// 4. **Reordering**: with probability `reorder` the frame is held back by an extra delay
///    uniform in `(0, reorder_delay]`, outside the link's FIFO order, so later frames may
///    overtake it (counted as reordered whether or not one does).
/// 5. **Duplication** with probability `duplicate`: a second copy follows the first.
/// 6. Per copy, **corruption** with probability `corrupt`: `corrupt_bits` distinct random
///    bits are flipped after the Ethernet header, where the IPv4 or TCP checksum covers
///    them (one flipped bit is always caught by a ones'-complement checksum; several may
///    cancel out, as on a real wire).
/// 7. Per copy, **delay**: `delay` plus jitter uniform in `[0, jitter]`. Apart from held-back
///    frames a link is FIFO: jitter delays a frame but never lets it overtake an earlier
///    one.
#[derive(Debug, Clone, PartialEq)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub reorder_delay: Duration,
    pub corrupt: f64,
    pub corrupt_bits: u32,
    pub delay: Duration,
    pub jitter: Duration,
    /// Bits per second; `None` for infinitely fast.
    pub bandwidth: Option<u64>,
    /// Largest IP packet carried (Ethernet payload); `None` for no limit.
    pub mtu: Option<usize>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults::none()
    }
}

/// Why a fault configuration was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum FaultError {
    /// The named probability is not a number in `[0, 1]`.
    #[error("probability `{0}` must be in [0, 1]")]
    Probability(&'static str),
    /// A bandwidth of zero would never deliver anything.
    #[error("bandwidth must be positive")]
    ZeroBandwidth,
    /// Corruption is enabled but flips no bit.
    #[error("corrupt_bits must be at least 1 when corrupt > 0")]
    NoCorruptBits,
}

impl Faults {
    /// A perfect link: no loss, no delay, no limits.
    pub const fn none() -> Self {
        Faults {
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::ZERO,
            corrupt: 0.0,
            corrupt_bits: 1,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            bandwidth: None,
            mtu: None,
        }
    }

    pub fn with_loss(mut self, p: f64) -> Self {
        self.loss = p;
        self
    }

    pub fn with_duplicate(mut self, p: f64) -> Self {
        self.duplicate = p;
        self
    }

    /// Holds back a fraction `p` of frames by up to `max_extra`.
    pub fn with_reorder(mut self, p: f64, max_extra: Duration) -> Self {
        self.reorder = p;
        self.reorder_delay = max_extra;
        self
    }

    /// Flips one bit in a fraction `p` of frames.
    pub fn with_corrupt(mut self, p: f64) -> Self {
        self.corrupt = p;
        self
    }

    pub fn with_delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.delay = delay;
        self.jitter = jitter;
        self
    }

    pub fn with_bandwidth(mut self, bits_per_second: u64) -> Self {
        self.bandwidth = Some(bits_per_second);
        self
    }

    pub fn with_mtu(mut self, mtu: usize) -> Self {
        self.mtu = Some(mtu);
        self
    }

    /// Checks every field; the network refuses configurations that fail this.
    pub fn validate(&self) -> Result<(), FaultError> {
        let probabilities = [
            ("loss", self.loss),
            ("duplicate", self.duplicate),
            ("reorder", self.reorder),
        ];
        for (name, p) in probabilities.into_iter().chain([("corrupt", self.corrupt)]) {
            if !(0.0..=1.0).contains(&p) {
                return Err(FaultError::Probability(name));
            }
        }
        if self.bandwidth == Some(0) {
            return Err(FaultError::ZeroBandwidth);
        }
        if self.corrupt > 0.0 && self.corrupt_bits == 0 {
            return Err(FaultError::NoCorruptBits);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(Faults::none().validate(), Ok(()));
        assert_eq!(
            Faults::none().with_loss(1.5).validate(),
            Err(FaultError::Probability("loss"))
        );
        assert_eq!(
            Faults::none().with_corrupt(f64::NAN).validate(),
            Err(FaultError::Probability("corrupt"))
        );
        assert_eq!(
            Faults::none().with_bandwidth(0).validate(),
            Err(FaultError::ZeroBandwidth)
        );
        let mut f = Faults::none().with_corrupt(0.5);
        f.corrupt_bits = 0;
        assert_eq!(f.validate(), Err(FaultError::NoCorruptBits));
    }
}
