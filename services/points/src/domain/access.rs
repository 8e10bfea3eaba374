//! Who may do what in points. Scope (which households) is checked with `Caller::covers` on the
//! household's grid path.

use jiaxin_kit::auth::Role;

/// The role a catalogue recorder name stands for.
pub fn recorder_role(name: &str) -> Option<Role> {
    Some(match name {
        "grid_worker" => Role::GridWorker,
        "property_manager" => Role::PropertyManager,
        "volunteer" => Role::Volunteer,
        "village_cadre" => Role::VillageCadre,
        "council_member" => Role::CouncilMember,
        "resident" => Role::Resident,
        _ => return None,
    })
}

/// May read records and scores of households inside their scope.
pub const READERS: &[Role] = &[
    Role::Province,
    Role::CountyAdmin,
    Role::TownAdmin,
    Role::VillageCadre,
    Role::GridWorker,
    Role::PropertyManager,
    Role::Volunteer,
    Role::CouncilMember,
    Role::Auditor,
];

/// May reverse an effective record (with a reason).
pub const REVERSERS: &[Role] = &[Role::CountyAdmin, Role::TownAdmin, Role::VillageCadre, Role::CouncilMember];

/// May verify the ledger's hash chains.
pub const VERIFIERS: &[Role] = &[Role::Province, Role::CountyAdmin, Role::Auditor];
