//! Routing: a request goes to the platform of the patient's insured region,
//! chosen by the longest prefix of `insuplc_admdvs` among the configured
//! regions (130600 goes to a region configured as 130000 unless 130600 itself
//! is configured).

use contracts::validate::RegionSet;
use contracts::Admdvs;

/// The configured regions' codes, in configuration order.
#[derive(Debug, Clone)]
pub struct Routes {
    regions: Vec<Admdvs>,
}

impl Routes {
    /// From the configured regions.
    pub fn new(regions: impl IntoIterator<Item = Admdvs>) -> Routes {
        Routes {
            regions: regions.into_iter().collect(),
        }
    }

    /// The index of the most specific configured region containing `insured`.
    pub fn route(&self, insured: Admdvs) -> Option<usize> {
        self.regions
            .iter()
            .enumerate()
            .filter(|(_, region)| insured.within(**region))
            .max_by_key(|(_, region)| region.specificity())
            .map(|(index, _)| index)
    }
}

impl RegionSet for Routes {
    fn knows(&self, admdvs: Admdvs) -> bool {
        self.route(admdvs).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> Admdvs {
        Admdvs::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_longest_configured_prefix_wins() {
        let routes = Routes::new([
            code("110000"),
            code("120000"),
            code("130000"),
            code("130600"),
        ]);
        assert_eq!(routes.route(code("110105")), Some(0));
        assert_eq!(routes.route(code("130100")), Some(2));
        assert_eq!(routes.route(code("130602")), Some(3));
        assert_eq!(routes.route(code("130600")), Some(3));
        assert_eq!(routes.route(code("310000")), None);
    }
}
