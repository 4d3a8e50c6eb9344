//! The `ocibuild` binary: hands the arguments to [`ocibuild::cli`] and exits with its code.

fn main() {
    std::process::exit(ocibuild::cli::main());
}
