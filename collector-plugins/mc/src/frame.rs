//! The QnA-compatible 3E frame, binary code: encoding a batch read, decoding its answer.
//! No I/O, so that the decoder can be fuzzed. Multi-byte fields are little-endian.
//!
//! ```text
//! request   50 00 | network 00 | PC FF | module I/O FF 03 | station 00 | length (2)
//!           | monitoring timer (2, ×250 ms) | command 01 04 | subcommand 00 00 (words)
//!           | head device number (3) | device code (1) | points (2)
//! answer    D0 00 | network | PC | module I/O (2) | station | length (2)
//!           | end code (2) | data: one word (2 bytes, low byte first) per point
//!           | or, when the end code is not 0, the error information (9 bytes)
//! ```

/// The bytes before the answer's length field ends.
pub const ANSWER_HEADER: usize = 9;
/// The largest answer the collector accepts (960 words and the end code, with room).
pub const MAX_ANSWER: usize = 4096;
/// The most words one batch read returns (MELSEC's limit for word units).
pub const MAX_WORDS: u16 = 960;

/// Where a request goes: the routing fields of the frame. The defaults address the CPU
/// the Ethernet port belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// Network number (0: own network).
    pub network: u8,
    /// PC (station) number (0xFF: the connected station).
    pub pc: u8,
    /// Request destination module I/O number (0x03FF: the own CPU).
    pub module_io: u16,
    /// Request destination module station number.
    pub station: u8,
}

impl Default for Route {
    fn default() -> Self {
        Route {
            network: 0,
            pc: 0xFF,
            module_io: 0x03FF,
            station: 0,
        }
    }
}

/// A batch read of `points` words from device `code`, starting at `head`, with a
/// monitoring timer of `timer` × 250 ms.
pub fn read_request(route: Route, timer: u16, code: u8, head: u32, points: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(21);
    out.extend_from_slice(&[0x50, 0x00, route.network, route.pc]);
    out.extend_from_slice(&route.module_io.to_le_bytes());
    out.push(route.station);
    // Timer (2), command (2), subcommand (2), head (3), code (1), points (2).
    out.extend_from_slice(&12u16.to_le_bytes());
    out.extend_from_slice(&timer.to_le_bytes());
    out.extend_from_slice(&[0x01, 0x04, 0x00, 0x00]);
    let [h0, h1, h2, _] = head.to_le_bytes();
    out.extend_from_slice(&[h0, h1, h2, code]);
    out.extend_from_slice(&points.to_le_bytes());
    out
}

/// An answer that does not follow the protocol; its text is the bad samples' error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Not a 3E binary answer (subheader `D0 00`).
    #[error("not a 3E binary answer (subheader {0:02X?})")]
    Subheader([u8; 2]),
    /// The length field is too small for an end code, or beyond what a read returns.
    #[error("impossible answer length {0}")]
    Length(usize),
    /// The answer carries another number of words than were asked for.
    #[error("{got} bytes of data for {asked} words asked")]
    Words {
        /// Data bytes in the answer.
        got: usize,
        /// Words asked for.
        asked: u16,
    },
}

/// The length of the answer a 9-byte header starts (header included).
pub fn answer_len(header: &[u8; ANSWER_HEADER]) -> Result<usize, FrameError> {
    if header[..2] != [0xD0, 0x00] {
        return Err(FrameError::Subheader([header[0], header[1]]));
    }
    let length = usize::from(u16::from_le_bytes([header[7], header[8]]));
    if !(2..=MAX_ANSWER).contains(&length) {
        return Err(FrameError::Length(length));
    }
    Ok(ANSWER_HEADER + length)
}

/// What an answer says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer<'a> {
    /// The words read, as they came (two bytes each, low byte first).
    Data(&'a [u8]),
    /// The PLC refused the request with this end code.
    Refused(u16),
}

/// Decodes a whole answer (header included) to a read of `asked` words.
pub fn parse_answer(answer: &[u8], asked: u16) -> Result<Answer<'_>, FrameError> {
    let Some(header) = answer.first_chunk::<ANSWER_HEADER>() else {
        return Err(FrameError::Length(answer.len()));
    };
    let len = answer_len(header)?;
    if answer.len() != len {
        return Err(FrameError::Length(answer.len()));
    }
    let end_code = u16::from_le_bytes([answer[9], answer[10]]);
    if end_code != 0 {
        return Ok(Answer::Refused(end_code));
    }
    let data = &answer[11..];
    if data.len() != 2 * usize::from(asked) {
        return Err(FrameError::Words {
            got: data.len(),
            asked,
        });
    }
    Ok(Answer::Data(data))
}

/// The text of an end code, with what it usually means.
pub fn end_code_text(code: u16) -> String {
    let text = match code {
        0xC050 => "ASCII data that cannot be converted (is the port set to binary?)",
        0xC051..=0xC054 => "the number of points is out of range",
        0xC055 => "the written data count is wrong",
        0xC056 => "the request runs past the device's last number",
        0xC058 => "the request's data length is wrong",
        0xC059 => "the command or subcommand is not supported",
        0xC05B => "the device cannot be accessed (wrong device for this CPU)",
        0xC05C => "the request is wrong (bit device read in words at an odd head?)",
        0xC05F => "the request cannot be executed for this CPU",
        0xC061 => "the request data length does not match",
        0xC06F => "binary frame to an ASCII port, or the reverse",
        0x4030..=0x403F => "the device does not exist or is out of range in the CPU's parameters",
        _ => "see the PLC's error code list",
    };
    format!("PLC end code {code:04X}: {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_read_of_d100_is_laid_out_as_the_manual_shows() {
        let request = read_request(Route::default(), 4, 0xA8, 100, 3);
        assert_eq!(
            request,
            [
                0x50, 0x00, 0x00, 0xFF, 0xFF, 0x03, 0x00, 0x0C, 0x00, 0x04, 0x00, 0x01, 0x04, 0x00,
                0x00, 0x64, 0x00, 0x00, 0xA8, 0x03, 0x00
            ]
        );
    }

    #[test]
    fn answers_give_their_words_or_their_end_code() {
        let ok = [
            0xD0, 0, 0, 0xFF, 0xFF, 3, 0, 6, 0, 0, 0, 0x34, 0x12, 0x02, 0x00,
        ];
        assert_eq!(answer_len(ok.first_chunk().expect("9")), Ok(15));
        assert_eq!(
            parse_answer(&ok, 2),
            Ok(Answer::Data(&[0x34, 0x12, 0x02, 0x00]))
        );
        assert_eq!(
            parse_answer(&ok, 3),
            Err(FrameError::Words { got: 4, asked: 3 })
        );
        let refused = [
            0xD0, 0, 0, 0xFF, 0xFF, 3, 0, 11, 0, 0x56, 0xC0, 0, 0xFF, 0xFF, 3, 0, 1, 4, 0, 0,
        ];
        assert_eq!(parse_answer(&refused, 2), Ok(Answer::Refused(0xC056)));
        assert!(end_code_text(0xC056).contains("last number"));
        assert_eq!(
            answer_len(&[0x50, 0, 0, 0, 0, 0, 0, 2, 0]),
            Err(FrameError::Subheader([0x50, 0]))
        );
        assert_eq!(
            answer_len(&[0xD0, 0, 0, 0, 0, 0, 0, 1, 0]),
            Err(FrameError::Length(1))
        );
        assert_eq!(parse_answer(&ok[..10], 2), Err(FrameError::Length(10)));
    }
}
