//! 2601 reversal (冲正交易): undoes a call whose outcome the sender does not know.

use crate::record::Secret;

crate::record! {
    /// 2601 input data.
    pub struct Reversal {
        /// Person number.
        psn_no: req String,
        /// The original message id (原发送方报文ID).
        omsgid: req String,
        /// The original transaction (原交易编号): 2102, 2103, 2207, 2208, 2304, 2305 or 2401.
        oinfno: req String,
    }
}

crate::record! {
    /// 2601 input.
    pub struct ReversalInput {
        /// The reversal.
        data: rec Reversal,
    }
}

crate::record! {
    /// An answer with no body of its own (2202, 2203, 2205, 2302, 2402,
    /// 2404, 2405, 2502, 2504, 2601, 3261, 3262): platforms send `null` or `{}`.
    pub struct Acknowledgement {
        /// A free note some platforms add.
        memo: opt Secret,
    }
}
