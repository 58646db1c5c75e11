//! SRTP on one leg (RFC 3711), keyed by SDES (RFC 4568): the key each side
//! sends in its SDP's `a=crypto` line encrypts what that side sends. The
//! relay decrypts what a leg's peer sends with the peer's key and encrypts
//! what it sends that peer with its own, so each leg is encrypted or plain
//! on its own and the recorder, the DTMF detector and the prompts always
//! see plain RTP. The cipher is webrtc-rs's `webrtc-srtp` (AES-CM with
//! HMAC-SHA1, per-SSRC rollover counters and replay windows).

use webrtc_srtp::context::Context;
use webrtc_srtp::protection_profile::ProtectionProfile;

#[derive(Debug, thiserror::Error)]
pub enum SrtpError {
    #[error("no randomness for an SRTP key: {0}")]
    Random(#[from] ctihost_ground::random::NoRandomness),
    #[error("SRTP context: {0}")]
    Context(String),
    /// A packet that fails its authentication tag, is replayed or is no RTP.
    #[error("SRTP packet refused: {0}")]
    Packet(String),
}

/// The crypto suites the host takes and offers (the first is offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    AesCm128HmacSha1_80,
    AesCm128HmacSha1_32,
}

impl Suite {
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    fn named(name: &str) -> Option<Self> {
        [Suite::AesCm128HmacSha1_80, Suite::AesCm128HmacSha1_32]
            .into_iter()
            .find(|s| s.name() == name)
    }

    fn profile(self) -> ProtectionProfile {
        match self {
            Suite::AesCm128HmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
            Suite::AesCm128HmacSha1_32 => ProtectionProfile::Aes128CmHmacSha1_32,
        }
    }
}

/// AES-128 master key (16 bytes) then master salt (14), as `inline:` carries them.
const KEY_LEN: usize = 16;
const SALT_LEN: usize = 14;

/// One `a=crypto` line's keying: its tag, suite and master key and salt.
/// Its `Debug` never shows the key (keys are never logged).
#[derive(Clone, PartialEq, Eq)]
pub struct SdesKey {
    pub tag: u32,
    pub suite: Suite,
    material: [u8; KEY_LEN + SALT_LEN],
}

impl std::fmt::Debug for SdesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SdesKey")
            .field("tag", &self.tag)
            .field("suite", &self.suite)
            .field("material", &"<redacted>")
            .finish()
    }
}

impl SdesKey {
    /// A fresh random key for `suite` under `tag`.
    pub fn generate(tag: u32, suite: Suite) -> Result<Self, SrtpError> {
        Ok(Self {
            tag,
            suite,
            material: ctihost_ground::random::bytes::<{ KEY_LEN + SALT_LEN }>()?,
        })
    }

    /// The value of an `a=crypto:` attribute (`1 AES_CM_128_HMAC_SHA1_80
    /// inline:KEY[|lifetime]`), if its suite is one the host takes. Keys
    /// with an MKI, several keys or session parameters are not taken.
    pub fn parse(attribute: &str) -> Option<Self> {
        use base64::Engine;
        let mut words = attribute.split_whitespace();
        let tag = words.next()?.parse::<u32>().ok()?;
        let suite = Suite::named(words.next()?)?;
        let params = words.next()?;
        if words.next().is_some() || params.contains(';') {
            return None;
        }
        let inline = params.strip_prefix("inline:")?;
        let mut parts = inline.split('|');
        let key = parts.next()?;
        // A lifetime may follow; an MKI (`n:len`) is not supported.
        if parts.any(|p| p.contains(':')) {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
        let material: [u8; KEY_LEN + SALT_LEN] = bytes.try_into().ok()?;
        Some(Self {
            tag,
            suite,
            material,
        })
    }

    /// The `a=crypto:` line that gives this key.
    pub fn line(&self) -> String {
        use base64::Engine;
        format!(
            "a=crypto:{} {} inline:{}",
            self.tag,
            self.suite.name(),
            base64::engine::general_purpose::STANDARD.encode(self.material)
        )
    }

    fn context(&self) -> Result<Context, SrtpError> {
        let (key, salt) = self.material.split_at(KEY_LEN);
        Context::new(key, salt, self.suite.profile(), None, None)
            .map_err(|e| SrtpError::Context(e.to_string()))
    }
}

/// Packets a receiving context remembers, for replays (RFC 3711 3.3.2
/// asks for at least 64).
const REPLAY_WINDOW: usize = 128;

/// One leg's SRTP: what its peer sends is decrypted with the peer's key,
/// what the host sends it is encrypted with the host's.
pub struct LegCrypto {
    inbound: Context,
    outbound: Context,
}

impl LegCrypto {
    pub fn new(theirs: &SdesKey, ours: &SdesKey) -> Result<Self, SrtpError> {
        let (key, salt) = theirs.material.split_at(KEY_LEN);
        let inbound = Context::new(
            key,
            salt,
            theirs.suite.profile(),
            Some(webrtc_srtp::option::srtp_replay_protection(REPLAY_WINDOW)),
            None,
        )
        .map_err(|e| SrtpError::Context(e.to_string()))?;
        Ok(Self {
            inbound,
            outbound: ours.context()?,
        })
    }

    /// The plain RTP packet inside an SRTP one from the peer.
    pub fn unprotect(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.inbound
            .decrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Packet(e.to_string()))
    }

    /// An RTP packet encrypted for the peer.
    pub fn protect(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        self.outbound
            .encrypt_rtp(packet)
            .map(|b| b.to_vec())
            .map_err(|e| SrtpError::Packet(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
