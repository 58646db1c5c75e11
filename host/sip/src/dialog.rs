//! One side of a SIP dialog (RFC 3261 section 12): the Call-ID, both
//! parties with their tags, our CSeq, the remote target and the route set,
//! and the in-dialog requests built from them. Modelled on ezk's
//! `sip-ua` dialog: the dialog builds requests, the B2BUA says which.
//!
//! The route set is what keeps a record-routing proxy (Kamailio in front
//! of the host) on the path of every later request of the call: without
//! it a BYE would go straight to the peer's Contact and the proxy, which
//! keeps the call's state, would never see it.

use std::net::SocketAddr;

use super::syntax::parse_name_addr_list;
use super::wire::{RawMessage, addr_uri, param, uri_socket_addr};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    call_id: String,
    /// Our side as our requests' From says it, with our tag.
    local: String,
    /// The peer's side as our requests' To says it, with its tag.
    remote: String,
    /// The CSeq of our last request in the dialog.
    local_cseq: u32,
    /// The peer's Contact URI: where requests are addressed.
    remote_target: String,
    /// Record-Route URIs, in the order our requests visit them.
    route_set: Vec<String>,
}

/// The URIs of every Record-Route value of `msg`, top first (a malformed
/// value is skipped: it could not be routed to anyway).
fn record_routes(msg: &RawMessage) -> Vec<String> {
    msg.all("Record-Route")
        .filter_map(|v| parse_name_addr_list(v).ok())
        .flatten()
        .map(|na| na.uri.to_owned())
        .collect()
}

fn cseq_number(msg: &RawMessage) -> u32 {
    msg.header("CSeq")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

impl Dialog {
    /// We answered `invite` with `local_tag` (the UAS side, RFC 3261
    /// 12.1.1): the route set is the request's Record-Route in order, the
    /// remote target its Contact.
    pub fn from_request(invite: &RawMessage, local_tag: &str) -> Self {
        let to = invite.header("To").unwrap_or("");
        Self {
            call_id: invite.header("Call-ID").unwrap_or("").to_owned(),
            local: format!("{to};tag={local_tag}"),
            remote: invite.header("From").unwrap_or("").to_owned(),
            local_cseq: 0,
            remote_target: invite
                .header("Contact")
                .map(addr_uri)
                .or_else(|| invite.header("From").map(addr_uri))
                .unwrap_or("")
                .to_owned(),
            route_set: record_routes(invite),
        }
    }

    /// `response` answered our `request` (the UAC side, 12.1.2): the route
    /// set is the response's Record-Route in reverse, the remote target its
    /// Contact.
    pub fn from_response(request: &RawMessage, response: &RawMessage) -> Self {
        let mut route_set = record_routes(response);
        route_set.reverse();
        Self {
            call_id: request.header("Call-ID").unwrap_or("").to_owned(),
            local: request.header("From").unwrap_or("").to_owned(),
            remote: response
                .header("To")
                .or_else(|| request.header("To"))
                .unwrap_or("")
                .to_owned(),
            local_cseq: cseq_number(request),
            remote_target: response
                .header("Contact")
                .map(addr_uri)
                .or_else(|| request.uri())
                .unwrap_or("")
                .to_owned(),
            route_set,
        }
    }

    /// A target refresh (a re-INVITE from the peer, or the 2xx of ours):
    /// its Contact is where requests go from now on (12.2.1.2, 12.2.2).
    pub fn refresh_target(&mut self, msg: &RawMessage) {
        if let Some(contact) = msg.header("Contact") {
            self.remote_target = addr_uri(contact).to_owned();
        }
    }

    /// The CSeq of a new request (not for ACK or CANCEL, which repeat the
    /// INVITE's).
    pub fn next_cseq(&mut self) -> u32 {
        self.local_cseq += 1;
        self.local_cseq
    }

    pub fn cseq(&self) -> u32 {
        self.local_cseq
    }

    #[cfg(test)]
    fn remote_tag(&self) -> Option<&str> {
        param(&self.remote, "tag")
    }

    #[cfg(test)]
    fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// Where the request goes first when the route set names an address
    /// (None: to the peer the dialog was made with).
    pub fn next_hop(&self) -> Option<SocketAddr> {
        self.route_set.first().and_then(|r| uri_socket_addr(r))
    }

    /// An in-dialog request (12.2.1.1). With a loose-routing first hop
    /// (`;lr`) the Request-URI is the remote target and the Route headers
    /// the route set; with a strict router the first route becomes the
    /// Request-URI and the remote target the last Route.
    pub fn request(
        &self,
        method: &str,
        cseq: u32,
        via: &str,
        headers: &[(&str, String)],
        body: &[u8],
        content_type: Option<&str>,
    ) -> Vec<u8> {
        let loose = self
            .route_set
            .first()
            .is_none_or(|r| param(r, "lr").is_some());
        let (uri, routes): (&str, Vec<&str>) = if loose {
            (
                &self.remote_target,
                self.route_set.iter().map(String::as_str).collect(),
            )
        } else {
            let mut rest: Vec<&str> = self.route_set[1..].iter().map(String::as_str).collect();
            rest.push(&self.remote_target);
            (&self.route_set[0], rest)
        };
        let mut head = format!("{method} {uri} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n");
        for r in routes {
            head.push_str(&format!("Route: <{r}>\r\n"));
        }
        head.push_str(&format!(
            "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
            self.local, self.remote, self.call_id
        ));
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(t) = content_type {
            head.push_str(&format!("Content-Type: {t}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> RawMessage {
        let crlf = s.replace("\r\n", "\n").replace('\n', "\r\n");
        RawMessage::parse(crlf.as_bytes()).expect("parses")
    }

    const INVITE: &str = "INVITE sip:95588@10.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKp2
Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKc1
Record-Route: <sip:10.0.0.9:5060;lr;ftag=a1>
Record-Route: <sip:edge.bank.example;lr>, <sip:10.0.0.8;lr>
From: \"Li\" <sip:+8613800000000@carrier>;tag=a1
To: <sip:95588@bank>
Call-ID: c1@carrier
CSeq: 7 INVITE
Contact: <sip:+8613800000000@10.0.0.7:5060;transport=udp>
Content-Length: 0

";

    #[test]
    fn the_uas_side_routes_through_every_record_route_in_order() {
        let mut d = Dialog::from_request(&parse(INVITE), "h1");
        assert_eq!(
            d.route_set(),
            [
                "sip:10.0.0.9:5060;lr;ftag=a1",
                "sip:edge.bank.example;lr",
                "sip:10.0.0.8;lr"
            ]
        );
        assert_eq!(d.next_hop(), "10.0.0.9:5060".parse().ok());
        let cseq = d.next_cseq();
        let bye = parse(&String::from_utf8_lossy(&d.request(
            "BYE",
            cseq,
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb",
            &[],
            &[],
            None,
        )));
        assert_eq!(
            bye.uri(),
            Some("sip:+8613800000000@10.0.0.7:5060;transport=udp")
        );
        assert_eq!(
            bye.all("Route").collect::<Vec<_>>(),
            [
                "<sip:10.0.0.9:5060;lr;ftag=a1>",
                "<sip:edge.bank.example;lr>",
                "<sip:10.0.0.8;lr>"
            ]
        );
        assert_eq!(bye.header("From"), Some("<sip:95588@bank>;tag=h1"));
        assert_eq!(
            bye.header("To"),
            Some("\"Li\" <sip:+8613800000000@carrier>;tag=a1")
        );
        assert_eq!(bye.header("CSeq"), Some("1 BYE"));
        assert_eq!(d.remote_tag(), Some("a1"));
    }

    #[test]
    fn the_uac_side_reverses_the_route_set_and_a_strict_router_takes_the_request_uri() {
        let ours = parse(
            "INVITE sip:1001@10.0.0.50:5062 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKo
From: <sip:caller@10.0.0.1>;tag=o1
To: <sip:1001@10.0.0.50:5062>
Call-ID: leg1
CSeq: 1 INVITE
Content-Length: 0

",
        );
        let ok = parse(
            "SIP/2.0 200 OK
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKo
Record-Route: <sip:10.0.0.30>
Record-Route: <sip:10.0.0.20;lr>
From: <sip:caller@10.0.0.1>;tag=o1
To: <sip:1001@10.0.0.50:5062>;tag=p9
Call-ID: leg1
CSeq: 1 INVITE
Contact: <sip:1001@10.0.0.50:5062>
Content-Length: 0

",
        );
        let mut d = Dialog::from_response(&ours, &ok);
        assert_eq!(d.route_set(), ["sip:10.0.0.20;lr", "sip:10.0.0.30"]);
        assert_eq!(d.next_cseq(), 2, "after the INVITE's CSeq");
        let bye = parse(&String::from_utf8_lossy(&d.request(
            "BYE",
            2,
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb2",
            &[],
            &[],
            None,
        )));
        // Loose first hop: the target stays the Request-URI.
        assert_eq!(bye.uri(), Some("sip:1001@10.0.0.50:5062"));
        assert_eq!(bye.header("To"), Some("<sip:1001@10.0.0.50:5062>;tag=p9"));
        // A strict router first: it is the Request-URI, the target the last Route.
        let mut strict = d.clone();
        strict.route_set.reverse();
        let req = parse(&String::from_utf8_lossy(&strict.request(
            "BYE",
            3,
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKb3",
            &[],
            &[],
            None,
        )));
        assert_eq!(req.uri(), Some("sip:10.0.0.30"));
        assert_eq!(
            req.all("Route").collect::<Vec<_>>(),
            ["<sip:10.0.0.20;lr>", "<sip:1001@10.0.0.50:5062>"]
        );
    }

    #[test]
    fn no_route_set_addresses_the_contact_and_a_refresh_moves_it() {
        let plain = INVITE
            .lines()
            .filter(|l| !l.starts_with("Record-Route"))
            .collect::<Vec<_>>()
            .join("\n")
            + "\n";
        let mut d = Dialog::from_request(&parse(&plain), "h1");
        assert!(d.route_set().is_empty() && d.next_hop().is_none());
        d.refresh_target(&parse(
            "INVITE sip:95588@10.0.0.1 SIP/2.0
Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bKr
From: <sip:+8613800000000@carrier>;tag=a1
To: <sip:95588@bank>;tag=h1
Call-ID: c1@carrier
CSeq: 8 INVITE
Contact: <sip:+8613800000000@10.0.0.77:5080>
Content-Length: 0

",
        ));
        let req = parse(&String::from_utf8_lossy(&d.request(
            "BYE",
            1,
            "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx",
            &[],
            &[],
            None,
        )));
        assert_eq!(req.uri(), Some("sip:+8613800000000@10.0.0.77:5080"));
        assert_eq!(req.all("Route").count(), 0);
    }
}
