// `sqlx::migrate!` embeds the migrations when the crate (or its tests) compiles, and cargo does
// not know it reads them: without this, adding a migration file alone rebuilt nothing.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
    println!("cargo:rerun-if-changed=tests/migrations");
}
