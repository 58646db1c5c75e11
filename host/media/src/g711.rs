//! G.711 (ITU-T) mu-law and A-law: the two codecs every trunk and desk phone
//! speaks. Prompts are kept as 16-bit PCM and encoded per packet; the recorder
//! decodes what it receives.

/// Which G.711 law a stream uses (RTP static payload types 0 and 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    Mu,
    A,
}

impl Law {
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Mu),
            8 => Some(Law::A),
            _ => None,
        }
    }

    pub fn payload_type(self) -> u8 {
        match self {
            Law::Mu => 0,
            Law::A => 8,
        }
    }

    pub fn encode(self, sample: i16) -> u8 {
        match self {
            Law::Mu => mulaw_encode(sample),
            Law::A => alaw_encode(sample),
        }
    }

    pub fn decode(self, byte: u8) -> i16 {
        match self {
            Law::Mu => mulaw_decode(byte),
            Law::A => alaw_decode(byte),
        }
    }

    /// The byte for silence (what a paused recorder or an idle player sends).
    pub fn silence(self) -> u8 {
        self.encode(0)
    }
}

const MU_BIAS: i32 = 0x84;
const MU_CLIP: i32 = 32635;

pub fn mulaw_encode(sample: i16) -> u8 {
    let mut s = sample as i32;
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(MU_CLIP) + MU_BIAS;
    let exponent = (31 - (s as u32).leading_zeros() as i32 - 7).clamp(0, 7);
    let mantissa = (s >> (exponent + 3)) & 0x0f;
    !(sign | (exponent << 4) as u8 as i32 | mantissa) as u8
}

pub fn mulaw_decode(byte: u8) -> i16 {
    let b = !byte;
    let sign = b & 0x80;
    let exponent = ((b >> 4) & 0x07) as i32;
    let mantissa = (b & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + MU_BIAS) << exponent) - MU_BIAS;
    if sign != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

pub fn alaw_encode(sample: i16) -> u8 {
    let s = sample as i32;
    let (sign, mag) = if s >= 0 {
        (0x80, s >> 3)
    } else {
        (0x00, (-s - 1) >> 3)
    };
    let mag = mag.min(0x0fff);
    let byte = if mag < 32 {
        mag >> 1
    } else {
        let exponent = 31 - (mag as u32).leading_zeros() as i32 - 4;
        (exponent << 4) | ((mag >> exponent) & 0x0f)
    };
    ((byte | sign) ^ 0x55) as u8
}

pub fn alaw_decode(byte: u8) -> i16 {
    let b = (byte ^ 0x55) as i32;
    let sign = b & 0x80;
    let exponent = (b >> 4) & 0x07;
    let mantissa = b & 0x0f;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    if sign != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_stay_within_the_quantisation_step() {
        for law in [Law::Mu, Law::A] {
            for s in (-32768i32..32768).step_by(7) {
                let s = s as i16;
                let back = law.decode(law.encode(s)) as i32;
                let err = (back - s as i32).abs();
                // Logarithmic steps: at most ~1/16 of the magnitude (+ the smallest step).
                assert!(err <= (s as i32).abs() / 16 + 64, "{law:?} {s} -> {back}");
            }
        }
    }

    #[test]
    fn known_code_points() {
        assert_eq!(mulaw_encode(0), 0xff);
        assert_eq!(alaw_encode(0), 0xd5);
        assert_eq!(mulaw_decode(0xff), 0);
        assert_eq!(alaw_decode(0xd5), 8);
        // Every code decodes and re-encodes to itself (both laws are bijective on codes).
        for b in 0..=255u8 {
            assert_eq!(alaw_encode(alaw_decode(b)), b, "A-law {b:#x}");
            let m = mulaw_encode(mulaw_decode(b));
            // 0x7f and 0xff are both zero in mu-law.
            assert!(
                m == b || (b == 0x7f && m == 0xff),
                "mu-law {b:#x} -> {m:#x}"
            );
        }
    }
}
