//! Who is calling: the client certificate's common name or DNS names, mapped
//! to exactly one configured institution, platform or officer.

use crate::config::Institution;
use contracts::{ErrorCode, Refusal};
use rustls_pki_types::CertificateDer;
use std::collections::HashMap;
use std::sync::Arc;

/// A caller known from its certificate: the configured institution and its index.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Position in the configuration: the key of its rate limiter.
    pub index: usize,
    /// What the configuration says of it.
    pub institution: Arc<Institution>,
}

/// The configured callers by code.
#[derive(Debug)]
pub struct Directory {
    by_code: HashMap<String, Caller>,
}

impl Directory {
    /// From the configured institutions.
    pub fn new(institutions: &[Institution]) -> Directory {
        let by_code = institutions
            .iter()
            .enumerate()
            .map(|(index, i)| {
                (
                    i.code.clone(),
                    Caller {
                        index,
                        institution: Arc::new(i.clone()),
                    },
                )
            })
            .collect();
        Directory { by_code }
    }

    /// A configured caller by code.
    pub fn get(&self, code: &str) -> Option<&Caller> {
        self.by_code.get(code)
    }

    /// The caller a verified leaf certificate names. Every name on it that is
    /// a configured code must name the same caller, and there must be one.
    pub fn identify(&self, leaf: &CertificateDer<'_>) -> Result<Caller, Refusal> {
        let names = certificate_names(leaf)
            .map_err(|_| Refusal::new(ErrorCode::UnknownCaller, "unreadable client certificate"))?;
        let mut found: Option<&Caller> = None;
        for name in &names {
            if let Some(caller) = self.by_code.get(name) {
                match found {
                    Some(other) if other.index != caller.index => {
                        return Err(Refusal::new(
                            ErrorCode::UnknownCaller,
                            "the certificate names two configured callers",
                        ));
                    }
                    _ => found = Some(caller),
                }
            }
        }
        found.cloned().ok_or_else(|| {
            Refusal::new(
                ErrorCode::UnknownCaller,
                "the certificate names no configured caller",
            )
        })
    }
}

/// The common names and DNS names of a certificate.
pub fn certificate_names(
    der: &CertificateDer<'_>,
) -> Result<Vec<String>, x509_parser::nom::Err<x509_parser::error::X509Error>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())?;
    let mut names: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(str::to_owned)
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    Ok(names)
}
