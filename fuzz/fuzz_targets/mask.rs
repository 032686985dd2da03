//! The masker: no secret survives, text before it with nothing to mask is kept byte for byte,
//! and no bytes panic it.
#![no_main]

use http_resilience::fuzzing::{check_any, check_known, check_named};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fn run(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    match u.int_in_range(0u8..=2)? {
        0 => check_any(u.take_rest()),
        1 => {
            let prefix: &[u8] = u.arbitrary()?;
            let format: usize = u.arbitrary()?;
            let name: usize = u.arbitrary()?;
            let secret: &[u8] = u.arbitrary()?;
            if secret.is_empty() {
                return Ok(());
            }
            check_named(prefix, format, name, secret, u.take_rest());
        }
        _ => {
            let secret: &[u8] = u.arbitrary()?;
            let at: usize = u.arbitrary()?;
            check_known(u.take_rest(), secret, at);
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(data);
});
