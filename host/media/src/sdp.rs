//! The little of SDP (RFC 4566) the relay needs: where a side wants its audio,
//! and the same offer or answer with the host's address and relay port in it,
//! keeping only the codecs the host carries (G.711 mu-law and A-law, RFC 4733
//! telephone-event).

use std::net::{IpAddr, SocketAddr};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SdpError {
    #[error("no audio stream in the SDP")]
    NoAudio,
    #[error("no codec the host carries (PCMU, PCMA) in the SDP's audio stream")]
    NoCodec,
    /// RFC 4566 5.7: every stream needs a connection address.
    #[error("no connection address (c=) for the SDP's audio stream")]
    NoConnection,
    #[error(
        "SRTP offered (RTP/SAVP) without a crypto suite the host takes (AES_CM_128_HMAC_SHA1_80 or _32, no MKI)"
    )]
    NoCryptoSuite,
}

fn lines(sdp: &[u8]) -> impl Iterator<Item = &str> {
    std::str::from_utf8(sdp)
        .unwrap_or("")
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty())
}

fn connection_ip(line: &str) -> Option<IpAddr> {
    // c=IN IP4 192.0.2.1 (an optional /ttl after multicast addresses)
    let addr = line.strip_prefix("c=")?.split_whitespace().nth(2)?;
    addr.split('/').next()?.parse().ok()
}

/// Where the side that wrote `sdp` receives audio: the audio stream's
/// connection address (or the session's) and port. None: no audio, port 0
/// (stream refused), or no address.
pub fn audio_target(sdp: &[u8]) -> Option<SocketAddr> {
    let (mut session_ip, mut media_ip, mut port, mut in_audio) = (None, None, None, false);
    for l in lines(sdp) {
        if let Some(m) = l.strip_prefix("m=") {
            in_audio = m.starts_with("audio ") && port.is_none();
            if in_audio {
                port = m
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.parse::<u16>().ok());
            }
        } else if l.starts_with("c=") {
            if port.is_none() && !in_audio {
                session_ip = connection_ip(l);
            } else if in_audio {
                media_ip = connection_ip(l);
            }
        }
    }
    let port = port.filter(|p| *p != 0)?;
    Some(SocketAddr::new(media_ip.or(session_ip)?, port))
}

/// Payload types the host relays: the first of 0 PCMU and 8 PCMA the side
/// lists (one codec, so the caller, the host's prompts and the agent's phone
/// all use the same law and nothing needs transcoding), and dynamic types
/// whose rtpmap names telephone-event/8000.
fn carried(sdp: &[u8]) -> Vec<String> {
    let mut dynamic_events = Vec::new();
    for l in lines(sdp) {
        if let Some(map) = l.strip_prefix("a=rtpmap:") {
            let mut it = map.split_whitespace();
            if let (Some(pt), Some(enc)) = (it.next(), it.next())
                && enc.eq_ignore_ascii_case("telephone-event/8000")
            {
                dynamic_events.push(pt.to_owned());
            }
        }
    }
    let law = audio_profile(sdp).law.payload_type().to_string();
    let mut keep = vec![law];
    keep.extend(dynamic_events);
    keep
}

/// `sdp` with the host's `relay` address in its origin, connection and audio
/// lines and only the carried codecs in its audio stream (other streams are
/// refused with port 0, as RFC 3264 asks).
pub fn rewrite(sdp: &[u8], relay: SocketAddr) -> Result<Vec<u8>, SdpError> {
    let keep = carried(sdp);
    let ip = relay.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::new();
    let mut audio_seen = false;
    let mut in_audio = false;
    let mut codecs_left = 0;
    // A c= line before the first m= covers every stream; else the audio
    // stream needs its own.
    let (mut session_c, mut audio_c, mut before_media) = (false, false, true);
    for l in lines(sdp) {
        if l.starts_with("m=") {
            before_media = false;
        } else if l
            .strip_prefix("c=")
            .is_some_and(|c| c.split_whitespace().count() >= 3)
        {
            if before_media {
                session_c = true;
            } else if in_audio {
                audio_c = true;
            }
        }
        let line = if let Some(m) = l.strip_prefix("m=") {
            let parts: Vec<&str> = m.split_whitespace().collect();
            in_audio = parts.first() == Some(&"audio") && !audio_seen;
            if in_audio {
                audio_seen = true;
                let formats: Vec<&str> = parts
                    .iter()
                    .skip(3)
                    .copied()
                    .filter(|f| keep.iter().any(|k| k == f))
                    .collect();
                codecs_left = formats.iter().filter(|f| **f == "0" || **f == "8").count();
                format!(
                    "m=audio {} {} {}",
                    relay.port(),
                    parts.get(2).copied().unwrap_or("RTP/AVP"),
                    formats.join(" ")
                )
            } else {
                let mut p = parts.clone();
                if p.len() > 1 {
                    p[1] = "0";
                }
                format!("m={}", p.join(" "))
            }
        } else if l.starts_with("c=") {
            format!("c=IN {family} {ip}")
        } else if let Some(o) = l.strip_prefix("o=") {
            let mut p: Vec<String> = o.split_whitespace().map(str::to_owned).collect();
            if p.len() == 6 {
                p[4] = family.to_owned();
                p[5] = ip.to_string();
            }
            format!("o={}", p.join(" "))
        } else if in_audio
            && let Some(pt) = l
                .strip_prefix("a=rtpmap:")
                .or_else(|| l.strip_prefix("a=fmtp:"))
                .and_then(|r| r.split_whitespace().next())
        {
            if !keep.iter().any(|k| k == pt) {
                continue;
            }
            l.to_owned()
        } else {
            l.to_owned()
        };
        out.push_str(&line);
        out.push_str("\r\n");
    }
    if !audio_seen {
        return Err(SdpError::NoAudio);
    }
    if codecs_left == 0 {
        return Err(SdpError::NoCodec);
    }
    if !session_c && !audio_c {
        return Err(SdpError::NoConnection);
    }
    Ok(out.into_bytes())
}

/// The audio profile a side's SDP sets: the G.711 law the host sends it
/// (the first of PCMU/PCMA it lists) and its telephone-event payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioProfile {
    pub law: super::g711::Law,
    pub dtmf_payload_type: Option<u8>,
}

pub fn audio_profile(sdp: &[u8]) -> AudioProfile {
    let mut law = None;
    let mut dtmf = None;
    let mut in_audio = false;
    for l in lines(sdp) {
        if let Some(m) = l.strip_prefix("m=") {
            in_audio = m.starts_with("audio ") && law.is_none();
            if in_audio {
                law = m
                    .split_whitespace()
                    .skip(3)
                    .filter_map(|f| f.parse::<u8>().ok())
                    .find_map(super::g711::Law::from_payload_type);
            }
        } else if in_audio && let Some(map) = l.strip_prefix("a=rtpmap:") {
            let mut it = map.split_whitespace();
            if let (Some(pt), Some(enc)) = (it.next(), it.next())
                && enc.eq_ignore_ascii_case("telephone-event/8000")
            {
                dtmf = pt.parse().ok();
            }
        }
    }
    AudioProfile {
        law: law.unwrap_or(super::g711::Law::Mu),
        dtmf_payload_type: dtmf,
    }
}

/// The audio stream's transport profile (`RTP/AVP`, `RTP/SAVP`, ...).
fn audio_transport(sdp: &[u8]) -> Option<&str> {
    lines(sdp).find_map(|l| {
        let m = l.strip_prefix("m=audio ")?;
        m.split_whitespace().nth(1)
    })
}

/// The SDES key a side's SDP gives for its audio (RFC 4568): None for
/// plain RTP (`RTP/AVP`; `a=crypto` there is ignored), the first
/// `a=crypto` line the host takes for `RTP/SAVP`; Err when SRTP is asked
/// for and no line is one the host takes.
pub fn sdes(sdp: &[u8]) -> Result<Option<crate::srtp::SdesKey>, SdpError> {
    let Some(profile) = audio_transport(sdp) else {
        return Ok(None);
    };
    if !profile.eq_ignore_ascii_case("RTP/SAVP") && !profile.eq_ignore_ascii_case("RTP/SAVPF") {
        return Ok(None);
    }
    let mut in_audio = false;
    let mut seen_audio = false;
    for l in lines(sdp) {
        if let Some(m) = l.strip_prefix("m=") {
            in_audio = m.starts_with("audio ") && !seen_audio;
            seen_audio |= in_audio;
        } else if in_audio
            && let Some(key) = l
                .strip_prefix("a=crypto:")
                .and_then(crate::srtp::SdesKey::parse)
        {
            return Ok(Some(key));
        }
    }
    Err(SdpError::NoCryptoSuite)
}

/// `sdp` with its audio stream made SRTP with `key` (`RTP/SAVP` and that
/// one `a=crypto` line) or, with None, plain (`RTP/AVP`, no crypto lines).
pub fn with_sdes(sdp: &[u8], key: Option<&crate::srtp::SdesKey>) -> Vec<u8> {
    let mut out = String::new();
    let (mut in_audio, mut seen_audio) = (false, false);
    let close = |out: &mut String, in_audio: bool| {
        if in_audio && let Some(k) = key {
            out.push_str(&k.line());
            out.push_str("\r\n");
        }
    };
    for l in lines(sdp) {
        if let Some(m) = l.strip_prefix("m=") {
            close(&mut out, in_audio);
            in_audio = m.starts_with("audio ") && !seen_audio;
            seen_audio |= in_audio;
            if in_audio {
                let mut parts: Vec<&str> = m.split_whitespace().collect();
                if parts.len() > 2 {
                    parts[2] = if key.is_some() { "RTP/SAVP" } else { "RTP/AVP" };
                }
                out.push_str(&format!("m={}\r\n", parts.join(" ")));
                continue;
            }
        } else if in_audio && l.starts_with("a=crypto:") {
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    close(&mut out, in_audio);
    out.into_bytes()
}

/// The host's own offer at `relay` (for a caller or phone that sent none: a
/// late offer): both G.711 laws and telephone-event.
pub fn host_offer(relay: SocketAddr) -> Vec<u8> {
    let ip = relay.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let session = ctihost_ground::random::bytes::<4>()
        .map(u32::from_le_bytes)
        .unwrap_or(1);
    format!(
        "v=0\r\no=ctihost {session} 1 IN {family} {ip}\r\ns=ctihost\r\nc=IN {family} {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n",
        port = relay.port()
    )
    .into_bytes()
}

/// The direction an answer must carry for an offer's (hold: an offer of
/// sendonly is answered recvonly, inactive with inactive).
pub fn answer_direction(offer: &[u8]) -> &'static str {
    let mut dir = "sendrecv";
    for l in lines(offer) {
        match l {
            "a=sendonly" => dir = "recvonly",
            "a=recvonly" => dir = "sendonly",
            "a=inactive" => dir = "inactive",
            _ => {}
        }
    }
    dir
}

/// `sdp` with its direction attributes replaced by `direction`.
pub fn with_direction(sdp: &[u8], direction: &str) -> Vec<u8> {
    let mut out = String::new();
    let mut placed = false;
    for l in lines(sdp) {
        if matches!(l, "a=sendrecv" | "a=sendonly" | "a=recvonly" | "a=inactive") {
            if !placed {
                out.push_str(&format!("a={direction}\r\n"));
                placed = true;
            }
            continue;
        }
        out.push_str(l);
        out.push_str("\r\n");
    }
    if !placed && direction != "sendrecv" {
        out.push_str(&format!("a={direction}\r\n"));
    }
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=caller 1 2 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        m=audio 4000 RTP/AVP 18 0 8 101\r\na=rtpmap:18 G729/8000\r\na=fmtp:18 annexb=no\r\n\
        a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-15\r\na=sendrecv\r\nm=video 5000 RTP/AVP 96\r\n";

    #[test]
    fn the_audio_target_is_the_media_or_session_address_and_port() {
        assert_eq!(
            audio_target(OFFER.as_bytes()),
            Some("10.0.0.5:4000".parse().unwrap())
        );
        let media_level = "v=0\nc=IN IP4 10.0.0.5\nm=audio 4002 RTP/AVP 0\nc=IN IP4 10.0.0.9\n";
        assert_eq!(
            audio_target(media_level.as_bytes()),
            Some("10.0.0.9:4002".parse().unwrap())
        );
        assert_eq!(
            audio_target(b"v=0\nc=IN IP4 10.0.0.5\nm=audio 0 RTP/AVP 0\n"),
            None
        );
        assert_eq!(audio_target(b"garbage"), None);
        assert_eq!(
            audio_target(b"v=0\nc=IN IP6 ::1\nm=audio 4000 RTP/AVP 0\n"),
            Some("[::1]:4000".parse().unwrap())
        );
    }

    #[test]
    fn rewrite_puts_the_relay_in_and_keeps_only_carried_codecs() {
        let out = rewrite(OFFER.as_bytes(), "192.0.2.1:20000".parse().unwrap()).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("o=caller 1 2 IN IP4 192.0.2.1\r\n"), "{out}");
        assert!(out.contains("c=IN IP4 192.0.2.1\r\n"), "{out}");
        assert!(out.contains("m=audio 20000 RTP/AVP 0 101\r\n"), "{out}");
        assert!(!out.contains("PCMA"), "one codec: {out}");
        assert!(!out.contains("G729") && !out.contains("annexb"), "{out}");
        assert!(out.contains("a=fmtp:101 0-15\r\n"), "{out}");
        assert!(out.contains("m=video 0 RTP/AVP 96\r\n"), "{out}");
        assert_eq!(
            audio_target(out.as_bytes()),
            Some("192.0.2.1:20000".parse().unwrap())
        );
    }

    #[test]
    fn an_offer_without_g711_or_audio_is_refused() {
        let g729 = "v=0\nc=IN IP4 10.0.0.5\nm=audio 4000 RTP/AVP 18\na=rtpmap:18 G729/8000\n";
        let relay = "192.0.2.1:20000".parse().unwrap();
        assert_eq!(rewrite(g729.as_bytes(), relay), Err(SdpError::NoCodec));
        assert_eq!(
            rewrite(b"v=0\nm=video 5000 RTP/AVP 96\n", relay),
            Err(SdpError::NoAudio)
        );
        // Found by the sdp fuzz target: no c= anywhere gave phones an
        // offer without a connection address.
        let no_c = "v=0\no=- 1 1 IN IP4 10.0.0.5\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 0\n";
        assert_eq!(rewrite(no_c.as_bytes(), relay), Err(SdpError::NoConnection));
        let video_c = "v=0\nm=audio 4000 RTP/AVP 0\nm=video 5000 RTP/AVP 96\nc=IN IP4 10.0.0.5\n";
        assert_eq!(
            rewrite(video_c.as_bytes(), relay),
            Err(SdpError::NoConnection)
        );
        let audio_c = "v=0\nm=audio 4000 RTP/AVP 0\nc=IN IP4 10.0.0.5\n";
        assert!(rewrite(audio_c.as_bytes(), relay).is_ok());
    }

    #[test]
    fn the_profile_and_hold_direction_come_from_the_sdp() {
        let p = audio_profile(OFFER.as_bytes());
        assert_eq!(p.law, crate::g711::Law::Mu);
        assert_eq!(p.dtmf_payload_type, Some(101));
        let alaw = audio_profile(b"v=0\nm=audio 4000 RTP/AVP 8 0\n");
        assert_eq!(
            (alaw.law, alaw.dtmf_payload_type),
            (crate::g711::Law::A, None)
        );
        assert_eq!(answer_direction(b"v=0\na=sendonly\n"), "recvonly");
        assert_eq!(answer_direction(OFFER.as_bytes()), "sendrecv");
        let held = String::from_utf8(with_direction(OFFER.as_bytes(), "recvonly")).unwrap();
        assert!(
            held.contains("a=recvonly\r\n") && !held.contains("sendrecv"),
            "{held}"
        );
    }

    const SAVP: &[u8] = b"v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
        m=audio 4000 RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=crypto:1 F8_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n\
        a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20\r\n\
        m=video 0 RTP/AVP 31\r\n";

    #[test]
    fn the_first_crypto_line_the_host_takes_keys_an_savp_stream() {
        let k = sdes(SAVP).unwrap().unwrap();
        assert_eq!(k.tag, 2);
        let plain = String::from_utf8(SAVP.to_vec())
            .unwrap()
            .replace("RTP/SAVP", "RTP/AVP");
        assert_eq!(sdes(plain.as_bytes()), Ok(None), "crypto in AVP is ignored");
        let unknown = String::from_utf8(SAVP.to_vec())
            .unwrap()
            .replace("a=crypto:2 AES_CM", "a=crypto:2 AES_XX");
        assert_eq!(sdes(unknown.as_bytes()), Err(SdpError::NoCryptoSuite));
        assert_eq!(sdes(b"v=0\r\n"), Ok(None));
    }

    #[test]
    fn with_sdes_puts_one_crypto_line_in_the_audio_stream_or_none() {
        let ours =
            crate::srtp::SdesKey::generate(2, crate::srtp::Suite::AesCm128HmacSha1_80).unwrap();
        let secured = String::from_utf8(with_sdes(SAVP, Some(&ours))).unwrap();
        assert_eq!(secured.matches("a=crypto:").count(), 1, "{secured}");
        assert!(secured.contains(&ours.line()), "{secured}");
        let audio = secured.split("m=video").next().unwrap();
        assert!(audio.contains("m=audio 4000 RTP/SAVP 0 101") && audio.contains(&ours.line()));
        assert_eq!(sdes(secured.as_bytes()).unwrap(), Some(ours));
        let plain = String::from_utf8(with_sdes(SAVP, None)).unwrap();
        assert!(!plain.contains("a=crypto") && plain.contains("m=audio 4000 RTP/AVP 0 101"));
        assert!(plain.contains("m=video 0 RTP/AVP 31"), "{plain}");
    }

    #[test]
    fn the_host_offer_is_g711_with_events_at_the_relay() {
        let o = host_offer("192.0.2.1:20000".parse().unwrap());
        assert_eq!(audio_target(&o), Some("192.0.2.1:20000".parse().unwrap()));
        let p = audio_profile(&o);
        assert_eq!(
            (p.law, p.dtmf_payload_type),
            (crate::g711::Law::A, Some(101))
        );
    }
}
