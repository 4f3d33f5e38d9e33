fn main() {
    std::process::exit(choiceboard::cli::main());
}
