// `sqlx::migrate!` embeds the migrations when the crate compiles, and cargo does not know it reads
// them: without this, adding a migration file alone rebuilt nothing, and the binary ran without it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
