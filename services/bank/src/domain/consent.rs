//! When a consent may be used: for its institution, for a purpose it covers, not revoked, and
//! not past its last day.

use jiaxin_proto::bank::Purpose;

/// A consent as the checks see it.
#[derive(Debug, Clone, Copy)]
pub struct Terms<'a> {
    pub institution_id: &'a str,
    pub purpose: i64,
    /// YYYY-MM-DD, inclusive.
    pub valid_until: &'a str,
    pub revoked: bool,
}

/// The purposes a request may rest on: a report serves a loan application or post-loan
/// monitoring; pre-approval needs a pre-approval consent.
pub fn covers(consent_purpose: i64, wanted: &[Purpose]) -> bool {
    wanted.iter().any(|p| *p as i64 == consent_purpose)
}

/// Whether the consent may be used by `institution` for one of `wanted` on `today`.
pub fn usable(terms: &Terms<'_>, institution: &str, wanted: &[Purpose], today: &str) -> bool {
    !terms.revoked && terms.institution_id == institution && covers(terms.purpose, wanted) && today <= terms.valid_until
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consent_serves_its_bank_its_purpose_and_its_dates_only() {
        let terms = Terms {
            institution_id: "b1",
            purpose: Purpose::LoanApplication as i64,
            valid_until: "2026-12-31",
            revoked: false,
        };
        let report = [Purpose::LoanApplication, Purpose::PostLoanMonitoring];
        assert!(usable(&terms, "b1", &report, "2026-12-31"));
        assert!(!usable(&terms, "b1", &report, "2027-01-01"), "expired");
        assert!(!usable(&terms, "b2", &report, "2026-06-01"), "another bank's");
        assert!(!usable(&terms, "b1", &[Purpose::VillagePreapproval], "2026-06-01"), "wrong purpose");
        assert!(!usable(&Terms { revoked: true, ..terms }, "b1", &report, "2026-06-01"), "revoked");
    }
}
