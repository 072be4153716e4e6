//! The `porter` binary: everything is in [`porter::cli`].

fn main() -> std::process::ExitCode {
    porter::cli::main()
}
