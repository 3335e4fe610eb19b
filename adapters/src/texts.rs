//! The two texts an encoder can write in one pass: the whole message, and
//! what [`contracts::record::redact`] would leave of it (no personal field,
//! no extras), which is what the journal keeps. Shared by the XML and the
//! national encoders.

use contracts::record::Kind;

/// Which texts a part of a record goes into.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Both texts: markup and fields that are not personal.
    Kept,
    /// The whole text only: personal ([`Kind::Secret`]) fields and extras.
    Personal,
}

impl Part {
    /// Where a scalar of `kind` goes.
    pub(crate) fn of(kind: Kind) -> Part {
        if kind == Kind::Secret {
            Part::Personal
        } else {
            Part::Kept
        }
    }
}

/// The whole text, then the redacted one; `None` for a text not asked for.
pub(crate) type Texts<T> = [Option<T>; 2];

/// The index of the whole text in [`Texts`].
const WHOLE: usize = 0;

/// Applies `write` to each text that takes `part`, with its index.
pub(crate) fn each<T>(texts: &mut Texts<T>, part: Part, mut write: impl FnMut(usize, &mut T)) {
    for (index, text) in texts.iter_mut().enumerate() {
        if let Some(text) = text {
            if part == Part::Kept || index == WHOLE {
                write(index, text);
            }
        }
    }
}
