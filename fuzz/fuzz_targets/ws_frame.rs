//! Arbitrary bytes as a WebSocket text frame: parsing never panics, and the `ping`
//! shortcut reads what serde reads.
#![no_main]

use doorman::ws::protocol::ClientFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            format!("{:?}", ClientFrame::parse(text)),
            format!("{:?}", ClientFrame::parse_with_serde(text)),
        );
    }
});
