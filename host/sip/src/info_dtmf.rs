//! The key a SIP INFO carries during a call: `application/dtmf-relay`
//! (`Signal=5` and `Duration=160` lines) or `application/dtmf` (`5`).
//! Anything but one of 0-9 * # A-D is no key.

/// What an INFO body says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoBody {
    /// One key, upper-cased.
    Digit(char),
    /// A DTMF type without a valid key (400).
    NoDigit,
    /// No Content-Type at all (an INFO used as a keep-alive).
    Empty,
    /// A type the host does not read (415).
    Unsupported,
}

pub fn parse(content_type: Option<&str>, body: &[u8]) -> InfoBody {
    let ctype = content_type
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let body = String::from_utf8_lossy(body);
    let signal = match ctype.as_str() {
        "" => return InfoBody::Empty,
        "application/dtmf-relay" => body.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("signal")
                .then(|| v.trim().to_owned())
        }),
        "application/dtmf" => Some(body.trim().to_owned()),
        _ => return InfoBody::Unsupported,
    };
    let digit = signal.and_then(|d| {
        let mut chars = d.chars();
        let first = chars.next()?;
        let valid =
            chars.next().is_none() && (first.is_ascii_digit() || "*#ABCDabcd".contains(first));
        valid.then(|| first.to_ascii_uppercase())
    });
    digit.map_or(InfoBody::NoDigit, InfoBody::Digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_both_types() {
        let relay = Some("application/dtmf-relay");
        assert_eq!(
            parse(relay, b"Signal=5\r\nDuration=160\r\n"),
            InfoBody::Digit('5')
        );
        assert_eq!(parse(relay, b"signal = d\r\n"), InfoBody::Digit('D'));
        assert_eq!(parse(relay, b"Signal=55\r\n"), InfoBody::NoDigit);
        assert_eq!(parse(relay, b"Duration=160\r\n"), InfoBody::NoDigit);
        assert_eq!(parse(Some("application/dtmf"), b"#"), InfoBody::Digit('#'));
        assert_eq!(parse(Some("text/plain"), b"5"), InfoBody::Unsupported);
        assert_eq!(parse(None, b""), InfoBody::Empty);
        assert_eq!(parse(relay, &[0xff, 0xfe, b'=']), InfoBody::NoDigit);
    }
}
