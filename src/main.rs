//! The `choiceboard` binary: the command line in [`choiceboard::cli`] decides what runs.

// glibc's malloc consolidates its arenas on every free; mimalloc's per-thread heaps do not.
// Built without transparent huge pages (`no_thp`): each fresh 2 MiB page would be zeroed whole
// on first touch, when a wave of viewers connects. The figures are in bench/README.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(choiceboard::cli::main());
}
