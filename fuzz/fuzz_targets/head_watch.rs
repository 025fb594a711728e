//! Arbitrary request bytes through the connection guard's byte watcher, read in
//! arbitrary chunks: it must not panic, and where the reads are cut must not change
//! where it ends up (the head deadline must not depend on how TCP split the head).
#![no_main]

use doorman::fuzzing::chunking_agrees;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte says how many cut positions follow (each one byte); the rest
    // are the bytes read.
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8).min(rest.len());
    let (cuts, bytes) = rest.split_at(n);
    let cuts: Vec<usize> = cuts.iter().map(|&c| usize::from(c)).collect();
    assert!(chunking_agrees(bytes, &cuts));
});
