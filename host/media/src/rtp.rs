//! Just enough of RTP (RFC 3550) for the host's own streams: reading the
//! payload type and payload of what arrives, building the packets the player
//! sends, and RFC 4733 telephone-events (DTMF).

/// A received RTP packet, borrowed from the socket buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub payload_type: u8,
    pub timestamp: u32,
    pub payload: &'a [u8],
}

/// Parse an RTP packet; None for anything else (RTCP, STUN, garbage).
pub fn parse(buf: &[u8]) -> Option<Packet<'_>> {
    if buf.len() < 12 || buf[0] >> 6 != 2 {
        return None;
    }
    let payload_type = buf[1] & 0x7f;
    // 72-76 would be RTCP sender/receiver reports multiplexed on the port.
    if (72..=76).contains(&payload_type) {
        return None;
    }
    let csrc = (buf[0] & 0x0f) as usize;
    let mut start = 12 + 4 * csrc;
    if buf[0] & 0x10 != 0 {
        let ext = buf.get(start + 2..start + 4)?;
        start += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
    }
    let mut end = buf.len();
    if buf[0] & 0x20 != 0 {
        end = end.checked_sub(*buf.last()? as usize)?;
    }
    let payload = buf.get(start..end)?;
    let timestamp = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    Some(Packet {
        payload_type,
        timestamp,
        payload,
    })
}

/// The host's outgoing stream towards one side: its own SSRC, sequence and clock.
pub struct Stream {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    marker: bool,
}

impl Stream {
    pub fn new() -> Self {
        let r = ctihost_ground::random::bytes::<10>().unwrap_or([7; 10]);
        Self {
            ssrc: u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
            seq: u16::from_le_bytes([r[4], r[5]]),
            timestamp: u32::from_le_bytes([r[6], r[7], r[8], r[9]]),
            marker: true,
        }
    }

    /// The next packet of 20 ms (`payload` = 160 G.711 bytes) into `out`.
    pub fn packet(&mut self, payload_type: u8, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.push(0x80);
        out.push(payload_type | if self.marker { 0x80 } else { 0 });
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(payload);
        self.marker = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(payload.len() as u32);
    }

    /// After a pause in sending, the next packet starts a talkspurt.
    pub fn mark(&mut self) {
        self.marker = true;
    }
}

impl Default for Stream {
    fn default() -> Self {
        Self::new()
    }
}

/// An RFC 4733 telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub digit: char,
    pub end: bool,
}

pub fn telephone_event(payload: &[u8]) -> Option<TelephoneEvent> {
    if payload.len() < 4 {
        return None;
    }
    Some(TelephoneEvent {
        digit: event_digit(payload[0])?,
        end: payload[1] & 0x80 != 0,
    })
}

/// DTMF event codes 0-15 (RFC 4733 section 3.2).
pub fn event_digit(code: u8) -> Option<char> {
    Some(match code {
        0..=9 => (b'0' + code) as char,
        10 => '*',
        11 => '#',
        12..=15 => (b'A' + code - 12) as char,
        _ => return None,
    })
}

/// Detects key presses in a stream of telephone-events: each press arrives in
/// several packets (and its end three times), all with the press's timestamp.
#[derive(Default)]
pub struct DtmfDetector {
    last: Option<(u32, char, bool)>,
}

impl DtmfDetector {
    /// A newly pressed key, reported on its first packet (so it can barge in).
    pub fn feed(&mut self, timestamp: u32, ev: TelephoneEvent) -> Option<char> {
        let new = match self.last {
            None => true,
            Some((ts, digit, ended)) => {
                // Same timestamp after an end: a repeated key from a sender
                // that reuses timestamps (pcap replays do).
                ts != timestamp || digit != ev.digit || (ended && !ev.end)
            }
        };
        let ended = ev.end || (!new && self.last.is_some_and(|l| l.2));
        self.last = Some((timestamp, ev.digit, ended));
        new.then_some(ev.digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0x80, pt, 0, 1];
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 9]);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn parses_header_and_payload() {
        let b = rtp(8, 1234, &[1, 2, 3]);
        let p = parse(&b).expect("rtp");
        assert_eq!(
            (p.payload_type, p.timestamp, p.payload),
            (8, 1234, &[1u8, 2, 3][..])
        );
        assert!(parse(&[0u8; 5]).is_none());
        assert!(parse(&rtp(72 | 0x80, 0, &[])).is_none(), "RTCP is not RTP");
        // Padding longer than the packet is refused, not a panic.
        let mut bad = rtp(0, 0, &[1]);
        bad[0] |= 0x20;
        *bad.last_mut().expect("byte") = 200;
        assert!(parse(&bad).is_none());
    }

    #[test]
    fn one_press_is_one_digit_even_when_repeated_with_the_same_timestamp() {
        let mut d = DtmfDetector::default();
        let ev = |end| TelephoneEvent { digit: '1', end };
        let mut got = vec![];
        for (ts, end) in [(10, false), (10, false), (10, true), (10, true), (10, true)] {
            got.extend(d.feed(ts, ev(end)));
        }
        // The same press replayed (same timestamp), then a new one.
        for (ts, end) in [(10, false), (10, true), (10, true), (90, false), (90, true)] {
            got.extend(d.feed(ts, ev(end)));
        }
        assert_eq!(got, vec!['1', '1', '1']);
    }

    #[test]
    fn built_packets_parse_back() {
        let mut s = Stream::new();
        let mut out = vec![];
        s.packet(0, &[0xff; 160], &mut out);
        let p = parse(&out).expect("rtp");
        assert_eq!(p.payload_type, 0);
        assert_eq!(p.payload.len(), 160);
        assert_eq!(
            telephone_event(&[11, 0x80, 0, 0]),
            Some(TelephoneEvent {
                digit: '#',
                end: true
            })
        );
    }
}
