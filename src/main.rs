//! The `choiceboard` binary: the command line in [`choiceboard::cli`] decides what runs.

fn main() {
    std::process::exit(choiceboard::cli::main());
}
