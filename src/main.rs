//! The `choiceboard` binary: the command line in [`choiceboard::cli`] decides what runs.

/// glibc's allocator spent a seventh of every request thread's time, and as much of the
/// writer's, merging its free lists (`malloc_consolidate`) under command load; mimalloc keeps
/// per-thread pages and does not.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(choiceboard::cli::main());
}
