//! The national decoder on arbitrary bytes: never a panic, and whatever it
//! accepts survives encode → decode unchanged.
#![no_main]

use adapters::national::National;
use adapters::{Dialect, Limits};
use contracts::Infno;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::DEFAULT;
    if let Ok(request) = National.decode_request(data, &limits) {
        let _ = contracts::validate::validate_request(&request, &contracts::validate::Jingjinji);
        let again = National.decode_request(&National.encode_request(&request), &limits);
        assert_eq!(again.as_ref(), Ok(&request));
    }
    let infno = Infno::ALL[data.first().map_or(0, |b| *b as usize) % Infno::ALL.len()];
    if let Ok(answer) = National.decode_answer(infno, data, &limits) {
        let _ = contracts::validate::check_answer(infno, &answer);
        let again = National.decode_answer(infno, &National.encode_answer(Some(infno), &answer), &limits);
        assert_eq!(again.as_ref(), Ok(&answer));
    }
});
