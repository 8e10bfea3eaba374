//! Who may do what in benefits. Scope is checked with `Caller::covers` on the object's org path;
//! eligibility checks are answered only to the accounts of the benefit's provider.

use jiaxin_kit::auth::Role;

/// May manage providers and benefits in their scope.
pub const CATALOGUE_ADMINS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin];

/// May read households' standing in their scope (besides the household's own members).
pub const STANDING_READERS: &[Role] =
    &[Role::Province, Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre, Role::GridWorker, Role::Auditor];

/// May compute and publish the annual honours.
pub const EVALUATORS: &[Role] = &[Role::CountyAdmin];

/// May read an evaluation before it is published (to review it).
pub const DRAFT_READERS: &[Role] = &[Role::Province, Role::CountyAdmin, Role::TownAdmin, Role::Auditor];

/// May cancel any redemption in their scope.
pub const REFUNDERS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin];

/// May verify the audit log.
pub const VERIFIERS: &[Role] = &[Role::Province, Role::CountyAdmin, Role::Auditor];
