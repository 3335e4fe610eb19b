//! The catalogue and the transaction table in `contracts/*.md` are rendered
//! from the code; these tests fail when they drift apart. Regenerate with
//! `JJJ_WRITE_DOCS=1 cargo test -p contracts --test docs`.

use contracts::record::{Kind, Schema, Shape};
use contracts::{ErrorCode, Infno};
use std::path::PathBuf;

fn check(file: &str, rendered: String) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(file);
    if std::env::var_os("JJJ_WRITE_DOCS").is_some() {
        std::fs::write(&path, &rendered).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "{file} is out of date: run JJJ_WRITE_DOCS=1 cargo test -p contracts --test docs"
    );
}

#[test]
fn error_catalogue_document_matches_the_code() {
    let mut out = String::from(
        "# Error catalogue\n\nEvery refusal the gateway gives. The number is stable and is sent as the national `infcode`; \
         `err_msg` reads `[E<number>] <中文> / <English>: <detail>`, the detail naming the field or rule (never its value). \
         The slug labels metrics and logs. Generated from `contracts/src/error.rs`.\n\n\
         | code | slug | HTTP | 中文 | English |\n|---|---|---|---|---|\n",
    );
    for &code in ErrorCode::ALL {
        out.push_str(&format!(
            "| E{} | `{}` | {} | {} | {} |\n",
            code.number(),
            code.slug(),
            code.http_status(),
            code.message_zh(),
            code.message_en()
        ));
    }
    check("errors.md", out);
}

fn kind_name(kind: Kind) -> String {
    match kind {
        Kind::Code(set) => format!("code ({set:?})"),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn describe(schema: &Schema, prefix: &str, out: &mut String, seen: &mut Vec<&'static str>) {
    for field in schema.fields {
        let name = format!("{prefix}{}", field.name);
        let required = if field.required { "required" } else { "" };
        let doc = field.doc.trim();
        match field.shape {
            Shape::Scalar(kind) => out.push_str(&format!(
                "| `{name}` | {} | {required} | {doc} |\n",
                kind_name(kind)
            )),
            Shape::Record(inner) => {
                out.push_str(&format!("| `{name}` | object | {required} | {doc} |\n"));
                describe(inner(), &format!("{name}."), out, seen);
            }
            Shape::List(inner) => {
                out.push_str(&format!("| `{name}[]` | list | | {doc} |\n"));
                describe(inner(), &format!("{name}[]."), out, seen);
            }
        }
    }
    seen.push(schema.name);
}

#[test]
fn transaction_table_document_matches_the_code() {
    let mut out = String::from(
        "# Transactions\n\nThe national transactions the gateway carries, with how it treats each and every field of their \
         input and output (national names; the canonical vocabulary every dialect maps onto). Generated from \
         `contracts/src/transaction.rs` and `contracts/src/model/`.\n\n\
         | infno | 名称 | name | effect | journalled | reversible by 2601 | sender | timeout class |\n|---|---|---|---|---|---|---|---|\n",
    );
    for &infno in Infno::ALL {
        let t = infno.traits();
        out.push_str(&format!(
            "| {} | {} | {} | {:?} | {} | {} | {:?} | {:?} |\n",
            infno.code(),
            infno.name_zh(),
            infno.name_en(),
            t.effect,
            if t.journalled { "yes" } else { "" },
            if t.reversible { "yes" } else { "" },
            t.sender,
            t.pace
        ));
    }
    for &infno in Infno::ALL {
        let mut seen = Vec::new();
        out.push_str(&format!(
            "\n## {} {} ({})\n\n",
            infno.code(),
            infno.name_en(),
            infno.name_zh()
        ));
        out.push_str("| input field | kind | | meaning |\n|---|---|---|---|\n");
        describe(infno.input_schema(), "input.", &mut out, &mut seen);
        out.push_str("\n| output field | kind | | meaning |\n|---|---|---|---|\n");
        describe(infno.output_schema(), "output.", &mut out, &mut seen);
    }
    check("transactions.md", out);
}
