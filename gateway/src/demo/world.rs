//! The demo's world: the institutions of three regions, their certificates,
//! and the sandbox and gateway configuration files, written into one data
//! folder so that `sandbox --config DIR/sandbox.toml` and `serve --config
//! DIR/gateway.toml` reproduce the demo by hand.

use anyhow::Context;
use contracts::{Admdvs, Province};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What kind of institution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A hospital (outpatient, chronic outpatient, inpatient).
    Hospital,
    /// A designated pharmacy.
    Pharmacy,
}

/// One institution of the demo.
#[derive(Debug, Clone)]
pub struct Institution {
    /// National-style code, e.g. `H11010500003`.
    pub code: String,
    /// Name.
    pub name: String,
    /// Its region.
    pub admdvs: Admdvs,
    /// Hospital or pharmacy.
    pub kind: Kind,
    /// The dialect its HIS speaks.
    pub dialect: &'static str,
}

/// A region of the demo.
#[derive(Debug, Clone, Copy)]
pub struct RegionSpec {
    /// The platform's admdvs.
    pub admdvs: u32,
    /// Name.
    pub name: &'static str,
    /// The dialect of its platform and its institutions.
    pub dialect: &'static str,
    /// Districts its institutions are in.
    pub cities: &'static [(u32, &'static str)],
}

/// The three regions.
pub const REGIONS: [RegionSpec; 3] = [
    RegionSpec {
        admdvs: 110000,
        name: "北京",
        dialect: "national",
        cities: &[(110105, "朝阳区"), (110108, "海淀区"), (110102, "西城区")],
    },
    RegionSpec {
        admdvs: 120000,
        name: "天津",
        dialect: "tj",
        cities: &[(120101, "和平区"), (120104, "南开区"), (120116, "滨海新区")],
    },
    RegionSpec {
        admdvs: 130000,
        name: "河北",
        dialect: "he",
        cities: &[
            (130102, "石家庄长安区"),
            (130602, "保定竞秀区"),
            (133100, "雄安新区"),
        ],
    },
];

/// The platform's caller code for a region.
pub fn platform_code(admdvs: u32) -> String {
    format!("PT{admdvs}")
}

/// The clearing officer's caller code.
pub const OFFICER: &str = "OF0001";

/// 11 institutions per region: 8 hospitals (levels by last digit, see the
/// sandbox) and 3 pharmacies.
pub fn institutions() -> Vec<Institution> {
    let mut out = Vec::new();
    for RegionSpec {
        name: region_name,
        dialect,
        cities,
        ..
    } in REGIONS
    {
        for n in 0..11u32 {
            let (city, city_name) = cities[(n as usize) % cities.len()];
            let Ok(admdvs) = Admdvs::parse(&city.to_string()) else {
                continue;
            };
            let (kind, prefix, noun) = if n < 8 {
                (Kind::Hospital, 'H', "医院")
            } else {
                (Kind::Pharmacy, 'P', "大药房")
            };
            out.push(Institution {
                code: format!("{prefix}{city}{:05}", 123 + n * 7),
                name: format!("{region_name}{city_name}示例{noun}{}", n + 1),
                admdvs,
                kind,
                dialect,
            });
        }
    }
    out
}

/// The province of a region code (every demo code is in one).
pub fn province(admdvs: Admdvs) -> Province {
    admdvs.province().unwrap_or(Province::Beijing)
}

/// Ports of the three platforms and the gateway.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// Beijing, Tianjin, Hebei platforms.
    pub platforms: [u16; 3],
    /// The gateway.
    pub gateway: u16,
}

impl Ports {
    /// Free ports on 127.0.0.1, four different ones: every listener is held
    /// until all are chosen, so the system cannot hand out one port twice.
    pub fn free() -> anyhow::Result<Ports> {
        let listeners = (0..4)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
            .collect::<Result<Vec<_>, _>>()?;
        let ports = listeners
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Ports {
            platforms: [ports[0], ports[1], ports[2]],
            gateway: ports[3],
        })
    }
}

/// Writes certificates and both configuration files into `dir`.
pub fn lay_out(
    dir: &Path,
    institutions: &[Institution],
    ports: Ports,
    ledger: bool,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut codes: Vec<String> = institutions.iter().map(|i| i.code.clone()).collect();
    codes.extend(REGIONS.iter().map(|r| platform_code(r.admdvs)));
    codes.push(OFFICER.to_owned());
    crate::certs::init(&dir.join("certs"), &codes)?;

    let mut sandbox = String::from("# The three regional platforms' stand-ins of the demo.\nca = \"certs/ca.pem\"\ncert = \"certs/server.pem\"\nkey = \"certs/server.key\"\n# Each platform's record (people, year-to-date totals, settlements, events): sandbox-data/<admdvs>.sqlite.\ndata = \"sandbox-data\"\n");
    for (
        RegionSpec {
            admdvs,
            name,
            dialect,
            ..
        },
        port,
    ) in REGIONS.iter().zip(ports.platforms)
    {
        let _ = write!(sandbox, "\n[[platforms]]\nadmdvs = \"{admdvs}\"\nname = \"{name}\"\ndialect = \"{dialect}\"\nlisten = \"127.0.0.1:{port}\"\n");
        if *admdvs == 130000 {
            // Now and then Hebei's platform commits a settlement and the connection drops:
            // the hospital does not know whether it happened, and reverses it.
            sandbox.push_str("faults = { drop_after_commit_percent = 3 }\n");
        }
    }
    let sandbox_path = dir.join("sandbox.toml");
    std::fs::write(&sandbox_path, sandbox)?;

    let mut gateway = format!(
        "# The demo gateway. Realistic limits: a hospital a few dozen requests a second.\n[server]\nlisten = \"127.0.0.1:{}\"\nca = \"certs/ca.pem\"\ncert = \"certs/server.pem\"\nkey = \"certs/server.key\"\n\n[limits]\ninstitution_per_second = 30\ninstitution_burst = 60\nregion_per_second = 2000\nregion_burst = 4000\n",
        ports.gateway
    );
    if ledger {
        gateway.push_str("\n[ledger]\nurl = \"sqlite://ledger/journal.db\"\n");
        // Cross-region supervision: a demo key (a real deployment keeps its own secret).
        let _ = write!(
            gateway,
            "\n[supervision]\nhmac_key = \"{}\"\n{}",
            crate::demo::patterns::HMAC_KEY,
            crate::demo::patterns::RULES
        );
    }
    for (
        RegionSpec {
            admdvs,
            name,
            dialect,
            ..
        },
        port,
    ) in REGIONS.iter().zip(ports.platforms)
    {
        let _ = write!(
            gateway,
            "\n[[regions]]\nadmdvs = \"{admdvs}\"\nname = \"{name}\"\ndialect = \"{dialect}\"\nupstreams = [\"https://127.0.0.1:{port}/fsi/api/rsfComIfsService/callService\"]\nca = \"certs/ca.pem\"\nclient_cert = \"certs/gateway.pem\"\nclient_key = \"certs/gateway.key\"\ntimeouts_ms = {{ short = 3000, medium = 5000, long = 10000 }}\n"
        );
    }
    for i in institutions {
        let _ = write!(
            gateway,
            "\n[[institutions]]\ncode = \"{}\"\nname = \"{}\"\nrole = \"hospital\"\nadmdvs = \"{}\"\ndialect = \"{}\"\n",
            i.code, i.name, i.admdvs, i.dialect
        );
    }
    for RegionSpec { admdvs, name, .. } in REGIONS {
        let _ = write!(gateway, "\n[[institutions]]\ncode = \"{}\"\nname = \"{name}医保信息平台\"\nrole = \"platform\"\nadmdvs = \"{admdvs}\"\n", platform_code(admdvs));
    }
    let _ = write!(gateway, "\n[[institutions]]\ncode = \"{OFFICER}\"\nname = \"京津冀清算经办\"\nrole = \"officer\"\nadmdvs = \"110000\"\n");
    let gateway_path = dir.join("gateway.toml");
    std::fs::write(&gateway_path, gateway)?;
    Ok((sandbox_path, gateway_path))
}
