//! DL/T 645-2007 frames and BCD values: arbitrary bytes on the line never panic the frame
//! finder, the frame decoder or the answer decoder; what decodes had a matching checksum;
//! any bytes decode as a BCD value of any size, decimals and sign, or fail cleanly; a
//! request for any meter and identifier is found whole and decodes back.

#![no_main]

use arbitrary::Arbitrary;
use fieldlink_dlt645::frame::{self, MeterAddress};
use fieldlink_dlt645::ident::{DataId, lookup};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    line: Vec<u8>,
    value: Vec<u8>,
    decimals: u8,
    signed: bool,
    meter: [u8; 6],
    id: u32,
}

fuzz_target!(|input: Input| {
    if let Some(Ok((start, len))) = frame::find_frame(&input.line) {
        assert!(start + len <= input.line.len());
        if let Ok(decoded) = frame::parse_frame(&input.line[start..start + len]) {
            let _ = frame::answer(&decoded);
        }
    }
    if input.value.len() <= 8 {
        if let Ok(fieldlink_wire::Value::Float(v)) =
            frame::bcd_value(&input.value, input.decimals % 8, input.signed)
        {
            assert!(v.is_finite());
        }
    }
    let id = DataId(input.id);
    let _ = lookup(id);
    let request = frame::read_request(MeterAddress(input.meter), id);
    let Some(Ok((start, len))) = frame::find_frame(&request) else {
        panic!("a request is a whole frame");
    };
    let decoded = frame::parse_frame(&request[start..start + len]).expect("a request decodes");
    assert_eq!(decoded.meter, MeterAddress(input.meter));
    assert_eq!(decoded.data, id.wire());
});
