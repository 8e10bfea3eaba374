//! Who may do what at the bank service. Officers act for the institutions whose officer lists
//! name their account; branches for the villages they serve.

use jiaxin_kit::auth::Role;

/// May register institutions and branches.
pub const REGISTRARS: &[Role] = &[Role::CountyAdmin];

/// May register agricultural businesses of households in their scope.
pub const BUSINESS_REGISTRARS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin];

/// May read a household's consents and their queries, besides its members.
pub const CONSENT_READERS: &[Role] = &[Role::CountyAdmin, Role::Auditor];

/// May verify the audit log.
pub const VERIFIERS: &[Role] = &[Role::Province, Role::CountyAdmin, Role::Auditor];
