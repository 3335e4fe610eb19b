//! Fuzzes the `tj` decoders: any bytes are refused or decoded without a
//! panic, and whatever decodes survives re-encoding in `tj` and translation
//! through the national dialect unchanged.
#![no_main]

use adapters::{dialect, Limits};
use contracts::Infno;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    let (Ok(this), Ok(national)) = (dialect("tj"), dialect("national")) else {
        return;
    };
    let limits = Limits::DEFAULT;
    if selector & 1 == 0 {
        if let Ok(request) = this.decode_request(bytes, &limits) {
            let again = this.decode_request(&this.encode_request(&request), &limits);
            assert_eq!(again.as_ref(), Ok(&request), "tj request must survive re-encoding");
            let via = national.decode_request(&national.encode_request(&request), &limits);
            assert_eq!(via.as_ref(), Ok(&request), "tj request must survive national");
        }
    } else {
        let infno = Infno::ALL[usize::from(selector >> 1) % Infno::ALL.len()];
        if let Ok(answer) = this.decode_answer(infno, bytes, &limits) {
            let again = this.decode_answer(infno, &this.encode_answer(Some(infno), &answer), &limits);
            assert_eq!(again.as_ref(), Ok(&answer), "tj answer must survive re-encoding");
            let via = national.decode_answer(infno, &national.encode_answer(Some(infno), &answer), &limits);
            assert_eq!(via.as_ref(), Ok(&answer), "tj answer must survive national");
        }
    }
});
