//! The bytes on the wire: TPKT (RFC 1006), COTP (ISO 8073 class 0) and S7comm PDUs.
//! Encoding and decoding only, no I/O, so that every decoder can be fuzzed.
//!
//! ```text
//! TPKT   03 00 LL LL                      version 3, length including these 4 bytes
//! COTP   CR: 11 E0 0000 0001 00 C0 01 0A C1 02 <local TSAP> C2 02 <remote TSAP>
//!        CC: LI D0 ...      DT: 02 F0 80 (last data unit)      DR: LI 80 ...
//! S7     32 ROSCTR 0000 REF PARLEN DATALEN [ERRCLASS ERRCODE for acks] PARAM DATA
//!        setup communication:  F0 00 0001 0001 <PDU size>
//!        read var:             04 <n> then n × 12 0A 10 02 <bytes> <DB> <area> <bit address:3>
//!        read var answer data: n × <return code> <transport size> <length> <data> [fill byte]
//! ```
//!
//! Every decoder checks lengths before it slices and returns a [`FrameError`] for what
//! does not fit; nothing here panics on input.

/// The fixed TPKT header size.
pub const TPKT_HEADER: usize = 4;
/// The largest TPKT packet: its length field is 16 bits.
pub const MAX_TPKT: usize = 65_535;
/// S7comm's protocol id, the first byte of every PDU.
const S7_PROTOCOL: u8 = 0x32;
/// ROSCTR of a request.
const JOB: u8 = 0x01;
/// ROSCTR of an acknowledgement without data (errors).
const ACK: u8 = 0x02;
/// ROSCTR of an acknowledgement with data.
const ACK_DATA: u8 = 0x03;
/// The function codes.
const SETUP_COMMUNICATION: u8 = 0xF0;
const READ_VAR: u8 = 0x04;
/// A job's header: protocol, ROSCTR, reserved, reference, parameter and data lengths.
pub const JOB_HEADER: usize = 10;
/// An acknowledgement's header: a job's and the error class and code.
pub const ACK_HEADER: usize = 12;
/// One read-var item in a request (`12 0A 10 ...`).
pub const REQUEST_ITEM: usize = 12;
/// One item's header in a read-var answer (return code, transport size, length).
pub const ANSWER_ITEM_HEADER: usize = 4;
/// The most items one read-var request may carry (what S7 CPUs accept).
pub const MAX_ITEMS: usize = 20;

/// An answer that does not follow the protocol; its text is the bad samples' error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The TPKT header is not version 3 or its length is impossible.
    #[error("bad TPKT header {0:02X?}")]
    Tpkt([u8; 4]),
    /// The COTP header is shorter than its length byte says, or empty.
    #[error("truncated COTP header")]
    Cotp,
    /// The S7 PDU is not S7comm (protocol id) or is shorter than its header.
    #[error("not an S7comm PDU")]
    NotS7,
    /// The PDU's parameter and data lengths disagree with its size.
    #[error("S7 PDU lengths do not add up ({param} + {data} after the header, {have} present)")]
    Lengths {
        /// The parameter length field.
        param: usize,
        /// The data length field.
        data: usize,
        /// The bytes after the header.
        have: usize,
    },
    /// An answer of an unexpected kind (ROSCTR) or for another function.
    #[error("unexpected S7 answer: {0}")]
    Unexpected(&'static str),
    /// The answer lists another number of items than were asked for.
    #[error("the answer has {got} items for {asked} asked")]
    ItemCount {
        /// Items in the answer.
        got: usize,
        /// Items asked for.
        asked: usize,
    },
    /// An item's data runs past the end of the PDU.
    #[error("item {0} runs past the end of the answer")]
    ItemTruncated(usize),
}

/// A TPKT packet around `payload`.
pub fn tpkt(payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(TPKT_HEADER + payload.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(usize::from(len));
    out.extend_from_slice(&[0x03, 0x00]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The length of the packet a TPKT header starts (header included).
pub fn tpkt_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
    // The smallest useful packet holds a COTP length byte and its code.
    if header[0] != 0x03 || len < TPKT_HEADER + 2 {
        return Err(FrameError::Tpkt(header));
    }
    Ok(len)
}

/// The COTP connection request with the two TSAPs and a TPDU size of 1024 bytes, in its
/// TPKT packet.
pub fn connect_request(local_tsap: u16, remote_tsap: u16) -> Vec<u8> {
    let [l0, l1] = local_tsap.to_be_bytes();
    let [r0, r1] = remote_tsap.to_be_bytes();
    tpkt(&[
        0x11, // header length after this byte
        0xE0, // CR, credit 0
        0x00, 0x00, // destination reference
        0x00, 0x01, // source reference
        0x00, // class 0
        0xC0, 0x01, 0x0A, // TPDU size 2^10
        0xC1, 0x02, l0, l1, // calling (local) TSAP
        0xC2, 0x02, r0, r1, // called (remote) TSAP
    ])
}

/// A COTP data unit carrying `s7` (one whole S7 PDU), in its TPKT packet.
pub fn data(s7: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(3 + s7.len());
    payload.extend_from_slice(&[0x02, 0xF0, 0x80]);
    payload.extend_from_slice(s7);
    tpkt(&payload)
}

/// A received COTP unit (the payload of one TPKT packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cotp<'a> {
    /// Connection confirm: the PLC accepted the TSAPs.
    ConnectConfirm,
    /// A data unit: a piece of an S7 PDU, the last piece when `last`.
    Data {
        /// End of the S7 PDU.
        last: bool,
        /// The piece.
        payload: &'a [u8],
    },
    /// Disconnect request: the PLC refused or closed the connection (wrong TSAP or
    /// rack/slot, no free connection).
    Disconnect {
        /// The reason byte (0 when absent).
        reason: u8,
    },
    /// Anything else, by its code.
    Other(u8),
}

/// Decodes the COTP unit of one TPKT packet (without its TPKT header).
pub fn parse_cotp(unit: &[u8]) -> Result<Cotp<'_>, FrameError> {
    let (&li, rest) = unit.split_first().ok_or(FrameError::Cotp)?;
    let li = usize::from(li);
    if li == 0 || rest.len() < li {
        return Err(FrameError::Cotp);
    }
    let header = &rest[..li];
    let payload = &rest[li..];
    Ok(match header[0] & 0xF0 {
        0xD0 => Cotp::ConnectConfirm,
        0xF0 => Cotp::Data {
            last: header.get(1).is_some_and(|nr| nr & 0x80 != 0),
            payload,
        },
        0x80 => Cotp::Disconnect {
            reason: header.get(5).copied().unwrap_or(0),
        },
        code => Cotp::Other(code),
    })
}

/// A job PDU: header, then `param` and `data`.
fn job(pdu_ref: u16, param: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(JOB_HEADER + param.len() + data.len());
    out.extend_from_slice(&[S7_PROTOCOL, JOB, 0x00, 0x00]);
    out.extend_from_slice(&pdu_ref.to_be_bytes());
    out.extend_from_slice(&u16::try_from(param.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(&u16::try_from(data.len()).unwrap_or(u16::MAX).to_be_bytes());
    out.extend_from_slice(param);
    out.extend_from_slice(data);
    out
}

/// "Setup communication", offering `pdu_size` and one job at a time each way.
pub fn setup_request(pdu_ref: u16, pdu_size: u16) -> Vec<u8> {
    let [p0, p1] = pdu_size.to_be_bytes();
    job(
        pdu_ref,
        &[SETUP_COMMUNICATION, 0x00, 0x00, 0x01, 0x00, 0x01, p0, p1],
        &[],
    )
}

/// One item of a read: `len` bytes of `area_code` (data block `db`) from byte `start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemSpec {
    /// The S7 area code (0x81 inputs, 0x82 outputs, 0x83 flags, 0x84 data blocks).
    pub area_code: u8,
    /// The data block number (0 outside data blocks).
    pub db: u16,
    /// The first byte.
    pub start: u32,
    /// How many bytes.
    pub len: u16,
}

/// "Read var" for `items`, each read as bytes (transport size BYTE). At most
/// [`MAX_ITEMS`]; the caller plans within the PDU size.
pub fn read_request(pdu_ref: u16, items: &[ItemSpec]) -> Vec<u8> {
    let mut param = Vec::with_capacity(2 + REQUEST_ITEM * items.len());
    param.push(READ_VAR);
    param.push(u8::try_from(items.len()).unwrap_or(u8::MAX));
    for item in items {
        // The address is a bit address: byte × 8, in 3 bytes.
        let bit_address = (item.start << 3) & 0x00FF_FFFF;
        let [_, a0, a1, a2] = bit_address.to_be_bytes();
        param.extend_from_slice(&[0x12, 0x0A, 0x10, 0x02]);
        param.extend_from_slice(&item.len.to_be_bytes());
        param.extend_from_slice(&item.db.to_be_bytes());
        param.extend_from_slice(&[item.area_code, a0, a1, a2]);
    }
    job(pdu_ref, &param, &[])
}

/// The size of a read-var request for `items` items.
pub fn read_request_size(items: usize) -> usize {
    JOB_HEADER + 2 + REQUEST_ITEM * items
}

/// An acknowledgement: which job it answers, its error, parameters and data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<'a> {
    /// The PDU reference of the job it answers.
    pub pdu_ref: u16,
    /// Error class and code (`0` for none).
    pub error: u16,
    /// The parameter part.
    pub param: &'a [u8],
    /// The data part.
    pub data: &'a [u8],
}

/// Decodes an acknowledgement PDU.
pub fn parse_ack(pdu: &[u8]) -> Result<Ack<'_>, FrameError> {
    if pdu.len() < ACK_HEADER || pdu[0] != S7_PROTOCOL {
        return Err(FrameError::NotS7);
    }
    if !matches!(pdu[1], ACK | ACK_DATA) {
        return Err(FrameError::Unexpected("not an acknowledgement"));
    }
    let pdu_ref = u16::from_be_bytes([pdu[4], pdu[5]]);
    let param = usize::from(u16::from_be_bytes([pdu[6], pdu[7]]));
    let data = usize::from(u16::from_be_bytes([pdu[8], pdu[9]]));
    let error = u16::from_be_bytes([pdu[10], pdu[11]]);
    let body = &pdu[ACK_HEADER..];
    if param + data > body.len() {
        return Err(FrameError::Lengths {
            param,
            data,
            have: body.len(),
        });
    }
    Ok(Ack {
        pdu_ref,
        error,
        param: &body[..param],
        data: &body[param..param + data],
    })
}

/// The PDU size a setup-communication answer grants.
pub fn parse_setup(ack: &Ack<'_>) -> Result<u16, FrameError> {
    match ack.param {
        [SETUP_COMMUNICATION, _, _, _, _, _, p0, p1, ..] => Ok(u16::from_be_bytes([*p0, *p1])),
        _ => Err(FrameError::Unexpected("not a setup-communication answer")),
    }
}

/// Why one item of a read carries no value; the text is the item's points' error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// The PLC answered the item with this return code.
    #[error("PLC item error {0:02X}: {text}", text = item_code_text(*.0))]
    Code(u8),
    /// The PLC sent another number of bytes than were asked for.
    #[error("the PLC sent {got} bytes for {asked} asked")]
    Length {
        /// Bytes sent.
        got: usize,
        /// Bytes asked for.
        asked: u16,
    },
}

/// What an item return code means, with what to check.
fn item_code_text(code: u8) -> &'static str {
    match code {
        0x01 => "hardware fault",
        0x03 => "access denied (is PUT/GET allowed, and is the data block not optimized?)",
        0x05 => "address out of range (is the data block that long?)",
        0x06 => "data type not supported",
        0x07 => "data type inconsistent",
        0x0A => "object does not exist (no such data block?)",
        _ => "unknown return code",
    }
}

/// The items of a read-var answer: each item's bytes, or its error; `asked` gives the
/// byte count asked for each item, which its data must match.
pub fn parse_read<'a>(
    ack: &Ack<'a>,
    asked: &[u16],
) -> Result<Vec<Result<&'a [u8], ItemError>>, FrameError> {
    let [READ_VAR, count, ..] = *ack.param else {
        return Err(FrameError::Unexpected("not a read-var answer"));
    };
    if usize::from(count) != asked.len() {
        return Err(FrameError::ItemCount {
            got: usize::from(count),
            asked: asked.len(),
        });
    }
    let mut items = Vec::with_capacity(asked.len());
    let mut rest = ack.data;
    for (i, &want) in asked.iter().enumerate() {
        let Some((&[code, transport, l0, l1], after)) = rest.split_first_chunk::<4>() else {
            return Err(FrameError::ItemTruncated(i));
        };
        let length = usize::from(u16::from_be_bytes([l0, l1]));
        // BIT, BYTE/WORD/DWORD and INTEGER give the length in bits; the others in bytes.
        let bytes = if matches!(transport, 0x03..=0x05) {
            length.div_ceil(8)
        } else {
            length
        };
        if after.len() < bytes {
            return Err(FrameError::ItemTruncated(i));
        }
        let (value, mut after) = after.split_at(bytes);
        // A fill byte evens out odd lengths, except after the last item.
        if bytes % 2 == 1 && i + 1 < asked.len() && !after.is_empty() {
            after = &after[1..];
        }
        rest = after;
        items.push(if code != 0xFF {
            Err(ItemError::Code(code))
        } else if value.len() != usize::from(want) {
            // Well framed but not what was asked: this item only.
            Err(ItemError::Length {
                got: value.len(),
                asked: want,
            })
        } else {
            Ok(value)
        });
    }
    Ok(items)
}

/// The text of an S7 header error (class and code), as the PLC's manual lists the usual
/// ones.
pub fn header_error_text(error: u16) -> String {
    let text = match error {
        0x8104 => "function not supported, or PUT/GET access not allowed in the CPU's settings",
        0x8500 => "the request does not fit the PDU size",
        0x8304 => "no resources (too many connections or jobs)",
        0x8702 => "address error",
        0xD209 => "object not found",
        _ => match error >> 8 {
            0x81 => "application relationship error",
            0x82 => "object definition error",
            0x83 => "no resources available",
            0x84 => "error on service processing",
            0x85 => "error on supplies",
            0x87 => "access error",
            _ => "unknown error",
        },
    };
    format!("PLC error {error:04X}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_request_carries_the_tsaps() {
        let cr = connect_request(0x0100, 0x0102);
        assert_eq!(cr.len(), 22);
        assert_eq!(&cr[..4], &[0x03, 0x00, 0x00, 0x16]);
        assert_eq!(&cr[4..6], &[0x11, 0xE0]);
        assert_eq!(&cr[14..18], &[0xC1, 0x02, 0x01, 0x00]);
        assert_eq!(&cr[18..22], &[0xC2, 0x02, 0x01, 0x02]);
        assert_eq!(tpkt_len([3, 0, 0, 22]), Ok(22));
        assert!(tpkt_len([4, 0, 0, 22]).is_err());
        assert!(tpkt_len([3, 0, 0, 5]).is_err());
    }

    #[test]
    fn a_read_request_addresses_bits() {
        let item = ItemSpec {
            area_code: 0x84,
            db: 1,
            start: 2,
            len: 4,
        };
        let pdu = read_request(7, &[item]);
        assert_eq!(pdu.len(), read_request_size(1));
        assert_eq!(
            pdu,
            [
                0x32, 0x01, 0, 0, 0, 7, 0, 14, 0, 0, // header
                0x04, 1, // read var, one item
                0x12, 0x0A, 0x10, 0x02, 0, 4, 0, 1, 0x84, 0, 0, 16,
            ]
        );
    }

    #[test]
    fn cotp_units_are_told_apart() {
        assert_eq!(
            parse_cotp(&[0x02, 0xF0, 0x80, 0x32]),
            Ok(Cotp::Data {
                last: true,
                payload: &[0x32]
            })
        );
        assert_eq!(
            parse_cotp(&[0x06, 0xD0, 0, 1, 0, 1, 0]),
            Ok(Cotp::ConnectConfirm)
        );
        assert_eq!(
            parse_cotp(&[0x06, 0x80, 0, 1, 0, 1, 0x03]),
            Ok(Cotp::Disconnect { reason: 3 })
        );
        assert_eq!(parse_cotp(&[0x05, 0xD0]), Err(FrameError::Cotp));
        assert_eq!(parse_cotp(&[]), Err(FrameError::Cotp));
    }

    fn ack(param: &[u8], data: &[u8], error: u16) -> Vec<u8> {
        let mut pdu = vec![0x32, 0x03, 0, 0, 0, 9];
        pdu.extend_from_slice(&u16::try_from(param.len()).expect("small").to_be_bytes());
        pdu.extend_from_slice(&u16::try_from(data.len()).expect("small").to_be_bytes());
        pdu.extend_from_slice(&error.to_be_bytes());
        pdu.extend_from_slice(param);
        pdu.extend_from_slice(data);
        pdu
    }

    #[test]
    fn read_answers_with_fill_bytes_and_item_errors() {
        let data = [
            0xFF, 0x04, 0x00, 0x08, 0xAB, 0x00, // one byte, then a fill byte
            0x0A, 0x00, 0x00, 0x00, // object does not exist
            0xFF, 0x04, 0x00, 0x10, 0x12, 0x34, // two bytes
        ];
        let pdu = ack(&[0x04, 3], &data, 0);
        let parsed = parse_ack(&pdu).expect("ack");
        assert_eq!(parsed.pdu_ref, 9);
        let items = parse_read(&parsed, &[1, 2, 2]).expect("items");
        assert_eq!(items[0], Ok(&[0xAB][..]));
        assert_eq!(items[1], Err(ItemError::Code(0x0A)));
        assert_eq!(items[2], Ok(&[0x12, 0x34][..]));
        assert!(
            items[1]
                .unwrap_err()
                .to_string()
                .contains("no such data block")
        );
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let pdu = ack(&[0x04, 2], &[0xFF, 0x04, 0x00, 0x10, 0x12], 0);
        let parsed = parse_ack(&pdu).expect("ack");
        assert_eq!(
            parse_read(&parsed, &[2, 2]),
            Err(FrameError::ItemTruncated(0))
        );
        assert_eq!(
            parse_read(&parsed, &[2]),
            Err(FrameError::ItemCount { got: 2, asked: 1 })
        );
        let mut short = ack(&[0x04, 1], &[0xFF, 0x04, 0x00, 0x08, 1], 0);
        short.truncate(short.len() - 2);
        assert!(matches!(parse_ack(&short), Err(FrameError::Lengths { .. })));
        assert_eq!(parse_ack(&[0x32, 0x03]), Err(FrameError::NotS7));
        // A byte count that differs from the request spoils that item only.
        let pdu = ack(&[0x04, 1], &[0xFF, 0x04, 0x00, 0x08, 1], 0);
        let parsed = parse_ack(&pdu).expect("ack");
        assert_eq!(
            parse_read(&parsed, &[2]),
            Ok(vec![Err(ItemError::Length { got: 1, asked: 2 })])
        );
    }

    #[test]
    fn setup_answers_grant_a_pdu_size() {
        let pdu = ack(&[0xF0, 0, 0, 1, 0, 1, 0x01, 0xE0], &[], 0);
        assert_eq!(parse_setup(&parse_ack(&pdu).expect("ack")), Ok(480));
        assert_eq!(
            header_error_text(0x8104),
            "PLC error 8104: function not supported, or PUT/GET access not allowed in the CPU's settings"
        );
    }
}
