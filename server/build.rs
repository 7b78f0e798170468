// `sqlx::migrate!` and `#[sqlx::test(migrations = ...)]` embed ../migrations at compile time;
// without this, a new or edited migration would not rebuild the binary or the tests.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
