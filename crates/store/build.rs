//! `sqlx::migrate!` embeds the migration files but cannot tell Cargo about a new file in their
//! directories; this makes adding a migration rebuild the drivers.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
