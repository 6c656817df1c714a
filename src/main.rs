//! `migratory`: the server binary. All of the command line lives in `migratory-apps`.
fn main() {
    std::process::exit(migratory_apps::cli::main());
}
