//! The `choiceboard` binary: the command line in [`choiceboard::cli`] decides what runs.

// glibc's malloc spent a fifth of the server's CPU under 64 clients of creates (its arenas
// consolidate on every free); mimalloc's per-thread heaps do not. Built without transparent
// huge pages (`no_thp`): each fresh 2 MiB page is zeroed whole on first touch, which cost a
// quarter of the CPU while 19,000 viewers connected at once (and 90 MB more memory).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(choiceboard::cli::main());
}
