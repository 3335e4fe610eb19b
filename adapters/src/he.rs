//! The Hebei dialect (`he`): XML in UTF-8, scalar fields as attributes of
//! their record's element, list items as repeated elements, amounts in
//! integer fen, ISO 8601 times, its own code tables for insurance type and
//! kind of care, and an envelope with a `<Header>` naming sender region,
//! receiver region and message id before the `<Body>`. Specified in
//! `contracts/dialects/he.md` and `he.xsd`.
//!
//! Field names are the national names, except three envelope fields of the
//! header: `mdtrtarea_admvs` is `sender`, `insuplc_admdvs` is `receiver`
//! (in a request) and `inf_refmsgid` is `msgid` (in an answer).

use crate::xml::{
    Charset, Clock, CodeTable, Frame, MoneyUnit, NameCache, Placement, WireName, XmlDialect,
};
use contracts::model::envelope::{AnswerEnvelope, RequestEnvelope};
use contracts::record::{CodeSet, RecordType, Schema};

/// The Hebei XML dialect.
pub struct He;

/// Header attributes named otherwise than the national field: (national, he), request envelope.
pub const REQUEST_HEADER_NAMES: &[(&str, &str)] = &[
    ("mdtrtarea_admvs", "sender"),
    ("insuplc_admdvs", "receiver"),
];
/// Same for the answer envelope.
pub const ANSWER_HEADER_NAMES: &[(&str, &str)] = &[("inf_refmsgid", "msgid")];

/// Insurance type (险种类型, `insutype`): national code, he code.
pub const INSUTYPE: CodeTable = CodeTable {
    pairs: &[
        ("310", "01"),
        ("390", "02"),
        ("320", "03"),
        ("330", "04"),
        ("340", "05"),
        ("392", "06"),
    ],
};

/// Kind of care (医疗类别, `med_type`): national code, he code.
pub const MED_TYPE: CodeTable = CodeTable {
    pairs: &[
        ("11", "101"),
        ("12", "102"),
        ("13", "103"),
        ("14", "104"),
        ("21", "201"),
        ("41", "401"),
    ],
};

fn renames(schema: &'static Schema) -> &'static [(&'static str, &'static str)] {
    if std::ptr::eq(schema, RequestEnvelope::static_schema()) {
        REQUEST_HEADER_NAMES
    } else if std::ptr::eq(schema, AnswerEnvelope::static_schema()) {
        ANSWER_HEADER_NAMES
    } else {
        &[]
    }
}

impl XmlDialect for He {
    const NAME: &'static str = "he";
    const CHARSET: Charset = Charset::Utf8;
    const PLACEMENT: Placement = Placement::Attributes;
    const MONEY: MoneyUnit = MoneyUnit::Fen;
    const CLOCK: Clock = Clock::Iso;
    const FRAME: Frame = Frame {
        request_root: "Request",
        answer_root: "Answer",
        header: Some("Header"),
        infno: "infno",
        input: "Body",
        output: "Body",
        list_item: None,
    };

    fn codes(set: CodeSet) -> Option<&'static CodeTable> {
        match set {
            CodeSet::Insutype => Some(&INSUTYPE),
            CodeSet::MedType => Some(&MED_TYPE),
            _ => None,
        }
    }

    fn wire_name(schema: &'static Schema, index: usize) -> WireName {
        let national = schema.fields.get(index).map_or("", |f| f.name);
        let renamed = renames(schema)
            .iter()
            .find(|(n, _)| *n == national)
            .map(|(_, he)| *he);
        WireName::plain(renamed.unwrap_or(national))
    }

    fn name_cache() -> &'static NameCache {
        static NAMES: NameCache = NameCache::new();
        &NAMES
    }

    fn field_index(schema: &'static Schema, wire: &str) -> Option<usize> {
        let table = renames(schema);
        if let Some((national, _)) = table.iter().find(|(_, he)| *he == wire) {
            return schema.index_of(national);
        }
        // A renamed field is known only by its he name.
        if table.iter().any(|(national, _)| *national == wire) {
            return None;
        }
        schema.index_of(wire)
    }
}
