//! Makes new migration files count, and decides at build time which tests that need an outside
//! server run. One rule for every such server: its tests run when the variable that names the
//! server is set at build time, or when `CI` is set (then a missing server fails the test, with
//! its reason); otherwise they are reported ignored, with the reason. `scripts/test` starts the
//! servers and sets the variables.
//!
//! | cfg                    | tests                          | variable                   |
//! |------------------------|--------------------------------|----------------------------|
//! | `porter_pg_tests`      | the Postgres half of the suites | `PORTER_TEST_DATABASE_URL` |
//! | `porter_s3_tests`      | the S3 object-store cases       | `PORTER_TEST_S3_ENDPOINT`  |
//! | `porter_browser_tests` | the dashboard in Chromium       | `PORTER_TEST_CHROMEDRIVER` |
fn main() {
    println!("cargo:rerun-if-changed=migrations-sqlite");
    println!("cargo:rerun-if-changed=migrations-postgres");
    let ci = set("CI");
    for (cfg, var) in [
        ("porter_pg_tests", "PORTER_TEST_DATABASE_URL"),
        ("porter_s3_tests", "PORTER_TEST_S3_ENDPOINT"),
        ("porter_browser_tests", "PORTER_TEST_CHROMEDRIVER"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if ci || set(var) {
            println!("cargo:rustc-cfg={cfg}");
        }
    }
}

/// Whether `var` is set to something at build time (and rebuild when that changes).
fn set(var: &str) -> bool {
    println!("cargo:rerun-if-env-changed={var}");
    std::env::var_os(var).is_some_and(|v| !v.is_empty())
}
