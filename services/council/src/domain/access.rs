//! Who may do what in the council. Scope is checked with `Caller::covers` on the village's or
//! the household's org path; voting also needs a seat on that village's council.

use jiaxin_kit::auth::Role;

/// May set up councils and seat members for villages in their scope.
pub const ORGANISERS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre];

/// May read councils and review tasks in their scope.
pub const READERS: &[Role] =
    &[Role::Province, Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre, Role::CouncilMember, Role::Auditor];

/// May verify the audit log.
pub const VERIFIERS: &[Role] = &[Role::Province, Role::CountyAdmin, Role::Auditor];
