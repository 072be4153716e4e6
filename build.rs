//! Makes new migration files count, and turns the Postgres half of the test suites on when
//! `PORTER_TEST_DATABASE_URL` is set at build time (otherwise those tests are reported ignored).
fn main() {
    println!("cargo:rerun-if-changed=migrations-sqlite");
    println!("cargo:rerun-if-changed=migrations-postgres");
    println!("cargo:rerun-if-env-changed=PORTER_TEST_DATABASE_URL");
    println!("cargo::rustc-check-cfg=cfg(porter_pg_tests)");
    if std::env::var_os("PORTER_TEST_DATABASE_URL").is_some_and(|v| !v.is_empty()) {
        println!("cargo:rustc-cfg=porter_pg_tests");
    }
}
