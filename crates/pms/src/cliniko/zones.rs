//! Cliniko's account time zone, as its settings give it, to an IANA zone.
//!
//! The settings example shows a Ruby on Rails zone name (`Eastern Time (US & Canada)`), while
//! patients' zones are IANA names. Both are accepted: an IANA name as is, a Rails name through
//! Rails' own table (`ActiveSupport::TimeZone::MAPPING`), for the zones of the countries Cliniko
//! serves (Australia, New Zealand, the United Kingdom and Ireland, North America, Singapore and
//! neighbours, South Africa).

use slotbridge_domain::practice::IanaZone;

const RAILS: &[(&str, &str)] = &[
    ("Adelaide", "Australia/Adelaide"),
    ("Brisbane", "Australia/Brisbane"),
    ("Canberra", "Australia/Sydney"),
    ("Darwin", "Australia/Darwin"),
    ("Hobart", "Australia/Hobart"),
    ("Melbourne", "Australia/Melbourne"),
    ("Perth", "Australia/Perth"),
    ("Sydney", "Australia/Sydney"),
    ("Auckland", "Pacific/Auckland"),
    ("Wellington", "Pacific/Auckland"),
    ("Chatham Is.", "Pacific/Chatham"),
    ("Fiji", "Pacific/Fiji"),
    ("Guam", "Pacific/Guam"),
    ("Port Moresby", "Pacific/Port_Moresby"),
    ("London", "Europe/London"),
    ("Edinburgh", "Europe/London"),
    ("Dublin", "Europe/Dublin"),
    ("Lisbon", "Europe/Lisbon"),
    ("UTC", "Etc/UTC"),
    ("Amsterdam", "Europe/Amsterdam"),
    ("Berlin", "Europe/Berlin"),
    ("Paris", "Europe/Paris"),
    ("Madrid", "Europe/Madrid"),
    ("Rome", "Europe/Rome"),
    ("Stockholm", "Europe/Stockholm"),
    ("Pretoria", "Africa/Johannesburg"),
    ("Harare", "Africa/Harare"),
    ("Singapore", "Asia/Singapore"),
    ("Kuala Lumpur", "Asia/Kuala_Lumpur"),
    ("Hong Kong", "Asia/Hong_Kong"),
    ("Tokyo", "Asia/Tokyo"),
    ("Jakarta", "Asia/Jakarta"),
    ("Bangkok", "Asia/Bangkok"),
    ("Hawaii", "Pacific/Honolulu"),
    ("Alaska", "America/Juneau"),
    ("Pacific Time (US & Canada)", "America/Los_Angeles"),
    ("Arizona", "America/Phoenix"),
    ("Mountain Time (US & Canada)", "America/Denver"),
    ("Central Time (US & Canada)", "America/Chicago"),
    ("Eastern Time (US & Canada)", "America/New_York"),
    ("Atlantic Time (Canada)", "America/Halifax"),
    ("Newfoundland", "America/St_Johns"),
    ("Saskatchewan", "America/Regina"),
    ("Indiana (East)", "America/Indiana/Indianapolis"),
];

/// The IANA zone of a Cliniko account time zone name, Rails or IANA; `None` when unknown.
///
/// ```
/// use slotbridge_pms::cliniko::account_zone;
/// assert_eq!(account_zone("Sydney").map(|z| z.name().to_owned()).as_deref(), Some("Australia/Sydney"));
/// assert_eq!(
///     account_zone("Eastern Time (US & Canada)").map(|z| z.name().to_owned()).as_deref(),
///     Some("America/New_York")
/// );
/// assert_eq!(account_zone("Australia/Perth").map(|z| z.name().to_owned()).as_deref(), Some("Australia/Perth"));
/// assert!(account_zone("Atlantis").is_none());
/// ```
pub fn account_zone(name: &str) -> Option<IanaZone> {
    let name = name.trim();
    if let Some((_, iana)) = RAILS.iter().find(|(rails, _)| *rails == name) {
        return IanaZone::parse(iana).ok();
    }
    if name.contains('/') || name == "UTC" {
        return IanaZone::parse(name).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rails_name_maps_to_a_known_zone() {
        for (rails, iana) in RAILS {
            assert!(IanaZone::parse(iana).is_ok(), "{rails} -> {iana}");
        }
    }
}
