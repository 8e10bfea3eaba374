//! Who may do what in pledges. Scope (which households and villages) is checked with
//! `Caller::covers` on the object's org path.

use jiaxin_kit::auth::Role;

/// May publish a village's or community's template.
pub const TEMPLATE_PUBLISHERS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre];

/// May collect signatures (paper forms, meetings) and record revocations handed in on paper.
pub const COLLECTORS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre, Role::GridWorker];

/// May run signing campaigns.
pub const CAMPAIGNERS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre];

/// May read coverage, campaigns and households' pledges in their scope.
pub const READERS: &[Role] = &[
    Role::Province,
    Role::CountyAdmin,
    Role::TownAdmin,
    Role::VillageCadre,
    Role::GridWorker,
    Role::CouncilMember,
    Role::Auditor,
];
