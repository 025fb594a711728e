//! Arbitrary bytes as a WebSocket text frame: parsing never panics.
#![no_main]

use doorman::ws::protocol::ClientFrame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_json::from_str::<ClientFrame>(text);
    }
});
