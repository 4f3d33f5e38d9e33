//! The `choiceboard` binary: the command line in [`choiceboard::cli`] decides what runs.

// glibc's malloc spent a fifth of the server's CPU under 64 clients of creates (its arenas
// consolidate on every free); mimalloc's per-thread heaps do not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(choiceboard::cli::main());
}
